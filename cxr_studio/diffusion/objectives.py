"""The training objectives of the denoisers, one place for every stage and fine-tuning: what a denoiser learns to
output (by prediction type), min-SNR-gamma weights, the weighted MSE, and classifier-free guidance's report
dropout."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from cxr_studio.diffusion.schedules import PREDICTION_TYPES
from cxr_studio.errors import InputError


def drop_reports(reports: list[str], *, fraction: float, generator: torch.Generator) -> list[str]:
    """Classifier-free guidance's training half: a ``fraction`` of the reports replaced by the empty report."""
    drop = torch.rand(len(reports), generator=generator, device=generator.device) < fraction
    return ["" if d else r for r, d in zip(reports, drop.tolist())]


def training_target(
    scheduler: DDPMScheduler, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the denoiser learns to output for ``add_noise(sample, noise, timesteps)``, by the schedule's
    prediction type: the noise (DDPM), the velocity ``sqrt(a) * noise - sqrt(1 - a) * sample`` (Salimans &
    Ho 2022) or the clean sample."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(sample, noise, timesteps)
    if kind == "sample":
        return sample
    raise InputError(f"unknown prediction type {kind!r}; accepted: {', '.join(PREDICTION_TYPES)}.")


def noised_example(
    scheduler: DDPMScheduler, sample: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One DDPM training example for clean ``sample`` ``(B, ...)``: ``(x_t, t, target)`` with the noise, then
    uniform timesteps, drawn from ``generator`` in that order (every stage and fine-tuning draw alike)."""
    noise = torch.randn(sample.shape, generator=generator, device=sample.device)
    t = torch.randint(
        0, scheduler.config.num_train_timesteps, (len(sample),), generator=generator, device=sample.device
    )
    return scheduler.add_noise(sample, noise, t), t, training_target(scheduler, sample, noise, t)


def loss_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, *, snr_gamma: float) -> torch.Tensor | None:
    """Per-sample weights ``(B,)`` of the denoising MSE under min-SNR-gamma (Hang et al. 2023): the x0 loss
    weighted by ``min(SNR, gamma)``, expressed for the schedule's prediction type as diffusers' training
    scripts do (epsilon: ``/ SNR``; v: ``/ (SNR + 1)``). ``snr_gamma = 0``: ``None``, plain MSE."""
    if not snr_gamma:
        return None
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps).float()
    weights = snr.clamp(max=snr_gamma)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return weights / snr.clamp(min=1e-8)
    if kind == "v_prediction":
        return weights / (snr + 1)
    return weights


def weighted_mse(predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error, each sample's mean weighted by ``weights`` ``(B,)`` when given."""
    if weights is None:
        return torch.nn.functional.mse_loss(predicted, target)
    per_sample = ((predicted.float() - target.float()) ** 2).flatten(1).mean(1)
    return (per_sample * weights.to(per_sample.device)).mean()
