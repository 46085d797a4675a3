"""Few-shot adaptation of any model family's denoiser: a LoRA adapter (peft), or every denoiser weight.

``python -m training.finetune --model DIR --manifest M --method lora --rank R --max-steps N --out ADAPTER``

The base model is a cascade or a diffusers folder (Stable Diffusion, PixArt-Sigma, Sana); its text encoder and
VAE stay frozen, and the family's own objective trains the denoiser (:meth:`LatentFamily.training_example`).
``--prior-report`` mixes the base model's own samples of a class report into every run (prior preservation, as
DreamBooth and RoentGen do). A LoRA run writes ``ADAPTER/pytorch_lora_weights.safetensors`` (diffusers' format,
the base model recorded); ``--method full`` writes a whole model folder. Runs resume with ``--resume``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from cxr_studio import imaging
from cxr_studio.data.dataset import ManifestDataset
from cxr_studio.diffusion.objectives import drop_reports
from cxr_studio.errors import InputError
from cxr_studio.files import write_atomic
from cxr_studio.model_folders import load_model
from cxr_studio.pipeline.adapters import add_lora, save_lora
from cxr_studio.pipeline.studio import CXRStudio
from training._cli import main_for_stage
from training.config import TrainConfig

log = logging.getLogger("training")
ENCODE_BATCH = 8


class _Examples(Dataset):
    """Cached latents with their reports and whether each is a prior-preservation sample."""

    def __init__(self, latents: torch.Tensor, reports: list[str], prior: list[bool]) -> None:
        self.latents, self.reports, self.prior = latents, reports, prior

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"latents": self.latents[index], "report": self.reports[index], "prior": self.prior[index]}


class FinetuneTask:
    """The fine-tuning run as a :class:`training.loop.Task`: one trained module, the family's denoiser."""

    def __init__(self, config: TrainConfig, studio: Any) -> None:
        self.config = config
        self.studio = studio
        self.family = studio.family
        self.base_model = studio.model_id
        for module in studio.modules().values():  # text encoder, VAE (and the cascade's SR): frozen
            module.requires_grad_(False).eval()
        denoiser = self.family.denoiser
        self._priors = self._prior_latents()  # before the adapter exists: the base model's own samples
        if config.method == "lora":
            add_lora(denoiser, rank=config.rank, seed=config.seed)
        else:
            denoiser.requires_grad_(True)
        self.modules = {"denoiser": denoiser}

    # --- data ---------------------------------------------------------------------------------------------

    def _prior_latents(self) -> tuple[torch.Tensor, list[str]] | None:
        """The base model's samples of ``prior_report``, made once and cached in the run folder."""
        cfg = self.config
        if not cfg.prior_report or not cfg.prior_images:
            return None
        cache = cfg.run_dir / "prior_latents.safetensors"
        if cache.is_file():
            return load_file(str(cache))["latents"], [cfg.prior_report] * cfg.prior_images
        log.info("making %d prior-preservation samples of %r with the base model", cfg.prior_images, cfg.prior_report)
        latents = torch.cat(
            [
                self.studio.sample_latents(cfg.prior_report, seed=cfg.seed * 100_003 + k, num_steps=cfg.sample_steps)
                for k in range(cfg.prior_images)
            ]
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"latents": latents.contiguous().cpu()}, str(cache))
        return latents.cpu(), [cfg.prior_report] * cfg.prior_images

    @torch.no_grad()
    def train_dataset(self) -> Dataset:
        rows = ManifestDataset(self.config.manifest, size=self.family.image_size, splits=("train",))
        count = min(len(rows), self.config.finetune_images or len(rows))
        latents, reports = [], []
        for start in range(0, count, ENCODE_BATCH):
            items = [rows[i] for i in range(start, min(start + ENCODE_BATCH, count))]
            items = [item for item in items if item is not None]
            if items:
                images = torch.stack([item["image"] for item in items]).to(self.studio.device)
                latents.append(self.family.encode_image(images).cpu())
                reports += [item["report"] for item in items]
        if not latents:
            raise InputError(f"{self.config.manifest} has no readable training images to fine-tune on.")
        prior = [False] * len(reports)
        if self._priors is not None:
            latents.append(self._priors[0])
            reports += self._priors[1]
            prior += [True] * len(self._priors[1])
        log.info("fine-tuning on %d images (+ %d prior samples)", count, sum(prior))
        return _Examples(torch.cat(latents), reports, prior)

    def val_dataset(self) -> Dataset | None:
        return None  # few-shot: every image trains; the sample grids and the evaluation judge the result

    def sample_weights(self) -> np.ndarray | None:
        return None

    # --- objective --------------------------------------------------------------------------------------------

    def loss(
        self, batch: dict[str, Any], *, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.studio.device
        latents = batch["latents"].to(device)
        reports = drop_reports(list(batch["report"]), fraction=self.config.report_dropout, generator=generator)
        with torch.no_grad():
            embeds, mask = self.family.encode_reports(reports)
        noisy, t, target = self.family.training_example(latents, generator)
        predicted = self.family.predict(noisy, t, embeds, mask)
        per_sample = ((predicted.float() - target.float()) ** 2).flatten(1).mean(1)
        prior = batch["prior"].to(device).bool()
        weights = torch.where(
            prior, torch.full_like(per_sample, self.config.prior_weight), torch.ones_like(per_sample)
        )
        loss = (per_sample * weights).sum() / weights.sum().clamp(min=1e-8)
        logs = {"loss": float(loss.detach())}
        if prior.any():
            logs["prior_loss"] = float(per_sample[prior].mean().detach())
        return loss, logs

    # --- outputs ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def samples(self, path: Path) -> None:
        """A row of samples of the first training reports (fixed seeds), so a run can be followed by eye."""
        rows = ManifestDataset(self.config.manifest, size=8, splits=("train",)).rows
        reports = [row["report"] for row in rows[:4]]
        result = self.studio.generate_batch(
            reports, seeds=list(range(len(reports))), num_steps=self.config.sample_steps, upscale=False
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        imaging.save_png(path, imaging.to_uint8(np.concatenate(list(result.pixels), axis=1)))

    def export(self) -> None:
        cfg, out = self.config, Path(self.config.out)
        if cfg.method == "lora":
            save_lora(self.family.denoiser, out, base_model=self.base_model, rank=cfg.rank)
        elif isinstance(self.studio, CXRStudio):  # a cascade: a whole model folder
            self.studio.save_pretrained(out)
        else:
            self.family.pipe.save_pretrained(out, safe_serialization=True)
        card = {"base_model": self.base_model, "family": self.studio.family_name, **json.loads(cfg.to_json())}
        write_atomic(out / "adapter_card.json", json.dumps(card, indent=2).encode())

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


def build(config: TrainConfig) -> FinetuneTask:
    return FinetuneTask(config, load_model(config.model or None))


def main(argv: Sequence[str] | None = None) -> int:
    return main_for_stage("finetune", __doc__.splitlines()[0], argv, build=build)


if __name__ == "__main__":
    raise SystemExit(main())
