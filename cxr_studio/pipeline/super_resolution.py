"""Low-resolution radiograph -> high resolution: the SR3-style diffusion stage (Cheff, section 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from cxr_studio.config import StudioConfig
from cxr_studio.diffusion.guidance import clip_predicted_sample
from cxr_studio.diffusion.sampling import StepCallback, denoise
from cxr_studio.diffusion.schedules import make_sampler, training_scheduler
from cxr_studio.pipeline.text_to_image import seeded_noise


def upsample(low_res: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, 1, h, w)`` -> ``(B, 1, h*factor, w*factor)``, bicubic, clipped to ``[-1, 1]`` (the SR condition)."""
    return F.interpolate(low_res, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def augmentation_timestep(noise_level: float, num_train_timesteps: int) -> int:
    """Noise level as a fraction of the schedule -> the timestep the condition is noised to."""
    return round(noise_level * (num_train_timesteps - 1))


class SuperResolutionPipeline:
    """``low_res`` (B, 1, h, w) -> ``image`` (B, 1, h*f, w*f), conditioned by concatenation."""

    def __init__(self, *, config: StudioConfig, super_res_unet: UNet2DModel) -> None:
        self.config = config
        self.super_res_unet = super_res_unet

    @property
    def device(self) -> torch.device:
        return next(self.super_res_unet.parameters()).device

    @torch.no_grad()
    def __call__(
        self,
        low_res: torch.Tensor,
        *,
        seeds: Sequence[int],
        num_steps: int,
        sampler: str,
        noise_level: float,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """Upscale by ``config.super_res.factor``; ``low_res`` in ``[-1, 1]``, result in ``[-1, 1]``."""
        factor, schedule = self.config.super_res.factor, self.config.sr_schedule
        # 1. Upsample the condition to the output size
        condition = upsample(low_res.to(self.device), factor)
        # 2. Conditioning augmentation: noise the condition to the level the model is told about
        noise = seeded_noise(seeds, tuple(condition.shape[1:]), stream=1, device=self.device)
        aug_t = torch.full(
            (len(seeds),), augmentation_timestep(noise_level, schedule.num_train_timesteps), device=self.device
        )
        condition = training_scheduler(schedule).add_noise(
            condition, seeded_noise(seeds, tuple(condition.shape[1:]), stream=2, device=self.device), aug_t
        )
        # 3. Denoise the high-resolution image next to its condition
        denoise_fn = lambda x, t: self.super_res_unet(torch.cat([x, condition], dim=1), t, class_labels=aug_t).sample
        scheduler = make_sampler(sampler, schedule, clip=1.0)  # pixels live in [-1, 1]
        if not scheduler.config.get("clip_sample"):
            alphas = training_scheduler(schedule).alphas_cumprod
            denoise_fn = clip_predicted_sample(denoise_fn, alphas, 1.0, prediction_type=schedule.prediction_type)
        image = denoise(denoise_fn, noise, scheduler, num_steps, callback=callback)
        return image.clamp(-1.0, 1.0)
