"""Diffusion maths without weights: schedules, samplers by name, guidance, and the denoising loop."""
