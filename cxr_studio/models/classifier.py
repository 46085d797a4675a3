"""The finding classifier: the evaluation's offline judge and feature extractor.

A small transformers ``ResNetForImageClassification`` (grayscale in) trained by the project on a
manifest (:func:`cxr_studio.evaluation.classifier.fit_classifier`). It scores the 14 CheXpert labels plus
two laterality targets (a one-sided finding on the patient's left / right), and its pooled features
are the embedding that realism (FID, KID, precision/recall) and the privacy screen use when no
Inception weights are given. Saved as ``config.json`` + ``model.safetensors``.
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

SIDE_TARGETS = ("Left-sided finding", "Right-sided finding")  # patient's left / right
TARGETS = (*CHEXPERT_LABELS, *SIDE_TARGETS)


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 96
    embedding_size: int = 16
    hidden_sizes: tuple[int, ...] = (16, 32, 64, 128)
    depths: tuple[int, ...] = (1, 1, 1, 1)


def targets_for(row: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """A manifest row -> ``(targets, known)``, both ``(len(TARGETS),)`` float32.

    CheXpert 1 -> 1; 0 and blank -> 0; -1 (uncertain) -> unknown (not trained on, not scored). The side
    targets come from a ``findings`` column (phantom manifests: ``name:side:severity[:zone]`` joined by
    ``;``) and are unknown when the manifest has none.
    """
    targets = np.zeros(len(TARGETS), np.float32)
    known = np.ones(len(TARGETS), np.float32)
    for i, label in enumerate(CHEXPERT_LABELS):
        value = row.get(label, "")
        if value == "-1":
            known[i] = 0.0
        elif value == "1":
            targets[i] = 1.0
    if "findings" not in row:
        known[-2:] = 0.0
    else:
        sides = finding_sides(row["findings"])
        targets[-2], targets[-1] = float("left" in sides), float("right" in sides)
    return targets, known


def finding_sides(findings: str) -> set[str]:
    """Patient sides named by a phantom ``findings`` field (``name:side:...`` joined by ``;``); "both" is both."""
    sides: set[str] = set()
    for part in findings.split(";"):
        fields = part.split(":")
        if len(fields) >= 2:
            sides |= {"left", "right"} if fields[1] == "both" else {fields[1]} & {"left", "right"}
    return sides


class FindingClassifier(torch.nn.Module):
    """``images`` ``(B, 1, S, S)`` in ``[-1, 1]`` -> ``logits`` ``(B, len(TARGETS))``; ``features`` ``(B, D)``."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetForImageClassification

        self.config = config
        self.net = ResNetForImageClassification(ResNetConfig(
            num_channels=1, embedding_size=config.embedding_size, hidden_sizes=list(config.hidden_sizes), depths=list(config.depths),
            layer_type="basic", num_labels=len(TARGETS), problem_type="multi_label_classification",
        ))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=images).logits

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate activations, ``(B, hidden_sizes[-1])``."""
        return self.net.resnet(pixel_values=images).pooler_output.flatten(1)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(images))

    def save(self, folder: str | os.PathLike[str]) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({**asdict(self.config), "targets": list(TARGETS)}, indent=2))
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
        model = cls(ClassifierConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return model.eval()
