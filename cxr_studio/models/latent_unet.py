"""The report-conditioned latent denoiser: diffusers ``UNet2DConditionModel`` with cross-attention."""

from __future__ import annotations

from diffusers import UNet2DConditionModel

from cxr_studio.config import LatentUNetConfig


def build_latent_unet(config: LatentUNetConfig, *, latent_channels: int, latent_size: int, context_dim: int) -> UNet2DConditionModel:
    """``unet(latents (B, C, h, w), t, encoder_hidden_states=prompt_embeds (B, L, D)).sample`` -> noise ``(B, C, h, w)``."""
    down = tuple("CrossAttnDownBlock2D" if attn else "DownBlock2D" for attn in config.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(config.attention_levels))
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        cross_attention_dim=context_dim,
        attention_head_dim=config.num_heads,  # legacy diffusers naming: this is the number of heads here
        norm_num_groups=config.norm_num_groups,
    )
