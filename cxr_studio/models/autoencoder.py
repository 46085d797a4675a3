"""The autoencoder: diffusers ``AutoencoderKL``, grayscale in and out, downsampling factor 4 (Cheff)."""

from __future__ import annotations

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
