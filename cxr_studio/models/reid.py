"""The patient re-identification network (Packhäuser et al. 2022, CheXGenBench's privacy metric): a Siamese
transformers ``ResNetModel`` (grayscale in) that says whether two radiographs show the same patient.

Both images go through one trunk; the absolute difference of their pooled embeddings goes through a small head to
one logit (same patient). Trained by :func:`cxr_studio.evaluation.reid.fit_reid` on patients imaged at several
studies; ``threshold`` is calibrated on held-out pairs at a stated false-positive rate. Saved as ``config.json``
(with the threshold) + ``model.safetensors``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

from cxr_studio.models.resnet import grayscale_resnet, read_folder, save_folder


@dataclass(frozen=True)
class ReIdConfig:
    image_size: int = 128
    embedding_size: int = 32
    hidden_sizes: tuple[int, ...] = (32, 64, 128, 256)
    depths: tuple[int, ...] = (1, 1, 2, 1)


class ReIdNetwork(torch.nn.Module):
    """``embed``: ``(B, 1, S, S)`` in ``[-1, 1]`` -> ``(B, D)``; ``compare``: two embeddings -> same-patient logits."""

    def __init__(self, config: ReIdConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = grayscale_resnet(
            embedding_size=config.embedding_size, hidden_sizes=config.hidden_sizes, depths=config.depths
        )
        width = config.hidden_sizes[-1]
        self.head = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))
        self.threshold: float | None = None  # score above it: "same patient" (calibrated on held-out pairs)
        self.false_positive_rate: float | None = None  # the rate the threshold was calibrated at

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(pixel_values=images).pooler_output.flatten(1)

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, D)`` and ``(B, D)`` -> logits ``(B,)``; symmetric in ``a`` and ``b``."""
        return self.head((a - b).abs()).squeeze(-1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.compare(self.embed(a), self.embed(b))

    def save(self, folder: str | os.PathLike[str]) -> None:
        raw = {**asdict(self.config), "threshold": self.threshold, "false_positive_rate": self.false_positive_rate}
        save_folder(self, raw, folder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> ReIdNetwork:
        raw, weights = read_folder(folder, what="re-identification network")
        threshold, rate = raw.pop("threshold", None), raw.pop("false_positive_rate", None)
        model = cls(ReIdConfig(**raw))
        model.load_state_dict(weights)
        model.threshold, model.false_positive_rate = threshold, rate
        return model.eval()
