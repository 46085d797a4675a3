"""The report-conditioned latent denoiser: diffusers ``UNet2DConditionModel`` with cross-attention.

Its call contract lives here (:func:`predict`): the UNet may take two coordinate channels beside the
latents (``in_channels = latent channels + 2``), because convolutions and attention without position
embeddings are nearly translation-equivariant, so "left" would otherwise have to be inferred from anatomy
drawn in the same step. Whether a UNet has them is read off the UNet itself, so every saved folder says.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from cxr_studio.config import LatentUNetConfig


def build_latent_unet(
    config: LatentUNetConfig, *, latent_channels: int, latent_size: int, context_dim: int
) -> UNet2DConditionModel:
    """A new UNet; call it through :func:`predict`."""
    down = tuple("CrossAttnDownBlock2D" if attn else "DownBlock2D" for attn in config.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(config.attention_levels))
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels + config.coordinate_channels,
        out_channels=latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        cross_attention_dim=context_dim,
        attention_head_dim=config.num_heads,  # legacy diffusers naming: this is the number of heads here
        norm_num_groups=config.norm_num_groups,
    )


def coordinate_channels(unet: UNet2DConditionModel) -> int:
    """How many coordinate channels ``unet`` takes beside the latents (0 or 2)."""
    return unet.config.in_channels - unet.config.out_channels


def with_coordinates(latents: torch.Tensor, channels: int) -> torch.Tensor:
    """``latents`` ``(B, C, h, w)`` -> ``(B, C + channels, h, w)``: the column coordinate (-1 at the image's left,
    the patient's right, to 1) and the row coordinate (-1 at the top to 1), as many of them as ``channels``."""
    if not channels:
        return latents
    b, _, h, w = latents.shape
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device=latents.device, dtype=latents.dtype),
        torch.linspace(-1, 1, w, device=latents.device, dtype=latents.dtype),
        indexing="ij",
    )
    return torch.cat([latents, torch.stack([xs, ys][:channels]).expand(b, -1, -1, -1)], 1)


def predict(
    unet: UNet2DConditionModel,
    latents: torch.Tensor,
    timesteps: torch.Tensor | int,
    *,
    prompt_embeds: torch.Tensor,
    prompt_mask: torch.Tensor,
) -> torch.Tensor:
    """The latent UNet's call contract: noisy ``latents`` ``(B, C, h, w)`` at ``timesteps``, the report's
    ``prompt_embeds`` ``(B, L, D)`` with ``prompt_mask`` ``(B, L)`` -> the schedule's prediction ``(B, C, h, w)``."""
    inputs = with_coordinates(latents, coordinate_channels(unet))
    return unet(inputs, timesteps, encoder_hidden_states=prompt_embeds, encoder_attention_mask=prompt_mask).sample


@torch.no_grad()
def add_coordinate_channels(unet: UNet2DConditionModel, channels: int = 2) -> UNet2DConditionModel:
    """``unet`` with ``channels`` coordinate inputs added to its first convolution, their weights zero, so it
    computes exactly what it did before; fine-tuning then learns to use them. Returns ``unet`` (changed)."""
    old = unet.conv_in
    if coordinate_channels(unet) >= channels:
        return unet
    new = torch.nn.Conv2d(unet.config.out_channels + channels, old.out_channels, old.kernel_size, padding=old.padding)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    new.weight.zero_()
    new.weight[:, : old.in_channels] = old.weight
    new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)
    return unet
