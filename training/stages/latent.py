"""The latent stage: report encoder and latent UNet on cached latents of the frozen autoencoder, reports dropped
for classifier-free guidance, and, for a UNet with layout channels, each example's layout (Cheff 7.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from torch.utils.data import Dataset

from cxr_studio import CXRStudio, save_png
from cxr_studio.data.dataset import EmptySplit, ManifestDataset
from cxr_studio.diffusion.objectives import drop_reports, loss_weights, noised_example, weighted_mse
from cxr_studio.diffusion.schedules import training_scheduler
from cxr_studio.labels import side_balance_weights
from cxr_studio.layout import layout_from_report, rasterize
from cxr_studio.models.latent_unet import predict as predict_latent
from cxr_studio.models.report_encoder import build_report_encoder, encode_reports, train_tokenizer
from training import latent_cache
from training.config import TrainConfig
from training.stages.common import GRID_REPORTS, StageBase, grid, log, rebuilt, save
from training.stages.surgery import rescheduled_latent_stage, with_layout_channels


class LatentTask(StageBase):
    def __init__(self, config: TrainConfig, studio: CXRStudio) -> None:
        if config.latent_reschedule:  # the same weights, trained from here on under the preset's parameterisation
            studio = rescheduled_latent_stage(studio, config.preset)
        if config.layout:
            studio = with_layout_channels(studio)
        super().__init__(config, studio)
        if (
            config.latent_keep_encoder
        ):  # fine-tuning: the folder's vocabulary and encoder (a resume loads the checkpoint's)
            self.tokenizer, encoder = studio.tokenizer, studio.report_encoder
        else:
            cache = config.run_dir / "tokenizer"
            with PartialState().main_process_first():  # trained once; the other processes load it
                self.tokenizer = self._tokenizer(cache)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                encoder = build_report_encoder(studio.config.report_encoder, vocab_size=len(self.tokenizer)).to(
                    studio.device
                )
        self.modules = {"report_encoder": encoder.train(), "latent_unet": studio.latent_unet.train()}
        self.noise_schedule = training_scheduler(studio.config.latent_schedule)
        self.max_tokens = studio.config.report_encoder.max_tokens
        # a UNet with layout channels always trains with layouts (without them it would unlearn them)
        self.with_layout = studio.config.latent_unet.layout_channels > 0

    def _tokenizer(self, cache: Path) -> Any:
        """The run's tokenizer: trained on the training reports first (Cheff) and saved; a resumed run (or
        another process) reads the saved one, so the vocabulary never changes under a run."""
        from transformers import BertTokenizerFast

        if cache.is_dir():
            return BertTokenizerFast.from_pretrained(str(cache), local_files_only=True)
        reports = [row["report"] for row in ManifestDataset(self.config.manifest, size=8).rows]
        encoder_config = self.studio.config.report_encoder
        tokenizer = train_tokenizer(
            reports, vocab_size=encoder_config.vocab_size, max_tokens=encoder_config.max_tokens
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(cache))
        return tokenizer

    def _latents(self, split: str) -> Dataset | None:
        """Every image of ``split`` encoded once by the frozen autoencoder (the posterior's mode), cached in
        shards on disk and streamed (:mod:`training.latent_cache`); ``None`` when the split is empty."""
        folder = self.config.run_dir / f"latents-{split}"
        try:
            images = ManifestDataset(self.config.manifest, size=self.studio.config.image_size, splits=(split,))
        except EmptySplit:  # no such split (validation is optional); a corrupt manifest still raises
            return None
        with PartialState().main_process_first():  # encoded once; the other processes read the shards
            if not latent_cache.is_complete(folder):
                latent_cache.build(folder, images, self.studio.codec.encode)
        layouts = images if self.with_layout else None
        return _Named(
            latent_cache.LatentCache(folder),
            [row["report"] for row in images.rows],
            layouts=layouts,
            size=self.studio.config.latent_size,
        )

    def train_dataset(self) -> Dataset:
        dataset = self._latents("train")
        if dataset is None:
            raise ValueError("no training images")
        return dataset

    def val_dataset(self) -> Dataset | None:
        return self._latents("val")

    def sample_weights(self) -> np.ndarray | None:
        """With ``balance_sides``: each cached latent's weight under :func:`labels.side_balance_weights`."""
        if not self.config.balance_sides:
            return None
        rows = ManifestDataset(self.config.manifest, size=8, splits=("train",)).rows
        per_row = side_balance_weights(rows)
        return per_row[latent_cache.LatentCache(self.config.run_dir / "latents-train").indices()]

    def loss(
        self, batch: dict[str, Any], *, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.studio.device
        latents = batch["latents"].to(device)
        reports = list(batch["report"])
        if step >= 0:
            reports = drop_reports(reports, fraction=self.config.report_dropout, generator=generator)
        # the pipeline's own report encoding and objective, on this task's (possibly prepared) modules
        embeds, mask = encode_reports(
            self.tokenizer, self.modules["report_encoder"], reports, max_tokens=self.max_tokens, warn=False
        )
        layout = self._layout(batch, reports, step=step, generator=generator) if self.with_layout else None
        noisy, t, target = noised_example(self.noise_schedule, latents, generator)
        predicted = predict_latent(
            self.modules["latent_unet"], noisy, t, prompt_embeds=embeds, prompt_mask=mask, layout=layout
        )
        loss = weighted_mse(predicted, target, loss_weights(self.noise_schedule, t, snr_gamma=self.config.snr_gamma))
        return loss, {"loss": float(loss.detach())}

    def _layout(
        self, batch: dict[str, Any], reports: list[str], *, step: int, generator: torch.Generator
    ) -> torch.Tensor:
        """The batch's layout maps ``(B, len(LAYOUT_GROUPS), h, w)``: per example the manifest's boxes (a
        ``layout_truth`` fraction, where the row has them) or the rule's layout from its report; none where the
        report was dropped (guidance's unconditional half) or, a ``layout_dropout`` fraction, on its own (so a
        report without a layout still works). Validation (``step < 0``) takes the rule's layout, as sampling does."""
        rule, truth = batch["layout_rule"], batch["layout_truth"]
        if step < 0:
            return rule.to(self.studio.device)
        draws = torch.rand(2, len(reports), generator=generator, device=generator.device).cpu()
        use_truth = (draws[0] < self.config.layout_truth) & batch["has_truth"]
        keep = (draws[1] >= self.config.layout_dropout) & torch.tensor([bool(r) for r in reports])
        maps = torch.where(use_truth[:, None, None, None], truth, rule) * keep[:, None, None, None]
        return maps.to(self.studio.device)

    def _studio(self) -> CXRStudio:
        """The cascade with this stage's current modules (EMA weights while sampling and exporting)."""
        return rebuilt(self.studio, self.studio.config, tokenizer=self.tokenizer, **self.modules)

    @torch.no_grad()
    def samples(self, path: Path) -> None:
        studio = self._studio()
        result = studio.generate(next(iter(GRID_REPORTS)), seed=0, upscale=False, num_steps=self.config.sample_steps)
        images = [result.pixels[0]]
        for report in GRID_REPORTS[1:]:
            images.append(studio.generate(report, seed=0, upscale=False, num_steps=self.config.sample_steps).pixels[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, grid([images]), parameters={"reports": list(GRID_REPORTS), "seed": 0}, synthetic=True)

    def export(self) -> None:
        save(self.studio, self.studio.config, self.config.out, tokenizer=self.tokenizer, **self.modules)
        log.info("report encoder and latent UNet exported to %s", self.config.out)


class _Named(Dataset):
    """Cached latents with their reports, as the dicts the loss expects; with ``layouts`` (the split's images)
    also each image's layout maps at the latent ``size``: ``layout_rule`` (the rule's, from the report),
    ``layout_truth`` (the manifest's boxes; zeros where the row has none) and ``has_truth``."""

    def __init__(
        self,
        cache: latent_cache.LatentCache,
        reports: list[str],
        *,
        layouts: ManifestDataset | None = None,
        size: int = 0,
    ) -> None:
        self.cache, self.reports, self.size = cache, reports, size
        self.rule = [layout_from_report(r) for r in reports] if layouts is not None else None
        self.truth = [layouts.layout(i) for i in range(len(reports))] if layouts is not None else None

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, position: int) -> dict[str, Any]:
        latents, index = self.cache[position]
        item = {"latents": latents, "report": self.reports[index], "index": position}
        if self.rule is not None and self.truth is not None:
            item["layout_rule"] = torch.from_numpy(rasterize(self.rule[index], self.size))
            item["layout_truth"] = torch.from_numpy(rasterize(self.truth[index], self.size))
            item["has_truth"] = self.truth[index] is not None
        return item
