"""Classifier-free guidance (Ho & Salimans, 2022) as a wrapper that builds a denoise function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from cxr_studio.config import ScheduleConfig
from cxr_studio.diffusion.schedules import training_scheduler

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# A model's prediction for ``x_t`` ``(B, C, h, w)`` at ``t`` under a condition: the tensors a family conditions on
# (report embeddings, their mask, layout maps, ...), each with the batch first.
PredictFn = Callable[..., torch.Tensor]


def classifier_free_guidance(
    predict: PredictFn,
    condition: Sequence[torch.Tensor],
    negative: Sequence[torch.Tensor],
    guidance_scale: float,
    *,
    max_timestep: int | None = None,
) -> DenoiseFn:
    """``denoise(x_t (B, C, h, w), t)``: ``pred_neg + s * (pred_cond - pred_neg)``, where ``pred_cond =
    predict(x_t, t, *condition)`` and ``pred_neg = predict(x_t, t, *negative)``.

    ``condition`` and ``negative`` hold the same kinds of tensors (e.g. ``prompt_embeds (B, L, D)``, ``prompt_mask
    (B, L)``, padded to one ``L``). ``s = 1`` is the conditional model alone and ``s = 0`` the unconditional one
    (one pass of ``B`` each); otherwise both run as one batch of ``2B``, negatives first. ``max_timestep``:
    guidance only at ``t <= max_timestep``; at noisier steps the conditional model alone.
    """

    def conditional(tensors: Sequence[torch.Tensor]) -> DenoiseFn:
        return lambda x, t: predict(x, t, *tensors)

    if guidance_scale == 1.0:
        return conditional(condition)
    if guidance_scale == 0.0:
        return conditional(negative)
    both = [torch.cat([n, c]) for n, c in zip(negative, condition, strict=True)]
    conditional_only = conditional(condition)

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if max_timestep is not None and int(torch.as_tensor(t).max()) > max_timestep:
            return conditional_only(x, t)
        negative_prediction, prediction = predict(torch.cat([x, x]), t, *both).chunk(2)
        return negative_prediction + guidance_scale * (prediction - negative_prediction)

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
