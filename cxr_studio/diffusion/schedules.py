"""Noise schedules and samplers, all diffusers schedulers built from one training schedule's config."""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from cxr_studio.config import SAMPLERS, ScheduleConfig
from cxr_studio.errors import InputError


def training_scheduler(config: ScheduleConfig) -> DDPMScheduler:
    """The DDPM forward process used in training (``add_noise``) and the source of every sampler's betas."""
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        prediction_type=config.prediction_type,
        rescale_betas_zero_snr=config.rescale_betas_zero_snr,
        timestep_spacing=config.timestep_spacing,
        clip_sample=False,  # DDPM's default clipping to [-1, 1] is wrong for latents
    )


PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def converging_samplers(config: ScheduleConfig) -> tuple[str, ...]:
    """The samplers worth offering for a model trained on ``config``.

    With epsilon prediction and a terminal ``alpha_bar`` near zero (the demo's first schedule: 3e-6), the
    clean sample implied at the first step, ``(x - sqrt(1 - a) eps) / sqrt(a)``, multiplies any noise error by
    ``1 / sqrt(a)`` (~580): DDIM steps along the model's own noise prediction and survives with a clip, while
    the data-prediction multistep solvers (DPM-Solver++, UniPC) extrapolate from the clipped, saturated
    predictions and draw near-black images (8-9 dB against DDIM-150). Such a model gets DDIM only."""
    alpha_bar_t = float(training_scheduler(config).alphas_cumprod[-1])
    if config.prediction_type == "epsilon" and alpha_bar_t < 1e-4:
        return ("ddim",)
    return SAMPLERS


def make_sampler(name: str, config: ScheduleConfig, *, clip: float = 0.0) -> SchedulerMixin:
    """A sampler by name (``ddim``, ``dpmpp``, ``unipc``) with exactly the training schedule's betas.

    ``clip > 0``: DDIM clips its predicted clean sample to ``[-clip, clip]`` (and keeps the model's own noise
    prediction for the direction term). The multistep solvers have only pixel-space dynamic thresholding,
    so callers clip their predictions with ``guidance.clip_predicted_sample`` instead.
    """
    if config.rescale_betas_zero_snr and config.prediction_type == "epsilon":
        raise InputError(
            "a zero-terminal-SNR schedule needs v_prediction or sample prediction (epsilon is undefined at t = T)."
        )
    # the betas, prediction type and timestep spacing of the training schedule
    base = training_scheduler(config).config
    if name == "ddim":  # the last step lands on the predicted clean sample, as the multistep solvers' do (trailing
        # spacing's last timestep is T / steps, so without it the output kept noise of std sqrt(1 - alpha_bar_0))
        return DDIMScheduler.from_config(
            base, clip_sample=clip > 0, clip_sample_range=clip or 1.0, set_alpha_to_one=True
        )
    if name == "dpmpp":
        return DPMSolverMultistepScheduler.from_config(base, algorithm_type="dpmsolver++", solver_order=2)
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(base)
    raise InputError(f"unknown sampler {name!r}; accepted: {', '.join(SAMPLERS)}.")
