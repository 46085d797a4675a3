"""The one denoising loop every pipeline uses, with progress, cancellation, a live preview and a per-step hook."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from cxr_studio.diffusion.guidance import DenoiseFn

StepCallback = Callable[[int, int], "bool | None"]  # (step, total) -> True to stop
AfterStep = Callable[[torch.Tensor, int], torch.Tensor]  # (x, index of the step just taken) -> x
PreviewHook = Callable[[torch.Tensor, int, int], None]  # (clean-sample estimate x0, step, total)


class GenerationCancelled(RuntimeError):
    """The callback asked to stop; nothing was produced."""


def predicted_clean(
    scheduler: SchedulerMixin, model_output: torch.Tensor, x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor | None:
    """The clean sample ``x0`` that ``model_output`` at ``x_t`` implies under a DDPM-type schedule (the
    scheduler's ``alphas_cumprod`` and prediction type: noise, velocity or sample); ``None`` for schedules without
    them (flow matching), which then have no live preview."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    kind = scheduler.config.get("prediction_type")
    if alphas is None or scheduler.config.get("use_flow_sigmas") or kind not in ("epsilon", "v_prediction", "sample"):
        return None
    a = alphas.to(x.device)[int(t)].to(x.dtype)
    if kind == "sample":
        return model_output
    if kind == "v_prediction":
        return a.sqrt() * x - (1 - a).sqrt() * model_output
    return (x - (1 - a).sqrt() * model_output) / a.sqrt().clamp_min(1e-4)


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
    preview: PreviewHook | None = None,
) -> torch.Tensor:
    """Run ``scheduler`` from ``noise`` (unit Gaussian, any shape) for ``num_steps`` steps; returns ``x_0``.

    ``after_step(x, i)`` may rewrite the sample after step ``i`` (latent inpainting re-imposes the known
    region there). ``callback(step, total)`` is called after every step; returning True stops the loop
    with :class:`GenerationCancelled`, so a UI can cancel between steps. ``preview(x0, step, total)``, when
    given, gets each step's clean-sample estimate (:func:`predicted_clean`) before the callback. ``start_index``
    skips the first steps and starts from ``initial`` (already noised to that step: partial-strength editing).
    """
    scheduler.set_timesteps(num_steps, device=noise.device)
    if start_index and hasattr(scheduler, "set_begin_index"):  # multistep solvers keep a step counter
        scheduler.set_begin_index(start_index)
    x = noise * scheduler.init_noise_sigma if initial is None else initial
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    timesteps = scheduler.timesteps[start_index:]
    for i, t in enumerate(timesteps, start=start_index):
        eps = denoise_fn(scheduler.scale_model_input(x, t), t)
        clean = predicted_clean(scheduler, eps, x, t) if preview is not None else None
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
        if after_step is not None:
            x = after_step(x, i)
        done = i + 1 - start_index
        if clean is not None:
            preview(clean, done, len(timesteps))
        if callback is not None and callback(done, len(timesteps)):
            raise GenerationCancelled(f"stopped after step {done} of {len(timesteps)}")
    return x
