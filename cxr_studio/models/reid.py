"""The patient re-identification network (Packhäuser et al. 2022, CheXGenBench's privacy metric): a Siamese
transformers ``ResNetModel`` (grayscale in) that says whether two radiographs show the same patient.
Both images go through one trunk to unit-length embeddings; the score is their cosine similarity, scaled and
shifted to a logit by two learned numbers (as SigLIP does). The score is monotone in the similarity, so two
identical images always score the maximum: an exact copy of a training image can never pass the screen (the
first version compared ``|a - b|`` through a small head, whose value at zero difference was whatever it learned:
it flagged 4 % of planted exact copies). Trained by :func:`cxr_studio.evaluation.reid.fit_reid` on patients
imaged at several studies; ``threshold`` is calibrated on held-out pairs at a stated false-positive rate. Saved
as ``config.json`` (with the threshold) + ``model.safetensors``.
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
        self.scale = torch.nn.Parameter(torch.tensor(10.0))  # logit = scale * (cosine - bias)
        self.bias = torch.nn.Parameter(torch.tensor(0.5))
        self.threshold: float | None = None  # score above it: "same patient" (calibrated on held-out pairs)
        self.false_positive_rate: float | None = None  # the rate the threshold was calibrated at

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings ``(B, D)``."""
        return torch.nn.functional.normalize(self.trunk(pixel_values=images).pooler_output.flatten(1), dim=-1)

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(..., D)`` and ``(..., D)`` -> same-patient logits ``(...)``; symmetric, largest when
        a == b."""
        return self.scale * ((a * b).sum(-1) - self.bias)

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
