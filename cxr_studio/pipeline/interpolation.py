"""Interpolation (Cheff 7.4): frames between two reports, two seeds or two radiographs, one method per mode."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from cxr_studio import imaging
from cxr_studio.config import INTERPOLATION_MODES, SamplingSettings
from cxr_studio.diffusion.interpolation import slerp
from cxr_studio.diffusion.noise import LATENT_STREAM, seeded_noise
from cxr_studio.diffusion.sampling import StepCallback, denoise
from cxr_studio.errors import InputError
from cxr_studio.limits import LIMITS, check_seed
from cxr_studio.pipeline.family import LatentFamily, sample


@dataclass(frozen=True)
class InterpolationResult:
    """Frames from start to end, ``(N, S, S)`` float32 in ``[0, 1]``; all synthetic."""

    pixels: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> list[Image.Image]:
        return [imaging.to_pil(p) for p in self.pixels]

    def gif(self, *, duration_ms: int = 250) -> bytes:
        """An animated GIF of the frames, forth and back (loops forever)."""
        frames = self.frames + self.frames[-2:0:-1]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
        return buffer.getvalue()


class InterpolationPipeline:
    """Two endpoints -> frames. ``encode`` turns a radiograph into scaled latents (the facade's, with its resize)."""

    def __init__(self, family: LatentFamily, *, encode: Callable[[Any], torch.Tensor]) -> None:
        self.family = family
        self.encode = encode

    @torch.no_grad()
    def __call__(
        self,
        start: Any,
        end: Any,
        *,
        mode: str,
        num_frames: int,
        report: str,
        seed: int,
        settings: SamplingSettings,
        callback: StepCallback | None = None,
    ) -> InterpolationResult:
        """``mode``: ``report`` (two reports, one start noise), ``seed`` (two seeds, one report), ``image`` (two
        radiographs inverted with DDIM) or ``latent-blend`` (straight lines between autoencoder latents)."""
        # 1. Check the request
        if mode not in INTERPOLATION_MODES:
            raise InputError(f"interpolation mode {mode!r}; accepted: {', '.join(INTERPOLATION_MODES)}.")
        if not isinstance(num_frames, int) or not 2 <= num_frames <= LIMITS.max_frames:
            raise InputError(f"num_frames {num_frames!r}; an integer from 2 to {LIMITS.max_frames} is accepted.")
        alphas = [float(a) for a in np.linspace(0.0, 1.0, num_frames)]
        # 2. The frames' latents, by the mode's own method
        between = {
            "report": self.between_reports,
            "seed": self.between_seeds,
            "image": self.between_images,
            "latent-blend": self.latent_blend,
        }[mode]
        latents = between(start, end, alphas, report=report, seed=seed, settings=settings, callback=callback)
        # 3. Decode, with the parameters that reproduce the frames
        pixels = imaging.from_tensor(torch.cat([self.family.decode(z) for z in latents]))
        parameters = {
            "interpolation": mode,
            "num_frames": num_frames,
            "report": report,
            "seed": seed,
            **settings.as_parameters(),
            "synthetic": True,
        }
        if mode == "report":
            parameters.update(start_report=start, end_report=end)
        if mode == "seed":
            parameters.update(start_seed=int(start), end_seed=int(end))
        return InterpolationResult(pixels=pixels, parameters=parameters)

    def between_reports(self, start, end, alphas, *, report, seed, settings, callback) -> list[torch.Tensor]:
        """Two reports, one start noise, the report embeddings interpolated (the endpoints as generate() makes
        them)."""
        if not isinstance(start, str) or not isinstance(end, str):
            raise InputError("mode 'report' interpolates between two report texts.")
        family = self.family
        embeds, mask = family.encode_reports([start, end, ""])
        union = torch.maximum(mask[0], mask[1])[None]
        noise = seeded_noise([seed], family.latent_shape, stream=LATENT_STREAM, device=family.device)
        latents = []
        for k, a in enumerate(alphas):
            if k in (0, len(alphas) - 1):  # the endpoints exactly as generate() encodes them (own padding)
                frame_embeds, frame_mask = family.encode_reports([start if k == 0 else end, ""])
            else:
                frame_embeds = torch.cat([torch.lerp(embeds[0:1], embeds[1:2], a), embeds[2:]])
                frame_mask = torch.cat([union, mask[2:]])
            latents.append(self._sample(frame_embeds, frame_mask, noise, settings, _frame(callback, k, len(alphas))))
        return latents

    def between_seeds(self, start, end, alphas, *, report, seed, settings, callback) -> list[torch.Tensor]:
        """One report, spherical interpolation between the start noises of two seeds."""
        family = self.family
        embeds, mask = family.encode_reports([report, ""])
        a_noise, b_noise = (
            seeded_noise([s], family.latent_shape, stream=LATENT_STREAM, device=family.device)
            for s in (check_seed(start), check_seed(end))
        )
        return [
            self._sample(embeds, mask, slerp(a_noise, b_noise, a), settings, _frame(callback, k, len(alphas)))
            for k, a in enumerate(alphas)
        ]

    def between_images(self, start, end, alphas, *, report, seed, settings, callback) -> list[torch.Tensor]:
        """Two radiographs inverted to noise with DDIM, spherical interpolation, then DDIM back."""
        family = self.family
        known = [self.encode(image) for image in (start, end)]
        embeds, mask = family.encode_reports([report, ""])
        conditional = family.guided(embeds, mask, 1.0, None)
        inverse = family.inverse_sampler()
        noises = [denoise(conditional, z, inverse, settings.num_steps) for z in known]
        return [
            denoise(
                conditional,
                slerp(noises[0], noises[1], a),
                family.sampler("ddim"),
                settings.num_steps,
                callback=_frame(callback, k, len(alphas)),
            )
            for k, a in enumerate(alphas)
        ]

    def latent_blend(self, start, end, alphas, *, report, seed, settings, callback) -> list[torch.Tensor]:
        """Straight lines between the two radiographs' autoencoder latents: a cross-fade, Cheff 7.4's baseline."""
        known = [self.encode(image) for image in (start, end)]
        return [torch.lerp(known[0], known[1], a) for a in alphas]

    def _sample(self, embeds, mask, noise, settings: SamplingSettings, callback) -> torch.Tensor:
        return sample(
            self.family,
            embeds,
            mask,
            noise,
            num_steps=settings.num_steps,
            guidance_scale=settings.guidance_scale,
            sampler=settings.sampler,
            callback=callback,
        )


def _frame(callback: StepCallback | None, index: int, total: int) -> StepCallback | None:
    """Report frame ``index``'s steps as progress over all frames."""
    if callback is None:
        return None
    return lambda step, steps: callback(index * steps + step, total * steps)
