"""The autoencoder: diffusers ``AutoencoderKL``, grayscale in and out, downsampling factor 4 (Cheff)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from cxr_studio.config import AutoencoderConfig


def build_autoencoder(config: AutoencoderConfig) -> AutoencoderKL:
    """``encode``: ``(B, 1, H, W)`` in ``[-1, 1]`` -> latents ``(B, C, H/f, W/f)``; ``decode`` the reverse."""
    levels = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        mid_block_add_attention=config.mid_block_attention,
        scaling_factor=config.scaling_factor,
    )


class LatentCodec:
    """The autoencoder's call contract for diffusion: images ``(B, 1, H, W)`` in ``[-1, 1]`` <-> scaled latents
    ``(B, C, H/f, W/f)`` with unit variance (the posterior's mode times ``scaling_factor``). Every stage that
    encodes or decodes (generation, editing, training's latent cache, evaluation) goes through here."""

    def __init__(self, autoencoder: AutoencoderKL, *, scaling_factor: float) -> None:
        self.autoencoder = autoencoder
        self.scaling_factor = scaling_factor

    @property
    def device(self) -> torch.device:
        return next(self.autoencoder.parameters()).device

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in ``[-1, 1]`` -> scaled latents."""
        return self.autoencoder.encode(images.to(self.device)).latent_dist.mode() * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images clipped to ``[-1, 1]``."""
        return self.autoencoder.decode(latents.to(self.device) / self.scaling_factor).sample.clamp(-1.0, 1.0)
