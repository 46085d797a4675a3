"""What the project's two small ResNets share (the finding classifier and the re-identification network): a
grayscale transformers ``ResNetModel`` trunk, and a model folder of ``config.json`` + ``model.safetensors``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from cxr_studio.errors import InputError


def grayscale_resnet(
    *, embedding_size: int, hidden_sizes: tuple[int, ...], depths: tuple[int, ...]
) -> torch.nn.Module:
    """A randomly initialised transformers ``ResNetModel`` with one input channel (basic blocks)."""
    from transformers import ResNetConfig, ResNetModel

    return ResNetModel(
        ResNetConfig(
            num_channels=1,
            embedding_size=embedding_size,
            hidden_sizes=list(hidden_sizes),
            depths=list(depths),
            layer_type="basic",
        )
    )


def save_folder(module: torch.nn.Module, config: dict[str, Any], folder: str | os.PathLike[str]) -> None:
    """``config.json`` (``config``) and ``model.safetensors`` (the module's weights) in ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / "model.safetensors"))


def read_folder(folder: str | os.PathLike[str], *, what: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config, weights)`` of a folder written by :func:`save_folder`; lists in the config become tuples (the
    dataclasses' field types). ``what`` names the model in the error for a folder that is not one."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise InputError(f"{folder.name}: not a {what} folder (config.json and model.safetensors expected).")
    raw = json.loads((folder / "config.json").read_text())
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return config, load_file(str(folder / "model.safetensors"))
