"""Classifier-free guidance (Ho & Salimans, 2022) as a wrapper that builds a denoise function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cxr_studio.config import ScheduleConfig
from cxr_studio.diffusion.schedules import training_scheduler
from cxr_studio.models.latent_unet import predict

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def classifier_free_guidance(
    unet: torch.nn.Module,
    prompt_embeds: torch.Tensor,
    prompt_mask: torch.Tensor,
    negative_embeds: torch.Tensor,
    negative_mask: torch.Tensor,
    guidance_scale: float,
    *,
    max_timestep: int | None = None,
) -> DenoiseFn:
    """``denoise(x_t (B, C, h, w), t) -> eps``: ``eps_neg + s * (eps_report - eps_neg)``.

    ``s = 1`` is the conditional model alone and ``s = 0`` the unconditional one (one UNet pass each);
    otherwise both halves run as one batch of ``2B``. Embeddings are ``(B, L, D)`` with masks ``(B, L)``,
    padded to the same ``L``. ``max_timestep``: guidance only at ``t <= max_timestep``; at noisier steps the
    conditional model alone (one pass of ``B``).
    """

    def conditional(embeds: torch.Tensor, mask: torch.Tensor) -> DenoiseFn:
        return lambda x, t: predict(unet, x, t, prompt_embeds=embeds, prompt_mask=mask)

    if guidance_scale == 1.0:
        return conditional(prompt_embeds, prompt_mask)
    if guidance_scale == 0.0:
        return conditional(negative_embeds, negative_mask)
    embeds = torch.cat([negative_embeds, prompt_embeds])
    mask = torch.cat([negative_mask, prompt_mask])

    conditional_only = conditional(prompt_embeds, prompt_mask)

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if max_timestep is not None and int(torch.as_tensor(t).max()) > max_timestep:
            return conditional_only(x, t)
        eps_negative, eps_report = predict(unet, torch.cat([x, x]), t, prompt_embeds=embeds, prompt_mask=mask).chunk(2)
        return eps_negative + guidance_scale * (eps_report - eps_negative)

    return guided


def clip_predicted_sample(
    denoise_fn: DenoiseFn, alphas_cumprod: torch.Tensor, limit: float, *, prediction_type: str = "epsilon"
) -> DenoiseFn:
    """Clip the clean sample implied by each prediction to ``[-limit, limit]`` and return the prediction
    (of the same ``prediction_type``: epsilon, v_prediction or sample) that matches it: x0 clipping for
    solvers that work on data predictions (DPM-Solver++, UniPC) and cannot clip themselves."""
    if not limit or limit <= 0:
        return denoise_fn

    def clipped(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        output = denoise_fn(x, t)
        a = alphas_cumprod.to(x.device)[t].to(x.dtype)
        if prediction_type == "sample":
            return output.clamp(-limit, limit)
        if prediction_type == "v_prediction":  # x0 = sqrt(a) x - sqrt(1 - a) v
            x0 = (a.sqrt() * x - (1 - a).sqrt() * output).clamp(-limit, limit)
            return (a.sqrt() * x - x0) / (1 - a).sqrt()
        x0 = ((x - (1 - a).sqrt() * output) / a.sqrt()).clamp(-limit, limit)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    return clipped


def clip_unless_the_sampler_does(
    denoise_fn: DenoiseFn, scheduler: Any, schedule: ScheduleConfig, limit: float
) -> DenoiseFn:
    """``denoise_fn`` with its clean-sample prediction clipped to ``[-limit, limit]`` unless ``scheduler`` clips
    itself (DDIM made by ``make_sampler(..., clip=limit)``): the multistep solvers cannot, so their denoiser does.
    ``limit`` 0 clips nothing."""
    if not limit or scheduler.config.get("clip_sample"):
        return denoise_fn
    alphas = training_scheduler(schedule).alphas_cumprod
    return clip_predicted_sample(denoise_fn, alphas, limit, prediction_type=schedule.prediction_type)
