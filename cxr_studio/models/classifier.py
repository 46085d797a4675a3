"""The finding classifier: the evaluation's offline judge and feature extractor.

A small transformers ``ResNetModel`` (grayscale in) trained by the project on a manifest
(:func:`cxr_studio.evaluation.classifier.fit_classifier`). It scores the 14 CheXpert labels and every
one-sided finding and sided device per patient side (:data:`SIDE_TARGETS`), and its pooled features are
the embedding that realism (FID, KID, precision/recall) and the privacy screen use when no Inception
weights are given. Saved as ``config.json`` (with the verdict thresholds) + ``model.safetensors``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cxr_studio.errors import InputError
from cxr_studio.labels import CHEXPERT_LABELS, PATIENT_SIDES, SIDED_ITEMS, TARGETS
from cxr_studio.models.resnet import grayscale_resnet, read_folder, save_folder


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 128  # small nodules (3 px across at 128) and leads are visible from 128 px up
    embedding_size: int = 32
    hidden_sizes: tuple[int, ...] = (32, 64, 128, 256)
    depths: tuple[int, ...] = (1, 1, 2, 1)


def pool(maps: torch.Tensor) -> torch.Tensor:
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
        self.config = config
        self.trunk = grayscale_resnet(
            embedding_size=config.embedding_size, hidden_sizes=config.hidden_sizes, depths=config.depths
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
            [self.side_heads[side](pool(halves[side])) for side in PATIENT_SIDES], -1
        )  # (B, items, sides)
        return torch.cat([self.labels_head(pool(maps)), sided.flatten(1)], 1)  # SIDE_TARGETS order

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled last-stage activations of the whole image, ``(B, hidden_sizes[-1])``."""
        return self._maps(images).mean((2, 3))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(images))

    def save(self, folder: str | os.PathLike[str]) -> None:
        save_folder(self, {**asdict(self.config), "targets": list(TARGETS), "thresholds": self.thresholds}, folder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> FindingClassifier:
        raw, weights = read_folder(folder, what="classifier")
        if list(raw.pop("targets", TARGETS)) != list(TARGETS):
            raise InputError(f"{Path(folder).name}: classifier trained for other targets; retrain it.")
        thresholds = raw.pop("thresholds", {})
        model = cls(ClassifierConfig(**raw))
        model.load_state_dict(weights)
        model.thresholds = {k: float(v) for k, v in thresholds.items()}
        return model.eval()
