"""The contract every model family implements, so that generation, editing and interpolation never ask which
family they run: our cascade's latent stage (:class:`~cxr_studio.pipeline.text_to_image.TextToImagePipeline`)
and the diffusers text-to-image pipelines (:class:`~cxr_studio.pipeline.diffusers_family.DiffusersFamily`:
Stable Diffusion, PixArt-Sigma, Sana).

Spaces: images are grayscale ``(B, 1, S, S)`` in ``[-1, 1]`` at the family's ``image_size``; latents are the
family's scaled latents ``latent_shape``; ``embeds``/``mask`` hold B prompts then their B negatives,
``(2B, L, D)``/``(2B, L)``, padded to one length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from cxr_studio.diffusion.guidance import DenoiseFn
from cxr_studio.diffusion.noise import LATENT_STREAM, seeded_noise
from cxr_studio.diffusion.sampling import AfterStep, PreviewHook, StepCallback, denoise
from cxr_studio.layout import Layout


class LatentFamily(Protocol):
    """What a pipeline may ask of a model family (see the module docstring for spaces and shapes)."""

    image_size: int  # the family's native size in pixels
    samplers: tuple[str, ...]  # the sampler names this family converges with (the app's menu)
    supports_resampling: bool  # RePaint needs a stochastic forward process with alphas (DDPM-type schedules)
    takes_layout: bool  # whether the denoiser has layout input channels (cxr_studio.layout)

    @property
    def device(self) -> torch.device: ...

    @property
    def latent_shape(self) -> tuple[int, int, int]: ...

    def encode_reports(self, reports: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...
    def layout_maps(self, layouts: Sequence[Layout | None]) -> torch.Tensor | None: ...
    def encode_image(self, image: torch.Tensor) -> torch.Tensor: ...
    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...
    def sampler(self, name: str) -> SchedulerMixin: ...
    def guided(  # scheduler: the sampler it will drive (clipping may depend on it); None for the raw model
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        guidance_scale: float,
        scheduler: SchedulerMixin | None,
        *,
        layout: torch.Tensor | None = None,  # the prompts' layout maps (layout_maps); negatives have none
    ) -> DenoiseFn: ...
    def noise_to(
        self, known: torch.Tensor, noise: torch.Tensor, scheduler: SchedulerMixin, index: int
    ) -> torch.Tensor: ...
    def resample_ratio(self, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor: ...
    def inverse_sampler(self) -> SchedulerMixin: ...

    # fine-tuning (training/finetune.py): the network that adapters attach to, and the family's own objective
    denoiser: torch.nn.Module

    def predict(self, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...
    def training_example(
        self, latents: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


def sample(
    family: LatentFamily,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    noise: torch.Tensor,
    *,
    num_steps: int,
    guidance_scale: float,
    sampler: str,
    callback: StepCallback | None = None,
    scheduler: SchedulerMixin | None = None,
    after_step: AfterStep | None = None,
    start_index: int = 0,
    initial: torch.Tensor | None = None,
    layout: torch.Tensor | None = None,
    preview: PreviewHook | None = None,
) -> torch.Tensor:
    """Latents from start ``noise`` ``(B, *latent_shape)`` under ``family``'s guided model (``layout``: the
    prompts' layout maps); ``after_step``, ``start_index`` and ``initial`` are the editing hooks of
    :func:`~cxr_studio.diffusion.sampling.denoise`, ``preview`` its live preview (latent estimates)."""
    scheduler = scheduler or family.sampler(sampler)
    return denoise(
        family.guided(embeds, mask, guidance_scale, scheduler, layout=layout),
        noise,
        scheduler,
        num_steps,
        callback=callback,
        after_step=after_step,
        start_index=start_index,
        initial=initial,
        preview=preview,
    )


@torch.no_grad()
def text_to_image(
    family: LatentFamily,
    reports: list[str],
    *,
    negative_reports: list[str],
    seeds: list[int],
    num_steps: int,
    guidance_scale: float,
    sampler: str,
    callback: StepCallback | None = None,
    layouts: Sequence[Layout | None] | None = None,
    preview: PreviewHook | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image per report and seed (``layouts``: one per report, None for none): ``(image (B, 1, S, S) in
    ``[-1, 1]``, latents (B, *latent_shape))``."""
    # 1. Encode reports and negative (by default empty) reports, padded to one length, and the layouts
    embeds, mask = family.encode_reports(list(reports) + list(negative_reports))
    layout = family.layout_maps(layouts or [None] * len(reports))
    # 2. Start noise: one tensor per seed, so an image never depends on its batch
    noise = seeded_noise(seeds, family.latent_shape, stream=LATENT_STREAM, device=family.device)
    # 3. Denoise the latents, guided by the report
    latents = sample(
        family,
        embeds,
        mask,
        noise,
        num_steps=num_steps,
        guidance_scale=guidance_scale,
        sampler=sampler,
        callback=callback,
        layout=layout,
        preview=preview,
    )
    # 4. Decode to pixels
    return family.decode(latents), latents
