"""Model folders: what a folder is (a CXR Studio cascade, a supported diffusers pipeline, or neither), its card,
and the models folder (``app.py --models DIR``, default ``models/``) the app lists, read from JSON and card only
(no weights are loaded until the user picks one).

A folder is a model folder when it holds a ``model_index.json``: our cascades (with ``studio_config.json``) and the
diffusers pipelines of :data:`DIFFUSERS_PIPELINES`; other pipelines are listed too, marked as not loadable, so a user
sees why their folder is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cxr_studio.errors import InputError

# The diffusers pipelines the studio loads (cxr_studio.pipeline.diffusers_family.FAMILIES holds their call details)
DIFFUSERS_PIPELINES = ("StableDiffusionPipeline", "PixArtSigmaPipeline", "SanaPipeline")
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


def pipeline_class(folder: str | os.PathLike[str]) -> str | None:
    """The ``_class_name`` of a diffusers folder's ``model_index.json`` (``None`` when the folder has none or is
    one of our cascades, which carry a ``studio_config.json``)."""
    index = Path(folder) / "model_index.json"
    if not index.is_file() or (Path(folder) / "studio_config.json").is_file():
        return None
    try:
        return json.loads(index.read_text()).get("_class_name")
    except json.JSONDecodeError as err:
        raise InputError(f"{index} is not valid JSON.") from err


def is_model_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a model (a ``model_index.json``), loadable or not."""
    return (Path(folder) / "model_index.json").is_file()


def describe(folder: str | os.PathLike[str]) -> ModelEntry | None:
    """A :class:`ModelEntry` for ``folder``, or ``None`` when it is not a model folder at all."""
    folder = Path(folder)
    index = folder / "model_index.json"
    if not is_model_folder(folder):
        return None
    size = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e6
    try:
        name = json.loads(index.read_text()).get("_class_name", "")
    except json.JSONDecodeError:
        return ModelEntry(folder, "unknown", size, "", problem="model_index.json is not valid JSON")
    if (folder / "studio_config.json").is_file():
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
