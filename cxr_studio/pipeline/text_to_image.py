"""Report -> low-resolution radiograph: the latent diffusion stage of the cascade (Cheff, section 3)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMInverseScheduler, DDPMScheduler, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from transformers import BertModel, BertTokenizerFast

from cxr_studio.config import StudioConfig
from cxr_studio.diffusion.guidance import DenoiseFn, classifier_free_guidance, clip_unless_the_sampler_does
from cxr_studio.diffusion.objectives import noised_example
from cxr_studio.diffusion.schedules import converging_samplers, make_sampler, training_scheduler
from cxr_studio.errors import InputError
from cxr_studio.layout import Layout, rasterize
from cxr_studio.models.autoencoder import LatentCodec
from cxr_studio.models.latent_unet import layout_channels
from cxr_studio.models.latent_unet import predict as predict_latent
from cxr_studio.models.report_encoder import encode_reports


class TextToImagePipeline:
    """The cascade's latent stage as a model family (:mod:`cxr_studio.pipeline.family`): ``report`` ->
    ``prompt_embeds``, the guided latent UNet, ``latents`` <-> ``low_res`` images. The task itself, report to
    image, is :func:`cxr_studio.pipeline.family.text_to_image`, the same for every family."""

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

    @property
    def takes_layout(self) -> bool:
        """Whether the latent UNet has layout channels (:mod:`cxr_studio.models.latent_unet`)."""
        return layout_channels(self.latent_unet) > 0

    def layout_maps(self, layouts: Sequence[Layout | None]) -> torch.Tensor | None:
        """One layout per prompt (None: none) -> the UNet's layout input ``(B, len(LAYOUT_GROUPS), h, w)`` in
        ``[0, 1]`` (:func:`~cxr_studio.layout.rasterize`); None when no prompt has one. A layout for a model
        without layout channels raises :class:`InputError`."""
        if not any(layouts):
            return None
        if not self.takes_layout:
            raise InputError(
                "this model takes no layout (its latent UNet has no layout channels); generate with layout=None, "
                "or load a model trained with layouts."
            )
        maps = np.stack([rasterize(layout, self.config.latent_size) for layout in layouts])
        return torch.from_numpy(maps).to(self.device)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in ``[-1, 1]`` -> scaled latents ``(B, C, H/f, W/f)`` (the posterior mode)."""
        return self.codec.encode(image)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, C, h, w)`` -> image ``(B, 1, h*f, w*f)`` clipped to ``[-1, 1]``."""
        return self.codec.decode(latents)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.config.autoencoder.latent_channels, self.config.latent_size, self.config.latent_size)

    # --- the family contract (cxr_studio.pipeline.family) ----------------------------------------------------

    supports_resampling = True

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def samplers(self) -> tuple[str, ...]:
        return converging_samplers(self.config.latent_schedule)

    def sampler(self, name: str) -> SchedulerMixin:
        """The named sampler on the latent schedule, clipping predicted clean latents to the data range."""
        return make_sampler(name, self.config.latent_schedule, clip=self.config.sampling.latent_clip)

    def guided(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        guidance_scale: float,
        scheduler: SchedulerMixin | None,
        *,
        layout: torch.Tensor | None = None,
    ) -> DenoiseFn:
        """The latent UNet under classifier-free guidance (prompts, then negatives, in ``embeds``; only at the
        timesteps the model's ``sampling.guidance_max_timestep`` allows), its clean-latent prediction clipped for a
        ``scheduler`` that cannot clip itself (``None``: the raw guided model). ``layout``: the prompts' layout maps
        (:meth:`layout_maps`), given at the timesteps ``sampling.layout_min_timestep`` allows; the negatives have
        none, as in training, where the layout is dropped with the report.

        Why the clip: with Cheff's schedule alpha_bar_T is 3e-6, so the first steps' clean-latent estimate
        multiplies the noise prediction's error by ~560; unclipped, it throws the trajectory out of the data range.
        """
        prompt_embeds, negative_embeds = embeds.chunk(2)
        prompt_mask, negative_mask = mask.chunk(2)
        condition, negative = [prompt_embeds, prompt_mask], [negative_embeds, negative_mask]
        if layout is not None:
            condition, negative = [*condition, layout], [*negative, torch.zeros_like(layout)]
        lowest = self.config.sampling.layout_min_timestep

        def predict(x: torch.Tensor, t: torch.Tensor, *given: torch.Tensor) -> torch.Tensor:
            if lowest is not None and int(torch.as_tensor(t).max()) < lowest:
                given = given[:2]  # below the layout interval: the report alone
            return self.predict(x, t, *given)

        denoise_fn = classifier_free_guidance(
            predict, condition, negative, guidance_scale, max_timestep=self.config.sampling.guidance_max_timestep
        )
        if scheduler is None:
            return denoise_fn
        return clip_unless_the_sampler_does(
            denoise_fn, scheduler, self.config.latent_schedule, self.config.sampling.latent_clip
        )

    def noise_to(
        self, known: torch.Tensor, noise: torch.Tensor, scheduler: SchedulerMixin, index: int
    ) -> torch.Tensor:
        """``known`` latents noised to the level of ``scheduler``'s step ``index`` (after ``set_timesteps``)."""
        return self._forward.add_noise(known, noise, scheduler.timesteps[index : index + 1])

    def resample_ratio(self, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
        """``alpha_bar_t / alpha_bar_next`` (< 1): RePaint's one-step diffusion back up from ``t_next`` to ``t``."""
        alphas = self._forward.alphas_cumprod
        return alphas[t] / alphas[t_next]

    def inverse_sampler(self) -> SchedulerMixin:
        """DDIM inversion on the latent schedule (image -> noise, for image interpolation)."""
        return DDIMInverseScheduler.from_config(make_sampler("ddim", self.config.latent_schedule).config)

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.latent_unet

    def predict(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        layout: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The latent UNet's output for ``x_t`` (coordinate and layout channels added where it has them)."""
        return predict_latent(self.latent_unet, x, t, prompt_embeds=embeds, prompt_mask=mask, layout=layout)

    def training_example(
        self, latents: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_t, t, target)`` for clean ``latents`` under the training schedule (uniform timesteps)."""
        return noised_example(self._forward, latents, generator)

    @functools.cached_property
    def _forward(self) -> DDPMScheduler:
        return training_scheduler(self.config.latent_schedule)
