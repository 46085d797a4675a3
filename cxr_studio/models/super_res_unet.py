"""The super-resolution denoiser: diffusers ``UNet2DModel`` on ``cat([noisy high-res, upsampled low-res])`` (SR3)."""

from __future__ import annotations

from diffusers import UNet2DModel

from cxr_studio.config import SuperResConfig


def build_super_res_unet(config: SuperResConfig, *, output_size: int) -> UNet2DModel:
    """``unet(cat([x_t, low_res_up]) (B, 2, H, W), t, class_labels=aug_t).sample`` -> noise ``(B, 1, H, W)``.

    ``class_labels`` carries the noise-augmentation timestep of the low-res condition (as in Imagen's
    conditioning augmentation), so one model serves clean and noisy conditions.
    """
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
