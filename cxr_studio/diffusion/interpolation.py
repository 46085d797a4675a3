"""Interpolation in noise and embedding space."""

from __future__ import annotations

import torch


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) between Gaussian noise tensors: keeps their norm, so every
    intermediate is still a plausible start noise (a straight line would shrink it)."""
    if t <= 0.0 or t >= 1.0:  # the endpoints exactly, not up to rounding
        return a.clone() if t <= 0.0 else b.clone()
    flat_a, flat_b = a.flatten(), b.flatten()
    cos = torch.clamp(torch.dot(flat_a, flat_b) / (flat_a.norm() * flat_b.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
