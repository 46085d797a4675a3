"""Model folders, one owner: what a folder is (a CXR Studio cascade, a supported diffusers pipeline, or neither),
its hash, its card, loading it (:func:`load_model`, every command's ``--model``), and the models folder
(``app.py --models DIR``, default ``models/``) the app lists, read from JSON and card only (no weights are loaded
until the user picks one).

A folder is a model folder when it holds a ``model_index.json``: our cascades (with ``studio_config.json``, read
and written by :mod:`cxr_studio.checkpoints`) and the diffusers pipelines of :data:`DIFFUSERS_PIPELINES`; other
pipelines are listed too, marked as not loadable, so a user sees why their folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cxr_studio.checkpoints import CONFIG_FILE, checksums, refuse_unsafe_files
from cxr_studio.errors import InputError
from cxr_studio.files import bundled, write_atomic
from cxr_studio.pipeline.diffusers_family import FAMILIES
from cxr_studio.pipeline.studio import CXRStudio, DiffusersStudio, Studio

INDEX_FILE = "model_index.json"
DIFFUSERS_PIPELINES = tuple(FAMILIES)  # the diffusers pipelines the studio loads
DEFAULT_MODEL = bundled("demo")  # the bundled demo cascade
CARD_FILES = ("MODEL_CARD.md", "README.md")
CARD_CHARS = 400  # the card's first lines in the listing; the whole card is on the Model tab once loaded


@dataclass(frozen=True)
class ModelEntry:
    """One model folder: ``family`` is "CXR Studio cascade" or the diffusers pipeline class; ``size_mb`` counts
    the safetensors weights; ``problem`` says why it cannot be loaded (empty when it can)."""

    path: Path
    family: str
    size_mb: float
    card: str
    problem: str = ""

    @property
    def loadable(self) -> bool:
        return not self.problem


def read_card(folder: Path, *, limit: int | None = CARD_CHARS) -> str:
    """The folder's model card without its front matter and images, cut at ``limit`` characters."""
    for name in CARD_FILES:
        path = folder / name
        if path.is_file():
            text = path.read_text(errors="replace")
            if text.startswith("---"):  # the Hub's YAML front matter
                text = text.split("---", 2)[-1]
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("!["))
            return text.strip() if limit is None else text.strip()[:limit]
    return ""


def is_model_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a model (a ``model_index.json``), loadable or not."""
    return (Path(folder) / INDEX_FILE).is_file()


def is_cascade(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is one of our cascades (a model folder with a ``studio_config.json``)."""
    return is_model_folder(folder) and (Path(folder) / CONFIG_FILE).is_file()


