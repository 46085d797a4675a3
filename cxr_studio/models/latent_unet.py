"""The report-conditioned latent denoiser: diffusers ``UNet2DConditionModel`` with cross-attention.

Its call contract lives here (:func:`predict`). Beside the latents the UNet may take input channels that say
*where*, because convolutions and attention without position embeddings are nearly translation-equivariant and
cross-attention reaches only the coarser levels:

- two coordinate channels (column and row), so "left" need not be inferred from anatomy drawn in the same step;
- after them, one layout channel per item group (:data:`~cxr_studio.layout.LAYOUT_GROUPS`): where each finding or
  device goes (:func:`~cxr_studio.layout.rasterize`), zero where none is asked for.

``in_channels = latent channels + coordinates (0 or 2) + layout channels (0 or len(LAYOUT_GROUPS))``; a UNet with
layout channels always has both coordinate channels, so every saved folder says what it takes through its own
``in_channels``. Both kinds are added to a trained UNet with zero weights (:func:`add_input_channels`): it then
computes exactly what it did, and fine-tuning learns to use them.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from cxr_studio.config import LatentUNetConfig
from cxr_studio.layout import LAYOUT_GROUPS

COORDINATES = 2  # column and row
# The layout maps enter scaled: their weights start at zero beside trained ones, and Adam moves every weight by about
# the learning rate per step, so a map in [0, 10] makes each step's change to the layout pathway ten times larger
# (at [0, 1] a fine-tuning run's few hundred steps leave the layout weights too small to steer anything).
LAYOUT_INPUT_SCALE = 10.0


def build_latent_unet(
    config: LatentUNetConfig, *, latent_channels: int, latent_size: int, context_dim: int
) -> UNet2DConditionModel:
    """A new UNet; call it through :func:`predict`."""
    down = tuple("CrossAttnDownBlock2D" if attn else "DownBlock2D" for attn in config.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(config.attention_levels))
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels + config.coordinate_channels + config.layout_channels,
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
    return min(COORDINATES, unet.config.in_channels - unet.config.out_channels)


def layout_channels(unet: UNet2DConditionModel) -> int:
    """How many layout channels ``unet`` takes after its coordinate channels (0 or ``len(LAYOUT_GROUPS)``)."""
    return unet.config.in_channels - unet.config.out_channels - coordinate_channels(unet)


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
    layout: torch.Tensor | None = None,
) -> torch.Tensor:
    """The latent UNet's call contract: noisy ``latents`` ``(B, C, h, w)`` at ``timesteps``, the report's
    ``prompt_embeds`` ``(B, L, D)`` with ``prompt_mask`` ``(B, L)``, and for a UNet with layout channels the layout
    maps ``(B, len(LAYOUT_GROUPS), h, w)`` in ``[0, 1]`` (None: no layout, all zeros; they enter scaled by
    :data:`LAYOUT_INPUT_SCALE`) -> the schedule's prediction ``(B, C, h, w)``. A layout given to a UNet without
    layout channels raises ``ValueError``."""
    inputs = with_coordinates(latents, coordinate_channels(unet))
    n = layout_channels(unet)
    if layout is not None and not n:
        raise ValueError("this latent UNet takes no layout")
    if n:
        if layout is None:
            layout = latents.new_zeros(latents.shape[0], n, *latents.shape[2:])
        inputs = torch.cat([inputs, LAYOUT_INPUT_SCALE * layout.to(inputs)], 1)
    return unet(inputs, timesteps, encoder_hidden_states=prompt_embeds, encoder_attention_mask=prompt_mask).sample


@torch.no_grad()
def add_input_channels(
    unet: UNet2DConditionModel, *, coordinates: int = COORDINATES, layout: int = 0
) -> UNet2DConditionModel:
    """``unet`` taking ``coordinates`` coordinate channels and ``layout`` layout channels (0 or
    ``len(LAYOUT_GROUPS)``; layout channels bring both coordinate channels): the first convolution widened, the
    new channels' weights zero, so it computes exactly what it did before and fine-tuning learns to use them.
    Channels it has already are kept as they are. Returns ``unet`` (changed)."""
    if layout not in (0, len(LAYOUT_GROUPS)):
        raise ValueError(f"{layout} layout channels; 0 or {len(LAYOUT_GROUPS)} (one per item group)")
    have_coordinates, have_layout = coordinate_channels(unet), layout_channels(unet)
    coordinates = COORDINATES if layout or have_layout else max(coordinates, have_coordinates)
    layout = max(layout, have_layout)
    if (coordinates, layout) == (have_coordinates, have_layout):
        return unet
    old = unet.conv_in
    latent = unet.config.out_channels
    new = torch.nn.Conv2d(latent + coordinates + layout, old.out_channels, old.kernel_size, padding=old.padding)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    new.weight.zero_()
    new.weight[:, : latent + have_coordinates] = old.weight[:, : latent + have_coordinates]
    new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)
    return unet
