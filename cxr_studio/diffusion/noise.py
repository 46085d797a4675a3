"""Seeded start noise: the one place where a seed becomes a tensor, so every pipeline reproduces from its seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# Streams separate the noise that different stages draw from the same seed.
LATENT_STREAM = 0  # the latent stage's start noise (generation, interpolation)
SR_STREAM = 1  # the super-resolution stage's start noise
SR_AUGMENTATION_STREAM = 2  # the noise added to the low-resolution condition (conditioning augmentation)
INPAINT_STREAM = 3  # the inpainting pipeline's start noise


def seeded_noise(seeds: Sequence[int], shape: tuple[int, ...], *, stream: int, device: torch.device) -> torch.Tensor:
    """One unit-Gaussian tensor of ``shape`` per seed, stacked ``(B, *shape)``; each depends only on its seed
    and ``stream``, never on the batch it is drawn in or the device."""
    tensors = []
    for seed in seeds:
        state = np.random.SeedSequence([int(seed), stream]).generate_state(2, np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        tensors.append(torch.randn(shape, generator=generator))
    return torch.stack(tensors).to(device)
