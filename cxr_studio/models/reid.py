"""The patient re-identification network (Packhäuser et al. 2022, CheXGenBench's privacy metric): a Siamese
transformers ``ResNetModel`` (grayscale in) that says whether two radiographs show the same patient.

Both images go through one trunk; the absolute difference of their pooled embeddings goes through a small head to
one logit (same patient). Trained by :func:`cxr_studio.evaluation.reid.fit_reid` on patients imaged at several
studies; ``threshold`` is calibrated on held-out pairs at a stated false-positive rate. Saved as ``config.json``
(with the threshold) + ``model.safetensors``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cxr_studio.errors import InputError


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
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        raw = {**asdict(self.config), "threshold": self.threshold, "false_positive_rate": self.false_positive_rate}
        (folder / "config.json").write_text(json.dumps(raw, indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> ReIdNetwork:
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise InputError(f"{folder.name}: not a re-identification network (config.json and model.safetensors).")
        raw = json.loads((folder / "config.json").read_text())
        threshold, rate = raw.pop("threshold", None), raw.pop("false_positive_rate", None)
        model = cls(ReIdConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        model.threshold, model.false_positive_rate = threshold, rate
        return model.eval()
