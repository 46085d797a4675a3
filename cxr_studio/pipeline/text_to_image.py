"""Report -> low-resolution radiograph: the latent diffusion stage of the cascade (Cheff, section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import BertModel, BertTokenizerFast

from cxr_studio.config import StudioConfig
from cxr_studio.diffusion.guidance import classifier_free_guidance, clip_unless_the_sampler_does
from cxr_studio.diffusion.noise import LATENT_STREAM, seeded_noise
from cxr_studio.diffusion.sampling import StepCallback, denoise
from cxr_studio.diffusion.schedules import make_sampler
from cxr_studio.models.autoencoder import LatentCodec
from cxr_studio.models.report_encoder import encode_reports


class TextToImagePipeline:
    """``report`` -> ``prompt_embeds`` -> ``latents`` -> decoded ``low_res`` image."""

    def __init__(
        self,
        *,
        config: StudioConfig,
        tokenizer: BertTokenizerFast,
        report_encoder: BertModel,
        latent_unet: UNet2DConditionModel,
        autoencoder: AutoencoderKL,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.report_encoder = report_encoder
        self.latent_unet = latent_unet
        self.autoencoder = autoencoder
        self.codec = LatentCodec(autoencoder, scaling_factor=config.autoencoder.scaling_factor)

    @property
    def device(self) -> torch.device:
        return next(self.latent_unet.parameters()).device

    def encode_reports(self, reports: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Reports -> ``prompt_embeds`` ``(B, L, D)`` and attention mask ``(B, L)``."""
        return encode_reports(
            self.tokenizer, self.report_encoder, reports, max_tokens=self.config.report_encoder.max_tokens
        )

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in ``[-1, 1]`` -> scaled latents ``(B, C, H/f, W/f)`` (the posterior mode)."""
        return self.codec.encode(image)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, C, h, w)`` -> image ``(B, 1, h*f, w*f)`` clipped to ``[-1, 1]``."""
        return self.codec.decode(latents)

    @torch.no_grad()
    def __call__(
        self,
        reports: Sequence[str],
        *,
        negative_reports: Sequence[str],
        seeds: Sequence[int],
        num_steps: int,
        guidance_scale: float,
        sampler: str,
        callback: StepCallback | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate one low-resolution radiograph per report and seed.

        Returns ``(image (B, 1, S, S) in [-1, 1], latents (B, C, S/f, S/f))`` with ``S = config.image_size``.
        """
        # 1. Encode reports and negative (by default empty) reports, padded to one length
        embeds, mask = self.encode_reports(list(reports) + list(negative_reports))
        # 2. Start noise: one tensor per seed, so an image never depends on its batch
        noise = seeded_noise(seeds, self.latent_shape, stream=LATENT_STREAM, device=self.device)
        # 3. Denoise the latents, guided by the report
        latents = self.sample(
            embeds, mask, noise, num_steps=num_steps, guidance_scale=guidance_scale, sampler=sampler, callback=callback
        )
        # 4. Decode to pixels
        return self.decode(latents), latents

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.config.autoencoder.latent_channels, self.config.latent_size, self.config.latent_size)

    def sample(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        noise: torch.Tensor,
        *,
        num_steps: int,
        guidance_scale: float,
        sampler: str,
        callback: StepCallback | None = None,
        **loop_options: Any,
    ) -> torch.Tensor:
        """Latents from start ``noise`` ``(B, C, h, w)``; ``embeds``/``mask`` hold the B reports then the B
        negative reports ``(2B, L, D)``/``(2B, L)``. ``loop_options`` go to :func:`denoise` (editing hooks)."""
        prompt_embeds, negative_embeds = embeds.chunk(2)
        prompt_mask, negative_mask = mask.chunk(2)
        scheduler = loop_options.pop("scheduler", None) or self.sampler(sampler)
        denoise_fn = classifier_free_guidance(
            self.latent_unet, prompt_embeds, prompt_mask, negative_embeds, negative_mask, guidance_scale
        )
        return denoise(
            self.clipped(denoise_fn, scheduler), noise, scheduler, num_steps, callback=callback, **loop_options
        )

    def sampler(self, name: str):
        """The named sampler on the latent schedule, clipping predicted clean latents to the data range."""
        return make_sampler(name, self.config.latent_schedule, clip=self.config.sampling.latent_clip)

    def clipped(self, denoise_fn, scheduler):
        """``denoise_fn`` with its clean-latent prediction clipped, for solvers that cannot clip themselves.

        Why: with Cheff's schedule alpha_bar_T is 3e-6, so the first steps' clean-latent estimate multiplies
        the noise prediction's error by ~560; unclipped, it throws the trajectory out of the data range.
        """
        return clip_unless_the_sampler_does(
            denoise_fn, scheduler, self.config.latent_schedule, self.config.sampling.latent_clip
        )
