"""Low-resolution radiograph -> high resolution: the SR3-style diffusion stage (Cheff, section 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import UNet2DModel

from cxr_studio.config import StudioConfig
from cxr_studio.diffusion.guidance import clip_unless_the_sampler_does
from cxr_studio.diffusion.noise import SR_AUGMENTATION_STREAM, SR_STREAM, seeded_noise
from cxr_studio.diffusion.sampling import PreviewHook, StepCallback, denoise
from cxr_studio.diffusion.schedules import make_sampler, training_scheduler
from cxr_studio.models.super_res_unet import augment, augmentation_timestep, predict, upsample


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
        preview: PreviewHook | None = None,
    ) -> torch.Tensor:
        """Upscale by ``config.super_res.factor``; ``low_res`` in ``[-1, 1]``, result in ``[-1, 1]``
        (``preview``: each step's estimate of the result, in pixels)."""
        factor, schedule = self.config.super_res.factor, self.config.sr_schedule
        # 1. Upsample the condition to the output size
        condition = upsample(low_res.to(self.device), factor)
        # 2. Conditioning augmentation: noise the condition to the level the model is told about
        noise = seeded_noise(seeds, tuple(condition.shape[1:]), stream=SR_STREAM, device=self.device)
        aug_t = torch.full(
            (len(seeds),), augmentation_timestep(noise_level, schedule.num_train_timesteps), device=self.device
        )
        augmentation = seeded_noise(
            seeds, tuple(condition.shape[1:]), stream=SR_AUGMENTATION_STREAM, device=self.device
        )
        condition = augment(condition, augmentation, aug_t, training_scheduler(schedule))
        # 3. Denoise the high-resolution image next to its condition
        denoise_fn = lambda x, t: predict(self.super_res_unet, x, t, condition=condition, noise_level_t=aug_t)
        scheduler = make_sampler(sampler, schedule, clip=1.0)  # pixels live in [-1, 1]
        denoise_fn = clip_unless_the_sampler_does(denoise_fn, scheduler, schedule, 1.0)
        image = denoise(denoise_fn, noise, scheduler, num_steps, callback=callback, preview=preview)
        return image.clamp(-1.0, 1.0)
