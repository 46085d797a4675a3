"""The report-conditioned latent denoiser: diffusers ``UNet2DConditionModel`` with cross-attention.

Its call contract lives here (:func:`predict`): the UNet may take two coordinate channels beside the
latents (``in_channels = latent channels + 2``), because convolutions and attention without position
embeddings are nearly translation-equivariant, so "left" would otherwise have to be inferred from anatomy
drawn in the same step. Whether a UNet has them is read off the UNet itself, so every saved folder says.

A UNet may also take the report's sided findings as a vector (:data:`FINDINGS`, read from the text by rule:
:func:`findings_vector`) through diffusers' class embedding, which is added to the timestep embedding and so
reaches every ResNet block at every resolution, where cross-attention sees the report only at the coarser levels.
The vector travels as the first token of ``prompt_embeds`` (:func:`with_findings`), masked out of
cross-attention, so every path that carries a report's embeddings (guidance, inpainting, interpolation,
fine-tuning) carries its findings with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.embeddings import TimestepEmbedding

from cxr_studio.config import LatentUNetConfig
from cxr_studio.labels import SIDE_TARGETS, side_vector, sides_in_report

FINDINGS = SIDE_TARGETS  # the findings vector: 1 where the report names the item on that patient side


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
        class_embed_type="projection" if config.findings_embedding else None,
        projection_class_embeddings_input_dim=len(FINDINGS) if config.findings_embedding else None,
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


def findings_inputs(unet: UNet2DConditionModel) -> int:
    """Length of the findings vector ``unet`` takes (0: none; ``len(FINDINGS)`` with a findings embedding)."""
    if unet.config.class_embed_type != "projection":
        return 0
    return int(unet.config.projection_class_embeddings_input_dim)


def findings_vector(report: str) -> np.ndarray:
    """A report -> ``(len(FINDINGS),)`` float32, 1 where it names a sided item on that patient side
    (:func:`~cxr_studio.labels.sides_in_report`); "" (the unconditional report) gives zeros."""
    return side_vector(sides_in_report(report))


def with_findings(
    prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor, reports: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reports' ``prompt_embeds`` ``(B, L, D)`` and mask ``(B, L)`` -> ``(B, 1 + L, D)`` and ``(B, 1 + L)``:
    first a token holding each report's :func:`findings_vector` in its first ``len(FINDINGS)`` entries (zeros
    after), masked out of cross-attention; :func:`predict` hands it to the UNet's findings embedding."""
    b, _, width = prompt_embeds.shape
    if width < len(FINDINGS):
        raise ValueError(f"a findings token needs embeddings at least {len(FINDINGS)} wide, not {width}")
    token = prompt_embeds.new_zeros(b, 1, width)
    token[:, 0, : len(FINDINGS)] = torch.from_numpy(np.stack([findings_vector(r) for r in reports])).to(token)
    return torch.cat([token, prompt_embeds], 1), torch.cat([prompt_mask.new_zeros(b, 1), prompt_mask], 1)


def predict(
    unet: UNet2DConditionModel,
    latents: torch.Tensor,
    timesteps: torch.Tensor | int,
    *,
    prompt_embeds: torch.Tensor,
    prompt_mask: torch.Tensor,
) -> torch.Tensor:
    """The latent UNet's call contract: noisy ``latents`` ``(B, C, h, w)`` at ``timesteps``, the report's
    ``prompt_embeds`` ``(B, L, D)`` with ``prompt_mask`` ``(B, L)`` -> the schedule's prediction ``(B, C, h, w)``.
    For a UNet with a findings embedding the first token is the findings token (:func:`with_findings`)."""
    inputs = with_coordinates(latents, coordinate_channels(unet))
    n = findings_inputs(unet)
    findings = prompt_embeds[:, 0, :n] if n else None
    return unet(
        inputs,
        timesteps,
        encoder_hidden_states=prompt_embeds,
        encoder_attention_mask=prompt_mask,
        class_labels=findings,
    ).sample


@torch.no_grad()
def add_findings_embedding(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """``unet`` with a findings embedding (a two-layer projection into the timestep embedding) whose output
    layer is zero, so it computes exactly what it did before; fine-tuning then learns to use it. Returns
    ``unet`` (changed); one that has it already is left as it is."""
    if findings_inputs(unet):
        return unet
    width = unet.time_embedding.linear_2.out_features
    embedding = TimestepEmbedding(len(FINDINGS), width).to(
        device=unet.time_embedding.linear_2.weight.device, dtype=unet.time_embedding.linear_2.weight.dtype
    )
    embedding.linear_2.weight.zero_()
    embedding.linear_2.bias.zero_()
    unet.class_embedding = embedding
    unet.register_to_config(class_embed_type="projection", projection_class_embeddings_input_dim=len(FINDINGS))
    return unet


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
