"""The finding classifier: the evaluation's offline judge and feature extractor.

A small transformers ``ResNetModel`` (grayscale in) trained by the project on a manifest
(:func:`cxr_studio.evaluation.classifier.fit_classifier`). It scores the 14 CheXpert labels and every
one-sided finding and sided device per patient side (:data:`SIDE_TARGETS`), and its pooled features are
the embedding that realism (FID, KID, precision/recall) and the privacy screen use when no Inception
weights are given. Saved as ``config.json`` (with the verdict thresholds) + ``model.safetensors``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cxr_studio.data.manifest import CHEXPERT_LABELS
from cxr_studio.errors import InputError

# One-sided findings and sided devices, each judged per patient side. Keys are the judge's names; values
# are the manifest names they cover (the phantom's ``findings`` and ``devices`` columns: ``name:side...``).
SIDED_ITEMS: dict[str, tuple[str, ...]] = {
    "Pleural effusion": ("pleural_effusion",),
    "Pneumothorax": ("pneumothorax",),
    "Consolidation": ("consolidation",),
    "Atelectasis": ("atelectasis",),
    "Nodule": ("nodule",),
    "Mass": ("mass",),
    "Pacemaker/ICD generator": ("pacemaker", "icd"),
    "Chest tube": ("chest_tube",),
}
DEVICE_ITEMS = ("Pacemaker/ICD generator", "Chest tube")  # read from the ``devices`` column
PATIENT_SIDES = ("left", "right")
SIDE_TARGETS = tuple(f"{item}, {side}" for item in SIDED_ITEMS for side in PATIENT_SIDES)
TARGETS = (*CHEXPERT_LABELS, *SIDE_TARGETS)


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 128  # small nodules (3 px across at 128) and leads are visible from 128 px up
    embedding_size: int = 32
    hidden_sizes: tuple[int, ...] = (32, 64, 128, 256)
    depths: tuple[int, ...] = (1, 1, 2, 1)


def side_target(item: str, side: str) -> int:
    """Column of ``item`` (a :data:`SIDED_ITEMS` key) on the patient's ``side`` in :data:`TARGETS`."""
    return TARGETS.index(f"{item}, {side}")


def sided_items(row: dict[str, str]) -> dict[str, set[str]]:
    """Patient sides on which a manifest row names each :data:`SIDED_ITEMS` item (items not named are absent)."""
    by_name = {name: item for item, names in SIDED_ITEMS.items() for name in names}
    out: dict[str, set[str]] = {}
    for column in ("findings", "devices"):
        for part in row.get(column, "").split(";"):
            name, *rest = part.split(":")
            if name in by_name and rest:
                out.setdefault(by_name[name], set()).update(
                    set(PATIENT_SIDES) if rest[0] == "both" else {rest[0]} & set(PATIENT_SIDES)
                )
    return out


def targets_for(row: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """A manifest row -> ``(targets, known)``, both ``(len(TARGETS),)`` float32.

    CheXpert 1 -> 1; 0 and blank -> 0; -1 (uncertain) -> unknown (not trained on, not scored). The side
    targets come from the ``findings`` and ``devices`` columns (phantom manifests) and are unknown when the
    manifest lacks the column they need.
    """
    targets = np.zeros(len(TARGETS), np.float32)
    known = np.ones(len(TARGETS), np.float32)
    for i, label in enumerate(CHEXPERT_LABELS):
        value = row.get(label, "")
        if value == "-1":
            known[i] = 0.0
        elif value == "1":
            targets[i] = 1.0
    named = sided_items(row)
    for item in SIDED_ITEMS:
        column = "devices" if item in DEVICE_ITEMS else "findings"
        for side in PATIENT_SIDES:
            j = side_target(item, side)
            known[j] = float(column in row)
            targets[j] = float(side in named.get(item, ()))
    return targets, known


def _pool(maps: torch.Tensor) -> torch.Tensor:
    """``(B, D, h, w)`` -> ``(B, 2D)``: mean and max over the positions."""
    return torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1)


class FindingClassifier(torch.nn.Module):
    """``images`` ``(B, 1, S, S)`` in ``[-1, 1]`` -> ``logits`` ``(B, len(TARGETS))``; ``features`` ``(B, D)``.

    A transformers ``ResNetModel`` trunk. The CheXpert labels are read from the whole image's pooled
    features; each side target from the pooled features of its own half (PA: the patient's right is the
    image's left), so "left" is where the evidence lies, not something a globally pooled, nearly
    translation-invariant feature would have to infer. ``thresholds`` (fitted on real images by
    :func:`cxr_studio.evaluation.classifier.fit_thresholds`) turn probabilities into verdicts.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        self.config = config
        self.trunk = ResNetModel(
            ResNetConfig(
                num_channels=1,
                embedding_size=config.embedding_size,
                hidden_sizes=list(config.hidden_sizes),
                depths=list(config.depths),
                layer_type="basic",
            )
        )
        width = 2 * config.hidden_sizes[-1]  # mean- and max-pooled: a small nodule is lost in a mean over half a chest
        self.labels_head = torch.nn.Linear(width, len(CHEXPERT_LABELS))
        self.side_heads = torch.nn.ModuleDict(
            {side: torch.nn.Linear(width, len(SIDED_ITEMS)) for side in PATIENT_SIDES}
        )
        self.thresholds: dict[str, float] = {}

    def _maps(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(pixel_values=images).last_hidden_state  # (B, D, h, w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self._maps(images)
        w = maps.shape[-1]  # an odd width's middle column belongs to both halves (a 1-column map to both sides)
        halves = {"right": maps[..., : (w + 1) // 2], "left": maps[..., w // 2 :]}  # the patient's sides
        sided = torch.stack(
            [self.side_heads[side](_pool(halves[side])) for side in PATIENT_SIDES], -1
        )  # (B, items, sides)
        return torch.cat([self.labels_head(_pool(maps)), sided.flatten(1)], 1)  # SIDE_TARGETS order

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled last-stage activations of the whole image, ``(B, hidden_sizes[-1])``."""
        return self._maps(images).mean((2, 3))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(images))

    def save(self, folder: str | os.PathLike[str]) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        raw = {**asdict(self.config), "targets": list(TARGETS), "thresholds": self.thresholds}
        (folder / "config.json").write_text(json.dumps(raw, indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> FindingClassifier:
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise InputError(f"{folder.name}: not a classifier folder (config.json and model.safetensors expected).")
        raw = json.loads((folder / "config.json").read_text())
        if raw.pop("targets", list(TARGETS)) != list(TARGETS):
            raise InputError(f"{folder.name}: classifier trained for other targets; retrain it.")
        thresholds = raw.pop("thresholds", {})
        model = cls(ClassifierConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        model.thresholds = {k: float(v) for k, v in thresholds.items()}
        return model.eval()