def read_index(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """A diffusers folder's ``model_index.json``: its ``_class_name`` and one ``[library, class]`` per component."""
    index = Path(folder) / INDEX_FILE
    try:
        return json.loads(index.read_text())
    except FileNotFoundError as err:
        raise InputError(f"{folder} is not a model folder ({INDEX_FILE} expected).") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{index} is not valid JSON.") from err


def pipeline_class(folder: str | os.PathLike[str]) -> str | None:
    """The ``_class_name`` of a diffusers folder (``None`` when the folder is not a model folder or is one of our
    cascades)."""
    if not is_model_folder(folder) or is_cascade(folder):
        return None
    return read_index(folder).get("_class_name")


def folder_hash(folder: str | os.PathLike[str], *, cache: str | os.PathLike[str] | None = None) -> str:
    """The model hash of a folder that came without ``sha256sums.json`` (a diffusers model from the Hub or a
    colleague), computed from its files on first load. The folder is never written to (it may be read-only);
    the hash is remembered in ``cache`` (default ``~/.cache/cxr_studio/folder_hashes.json``) under the files'
    sizes and modification times, so a changed file is hashed again."""
    folder = Path(folder).resolve()
    refuse_unsafe_files(folder, allow_pickles=True)  # Hub folders often hold both; only safetensors are loaded
    stamp = hashlib.sha256(
        "".join(
            f"{p.relative_to(folder).as_posix()}:{p.stat().st_size}:{p.stat().st_mtime_ns};"
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        ).encode()
    ).hexdigest()
    cache = Path(cache) if cache else Path.home() / ".cache" / "cxr_studio" / "folder_hashes.json"
    try:
        known = json.loads(cache.read_text()) if cache.is_file() else {}
    except (OSError, json.JSONDecodeError):  # a damaged cache only costs a recomputation
        known = {}
    if known.get(str(folder), {}).get("stamp") == stamp:
        return known[str(folder)]["hash"]
    model_hash = hashlib.sha256(checksums(folder).encode()).hexdigest()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(
            cache, json.dumps({**known, str(folder): {"stamp": stamp, "hash": model_hash}}, indent=1).encode()
        )
    except OSError:  # a read-only home: the hash is recomputed next time
        pass
    return model_hash


def load_model(folder: str | os.PathLike[str] | None = None, *, device: str | torch.device | None = None) -> Studio:
    """Load a model folder offline (every command's ``--model``; the bundled demo cascade when ``folder`` is
    empty): a cascade written by ``CXRStudio.save_pretrained`` (its files checked against ``sha256sums.json``), or
    a diffusers folder whose ``model_index.json`` names one of :data:`DIFFUSERS_PIPELINES` (a
    :class:`DiffusersStudio`, named by its folder and hash). Damaged, pickle-only or unknown folders raise
    :class:`InputError`."""
    if not folder:
        return load_default(device=device)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"model folder {folder} does not exist; a cascade or a diffusers model folder is accepted.")
    if is_cascade(folder) or not is_model_folder(folder):  # the cascade loader says what a cascade lacks
        return CXRStudio.from_pretrained(folder, device=device)
    index = read_index(folder)
    name = index.get("_class_name")
    if name not in DIFFUSERS_PIPELINES:
        raise InputError(
            f"{folder} holds a {name or 'pipeline without a class name'}; accepted: {', '.join(DIFFUSERS_PIPELINES)} "
            "(diffusers format) or a CXR Studio cascade."
        )
    return DiffusersStudio.from_folder(
        folder, index=index, model_id=f"{folder.resolve().name}@{folder_hash(folder)[:12]}", device=device
    )


def load_default(*, device: str | torch.device | None = None) -> CXRStudio:
    """The bundled demo cascade (trained on the phantom set; see assets/demo/MODEL_CARD.md), loaded offline."""
    if not is_model_folder(DEFAULT_MODEL):
        raise InputError(
            f"the bundled demo cascade is missing from {DEFAULT_MODEL}; reinstall CXR Studio, or train it with "
            "'bash training/train_demo.sh' and copy runs/demo/bundle there."
        )
    return CXRStudio.from_pretrained(DEFAULT_MODEL, device=device)


def describe(folder: str | os.PathLike[str]) -> ModelEntry | None:
    """A :class:`ModelEntry` for ``folder``, or ``None`` when it is not a model folder at all."""
    folder = Path(folder)
    if not is_model_folder(folder):
        return None
    size = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e6
    try:
        name = read_index(folder).get("_class_name", "")
    except InputError:
        return ModelEntry(folder, "unknown", size, "", problem=f"{INDEX_FILE} is not valid JSON")
    if is_cascade(folder):
        return ModelEntry(folder, "CXR Studio cascade", size, read_card(folder))
    problem = "" if name in DIFFUSERS_PIPELINES else f"{name or 'an unnamed pipeline'} is not supported"
    if not problem and not any(folder.rglob("*.safetensors")):
        problem = "no safetensors weights (pickle files are never loaded)"
    return ModelEntry(folder, name, size, read_card(folder), problem=problem)


def list_models(root: str | os.PathLike[str]) -> list[ModelEntry]:
    """Model folders directly in ``root`` or one level down (``root/org/model``), sorted by path; a missing
    ``root`` lists nothing."""
    root = Path(root)
    if not root.is_dir():
        return []
    candidates = [p for p in root.iterdir() if p.is_dir()]
    candidates += [q for p in candidates if not is_model_folder(p) for q in p.iterdir() if q.is_dir()]
    entries = [describe(p) for p in sorted(candidates)]
    return [e for e in entries if e is not None]
