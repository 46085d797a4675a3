"""The only place that reads and writes model folders.

A model folder is diffusers-shaped: ``model_index.json``, one subfolder per component (config JSON plus
safetensors weights), ``studio_config.json`` with the full :class:`~cxr_studio.config.StudioConfig`, and
``sha256sums.json`` listing every file's hash. Loading refuses pickle files and symlinks that leave the
folder, checks every hash first, never runs code from the folder and never reaches the network.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel
from diffusers.utils import logging as diffusers_logging
from transformers import BertModel, BertTokenizerFast

from cxr_studio.config import StudioConfig
from cxr_studio.diffusion.schedules import training_scheduler
from cxr_studio.errors import InputError
from cxr_studio.files import sha256_file

COMPONENTS: dict[str, tuple[str, str]] = {
    "tokenizer": ("transformers", "BertTokenizerFast"),
    "report_encoder": ("transformers", "BertModel"),
    "autoencoder": ("diffusers", "AutoencoderKL"),
    "latent_unet": ("diffusers", "UNet2DConditionModel"),
    "super_res_unet": ("diffusers", "UNet2DModel"),
    "scheduler": ("diffusers", "DDPMScheduler"),
    "sr_scheduler": ("diffusers", "DDPMScheduler"),
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CHECKSUMS = "sha256sums.json"
CONFIG_FILE = "studio_config.json"


def checksums(folder: str | os.PathLike[str]) -> str:
    """The ``sha256sums.json`` text for every file under ``folder`` (the model hash is the sha256 of this text)."""
    folder = Path(folder)
    sums = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != CHECKSUMS
    }
    return json.dumps(sums, indent=1, sort_keys=True)


def write_checksums(folder: str | os.PathLike[str]) -> str:
    """Write ``sha256sums.json`` for every file under ``folder``; returns the model hash (of that list)."""
    text = checksums(folder)
    (Path(folder) / CHECKSUMS).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def save_studio(
    components: dict[str, Any], config: StudioConfig, path: str | os.PathLike[str], *, dtype: torch.dtype | None = None
) -> str:
    """Write a model folder atomically (temporary folder, fsync, rename); returns the model hash.

    ``dtype=torch.float16`` halves the folder (for bundling); loading always computes in float32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # .to(float16) on a copy warns about modules it need not keep
        try:
            for name in ("report_encoder", "autoencoder", "latent_unet", "super_res_unet"):
                module = components[name] if dtype is None else copy.deepcopy(components[name]).to(dtype)
                module.save_pretrained(tmp / name, safe_serialization=True)
        finally:
            diffusers_logging.set_verbosity(verbosity)
        components["tokenizer"].save_pretrained(tmp / "tokenizer")
        training_scheduler(config.latent_schedule).save_pretrained(tmp / "scheduler")
        training_scheduler(config.sr_schedule).save_pretrained(tmp / "sr_scheduler")
        (tmp / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
        index = {"_class_name": "CXRStudio", **{name: list(source) for name, source in COMPONENTS.items()}}
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
        model_hash = write_checksums(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        if path.exists():  # replace an older save only once the new one is complete
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_hash


def refuse_unsafe_files(folder: Path, *, allow_pickles: bool = False) -> None:
    """Refuse links that leave the folder and (unless ``allow_pickles``) pickle files, which can run code."""
    root = folder.resolve()
    for item in folder.rglob("*"):
        if item.is_symlink() and not item.resolve().is_relative_to(root):
            raise InputError(f"model folder: {item.relative_to(folder)} is a link to outside the folder; refused.")
        if not allow_pickles and item.suffix.lower() in PICKLE_SUFFIXES:
            raise InputError(
                f"model folder: {item.relative_to(folder)} is a pickle file, which can run code when loaded; "
                "only safetensors weights are accepted."
            )


def verify_folder(path: str | os.PathLike[str]) -> str:
    """Refuse pickles, escaping symlinks, missing or altered files; returns the model hash."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(
            f"model folder {folder} does not exist; a folder written by CXRStudio.save_pretrained is accepted."
        )
    root = folder.resolve()
    refuse_unsafe_files(folder)
    listing = folder / CHECKSUMS
    if not (folder / CONFIG_FILE).is_file() and (folder / "model_index.json").is_file():
        raise InputError(
            f"model folder {folder.name} is not a CXR Studio cascade (no {CONFIG_FILE}); "
            "cxr_studio.load_model loads diffusers folders too."
        )
    if not listing.is_file():
        raise InputError(
            f"model folder {folder.name} has no {CHECKSUMS}; save it with CXRStudio.save_pretrained "
            "(or run cxr_studio.checkpoints.write_checksums on a folder you trust)."
        )
    text = listing.read_text()
    try:
        sums = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"model folder: {CHECKSUMS} is not valid JSON.") from err
    for name in [CONFIG_FILE, "model_index.json"]:
        if name not in sums:
            raise InputError(f"model folder: {CHECKSUMS} does not list {name}.")
    for relative, expected in sums.items():
        file = folder / relative
        if not file.resolve().is_relative_to(root):
            raise InputError(f"model folder: {CHECKSUMS} names {relative}, outside the folder; refused.")
        if not file.is_file():
            raise InputError(f"model folder: {relative} is missing.")
        if sha256_file(file) != expected:
            raise InputError(f"model folder: {relative} is damaged or truncated (sha256 does not match {CHECKSUMS}).")
    return hashlib.sha256(text.encode()).hexdigest()


def load_studio(path: str | os.PathLike[str], *, device: torch.device) -> tuple[dict[str, Any], StudioConfig, str]:
    """Verify then load a model folder: ``(components, config, model_hash)``; any problem is an InputError."""
    folder = Path(path)
    model_hash = verify_folder(folder)
    try:
        config = StudioConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise InputError(f"model folder: {CONFIG_FILE} is not a valid studio config ({err}).") from err
    loaders = {
        "tokenizer": lambda p: BertTokenizerFast.from_pretrained(p, local_files_only=True),
        # dtype: weights saved in float16 still compute in float32 (CPUs have no fast half precision)
        "report_encoder": lambda p: BertModel.from_pretrained(
            p, local_files_only=True, use_safetensors=True, dtype=torch.float32
        ),
        "autoencoder": lambda p: AutoencoderKL.from_pretrained(
            p, local_files_only=True, use_safetensors=True, dtype=torch.float32
        ),
        "latent_unet": lambda p: UNet2DConditionModel.from_pretrained(
            p, local_files_only=True, use_safetensors=True, dtype=torch.float32
        ),
        "super_res_unet": lambda p: UNet2DModel.from_pretrained(
            p, local_files_only=True, use_safetensors=True, dtype=torch.float32
        ),
    }
    components = {}
    for name, load in loaders.items():
        try:
            components[name] = load(str(folder / name))
        except Exception as err:  # the libraries raise OSError, ValueError, RuntimeError, ... for bad folders
            raise InputError(
                f"model folder: component {name}/ could not be loaded ({type(err).__name__}: {err})."
            ) from err
    check_compatible(components, config)
    for name in ("report_encoder", "autoencoder", "latent_unet", "super_res_unet"):
        components[name] = components[name].to(device).eval()
    return components, config, model_hash


def check_compatible(components: dict[str, Any], config: StudioConfig) -> None:
    """The components must fit each other and the studio config; name the first mismatch."""
    latent_channels = config.autoencoder.latent_channels
    checks = [
        (
            "autoencoder block channels",
            tuple(components["autoencoder"].config.block_out_channels),
            tuple(config.autoencoder.block_out_channels),
        ),
        (
            "latent UNet block channels",
            tuple(components["latent_unet"].config.block_out_channels),
            tuple(config.latent_unet.block_out_channels),
        ),
        (
            "super-resolution block channels",
            tuple(components["super_res_unet"].config.block_out_channels),
            tuple(config.super_res.block_out_channels),
        ),
        ("report encoder width", components["report_encoder"].config.hidden_size, config.report_encoder.hidden_size),
        (
            "report encoder depth",
            components["report_encoder"].config.num_hidden_layers,
            config.report_encoder.num_layers,
        ),
        ("autoencoder latent channels", components["autoencoder"].config.latent_channels, latent_channels),
        (
            "latent UNet input channels",
            components["latent_unet"].config.in_channels,
            latent_channels + config.latent_unet.coordinate_channels + config.latent_unet.layout_channels,
        ),
        (
            "latent UNet cross-attention width",
            components["latent_unet"].config.cross_attention_dim,
            components["report_encoder"].config.hidden_size,
        ),
        ("report encoder vocabulary", components["report_encoder"].config.vocab_size, len(components["tokenizer"])),
        ("super-resolution input channels", components["super_res_unet"].config.in_channels, 2),
        (
            "autoencoder scaling factor",
            components["autoencoder"].config.scaling_factor,
            config.autoencoder.scaling_factor,
        ),
    ]
    for what, found, expected in checks:
        if found != expected:
            raise InputError(f"model folder: {what} is {found}, but the rest of the cascade expects {expected}.")
