"""The super-resolution denoiser: diffusers ``UNet2DModel`` on ``cat([noisy high-res, upsampled low-res])`` (SR3),
and its call contract: the condition's upsampling, its conditioning augmentation and the call itself, used by
sampling, training and the benchmark alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from cxr_studio.config import SuperResConfig


def build_super_res_unet(config: SuperResConfig, *, output_size: int) -> UNet2DModel:
    """The denoiser for :func:`predict`: 2 input channels (noisy image, condition), 1 output, and a timestep
    class embedding that carries the condition's noise-augmentation level (Imagen's conditioning augmentation),
    so one model serves clean and noisy conditions."""
    down = tuple("AttnDownBlock2D" if attn else "DownBlock2D" for attn in config.attention_levels)
    up = tuple("AttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(config.attention_levels))
    return UNet2DModel(
        sample_size=output_size,
        in_channels=2,
        out_channels=1,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        add_attention=any(config.attention_levels),
        class_embed_type="timestep",
    )


def upsample(low_res: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, 1, h, w)`` -> ``(B, 1, h*factor, w*factor)``, bicubic, clipped to ``[-1, 1]`` (the SR condition)."""
    return F.interpolate(low_res, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def augmentation_timestep(noise_level: float, num_train_timesteps: int) -> int:
    """Noise level as a fraction of the schedule -> the timestep the condition is noised to."""
    return round(noise_level * (num_train_timesteps - 1))


def augment(
    condition: torch.Tensor, noise: torch.Tensor, noise_level_t: torch.Tensor, schedule: SchedulerMixin
) -> torch.Tensor:
    """Conditioning augmentation: the upsampled condition noised to timestep ``noise_level_t`` ``(B,)`` of the
    SR training ``schedule``, as in sampling (a fixed level) and in training (a random level per image)."""
    return schedule.add_noise(condition, noise, noise_level_t)


def predict(
    unet: UNet2DModel, x: torch.Tensor, t: torch.Tensor | int, *, condition: torch.Tensor, noise_level_t: torch.Tensor
) -> torch.Tensor:
    """The model's output for the noisy high-resolution ``x`` ``(B, 1, H, W)`` at timestep ``t``, given the
    upsampled, augmented ``condition`` ``(B, 1, H, W)`` in ``[-1, 1]`` and its augmentation timestep
    ``noise_level_t`` ``(B,)``: noise, sample or velocity, as the SR schedule's prediction type says."""
    return unet(torch.cat([x, condition], dim=1), t, class_labels=noise_level_t).sample
