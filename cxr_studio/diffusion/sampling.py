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
    start_index: int = 0,
    initial: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``scheduler`` from ``noise`` (unit Gaussian, any shape) for ``num_steps`` steps; returns ``x_0``.

    ``after_step(x, i)`` may rewrite the sample after step ``i`` (latent inpainting re-imposes the known
    region there). ``callback(step, total)`` is called after every step; returning True stops the loop
    with :class:`GenerationCancelled`, so a UI can cancel between steps. ``start_index`` skips the first
    steps and starts from ``initial`` (already noised to that step: partial-strength editing).
    """
    scheduler.set_timesteps(num_steps, device=noise.device)
    if start_index and hasattr(scheduler, "set_begin_index"):  # multistep solvers keep a step counter
        scheduler.set_begin_index(start_index)
    x = noise * scheduler.init_noise_sigma if initial is None else initial
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    timesteps = scheduler.timesteps[start_index:]
    for i, t in enumerate(timesteps, start=start_index):
        eps = denoise_fn(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
        if after_step is not None:
            x = after_step(x, i)
        done = i + 1 - start_index
        if callback is not None and callback(done, len(timesteps)):
            raise GenerationCancelled(f"stopped after step {done} of {len(timesteps)}")
    return x
