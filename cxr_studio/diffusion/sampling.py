"""The one denoising loop every pipeline uses, with progress, cancellation and a per-step hook."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from cxr_studio.diffusion.guidance import DenoiseFn

StepCallback = Callable[[int, int], "bool | None"]  # (step, total) -> True to stop
AfterStep = Callable[[torch.Tensor, int], torch.Tensor]  # (x, index of the step just taken) -> x


class GenerationCancelled(RuntimeError):
    """The callback asked to stop; nothing was produced."""


def denoise(
    denoise_fn: DenoiseFn,
    noise: torch.Tensor,
    scheduler: SchedulerMixin,
    num_steps: int,
    *,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    after_step: AfterStep | None = None,
) -> torch.Tensor:
    """Run ``scheduler`` from ``noise`` (unit Gaussian, any shape) for ``num_steps`` steps; returns ``x_0``.

    ``after_step(x, i)`` may rewrite the sample after step ``i`` (latent inpainting re-imposes the known
    region there). ``callback(step, total)`` is called after every step; returning True stops the loop
    with :class:`GenerationCancelled`, so a UI can cancel between steps.
    """
    scheduler.set_timesteps(num_steps, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        eps = denoise_fn(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
        if after_step is not None:
            x = after_step(x, i)
        if callback is not None and callback(i + 1, len(timesteps)):
            raise GenerationCancelled(f"stopped after step {i + 1} of {len(timesteps)}")
    return x
