"""The super-resolution stage: (downsampled, original) pairs, or Cheff's fine-tuning on autoencoder reconstructions;
conditioning augmentation; a fresh UNet of the preset's architecture with ``--sr-reinit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from cxr_studio import CXRStudio, imaging, save_png
from cxr_studio.config import preset
from cxr_studio.data.dataset import EmptySplit, ManifestDataset, SuperResPairs
from cxr_studio.diffusion.objectives import loss_weights, noised_example, weighted_mse
from cxr_studio.diffusion.schedules import training_scheduler
from cxr_studio.models.super_res_unet import augment, augmentation_timestep, upsample
from cxr_studio.models.super_res_unet import predict as predict_super_res
from training.config import TrainConfig
from training.stages.common import StageBase, grid, log, save
from training.stages.surgery import reinitialised_super_res


class SuperResTask(StageBase):
    def __init__(self, config: TrainConfig, studio: CXRStudio) -> None:
        if config.sr_reinit:  # a resumed run re-creates the same architecture, then loads its checkpoint
            studio = reinitialised_super_res(studio, preset(config.preset), seed=config.seed)
        super().__init__(config, studio)
        self.modules = {"super_res_unet": studio.super_res_unet.train()}
        self.noise_schedule = training_scheduler(studio.config.sr_schedule)
        self.crop = min(config.sr_crop, studio.config.output_size)

    def _pairs(self, split: str) -> SuperResPairs:
        c = self.studio.config
        return SuperResPairs(
            self.config.manifest,
            size=c.output_size,
            factor=c.super_res.factor,
            crop=self.crop,
            seed=self.config.seed,
            splits=(split,),
            full_low=self.config.sr_low_res == "autoencoder",
        )

    def train_dataset(self) -> Dataset:
        return self._pairs("train")

    def val_dataset(self) -> Dataset | None:
        try:
            return self._pairs("val")
        except EmptySplit:  # no validation split in this manifest
            return None

    @torch.no_grad()
    def _low_res(self, batch: dict[str, Any]) -> torch.Tensor:
        """The condition: bicubic downsampling, or what the cascade really feeds SR (Cheff's fine-tuning):
        the autoencoder's reconstruction of the whole low-resolution image, then the crop. Why whole: its
        GroupNorm statistics are the image's; a crop alone (all lung, say) decodes with the wrong contrast."""
        if self.config.sr_low_res != "autoencoder":
            return batch["low"].to(self.studio.device)
        recon = self._reconstruct(batch["low_full"].to(self.studio.device))
        return torch.stack(
            [
                r[:, top : top + side, left : left + side]
                for r, (top, left, side) in zip(recon, batch["low_box"].tolist())
            ]
        )

    @torch.no_grad()
    def _reconstruct(self, low: torch.Tensor) -> torch.Tensor:
        return self.studio.codec.decode(self.studio.codec.encode(low))

    def loss(
        self, batch: dict[str, Any], *, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.studio.device
        high = batch["high"].to(device)
        condition = upsample(self._low_res(batch), self.studio.config.super_res.factor)
        steps = self.noise_schedule.config.num_train_timesteps
        # conditioning augmentation: noise the condition by a random amount and tell the model how much
        aug_max = augmentation_timestep(self.studio.config.super_res.noise_augmentation, steps)
        aug_t = torch.randint(0, aug_max + 1, (len(high),), generator=generator, device=device)
        augmentation = torch.randn(condition.shape, generator=generator, device=device)
        condition = augment(condition, augmentation, aug_t, self.noise_schedule)
        noisy, t, target = noised_example(self.noise_schedule, high, generator)
        predicted = predict_super_res(
            self.modules["super_res_unet"], noisy, t, condition=condition, noise_level_t=aug_t
        )
        loss = weighted_mse(predicted, target, loss_weights(self.noise_schedule, t, snr_gamma=self.config.snr_gamma))
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def samples(self, path: Path) -> None:
        c = self.studio.config
        full = self._val(ManifestDataset, size=c.output_size) or ManifestDataset(
            self.config.manifest, size=c.output_size
        )
        rows = []
        for i in range(min(2, len(full))):
            image = full.load(i, c.output_size)
            if image is None:
                continue
            low = imaging.to_tensor(imaging.resize(image, (c.image_size, c.image_size))).to(self.studio.device)
            if self.config.sr_low_res == "autoencoder":
                low = self._reconstruct(low)
            sr = self.studio.super_resolution(
                low,
                seeds=[0],
                num_steps=c.sampling.sr_num_steps,
                sampler=c.sampling.sr_sampler,
                noise_level=c.sampling.sr_noise_level,
            )
            rows.append([imaging.from_tensor(upsample(low, c.super_res.factor))[0], imaging.from_tensor(sr)[0], image])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, grid(rows), parameters={"grid": "bicubic | super-resolved | original"}, synthetic=True)

    def export(self) -> None:
        save(self.studio, self.studio.config, self.config.out, **self.modules)
        log.info("super-resolution UNet exported to %s", self.config.out)
