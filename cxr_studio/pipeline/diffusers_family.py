"""The field's diffusers-format text-to-image models as a :class:`~cxr_studio.pipeline.family.LatentFamily`:
``StableDiffusionPipeline`` (RoentGen v1/v2, SD 1.x/2.x fine-tunes), ``PixArtSigmaPipeline`` and ``SanaPipeline``
(CheXGenBench's fine-tunes).

Loading goes through diffusers' own classes, offline and safetensors only. This module owns the families' call
contracts (how each denoiser is called, its learned-sigma half, Sana's timestep scale), and the conversion
between our grayscale ``[-1, 1]`` images and their 3-channel VAEs (through :mod:`cxr_studio.imaging`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDIMInverseScheduler,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from cxr_studio import imaging
from cxr_studio.config import SamplingDefaults
from cxr_studio.diffusion.guidance import DenoiseFn, classifier_free_guidance
from cxr_studio.diffusion.objectives import noised_example
from cxr_studio.errors import InputError
from cxr_studio.layout import Layout
from cxr_studio.models.report_encoder import TruncationWarning


@dataclass(frozen=True)
class FamilySpec:
    """What differs between the supported pipelines: the denoiser's component name, the text length the family
    reads, and the family's own sampling defaults (its model card's steps and guidance)."""

    denoiser: str
    max_tokens: int
    defaults: SamplingDefaults


# steps and guidance: diffusers' defaults for SD (50 PNDM steps -> 25 DPM-Solver++), CheXGenBench's for Sana
_TRANSFORMER = FamilySpec(
    "transformer",
    300,
    SamplingDefaults(num_steps=20, guidance_scale=4.5, sampler="dpmpp", latent_clip=0.0, upscale=False),
)
FAMILIES: dict[str, FamilySpec] = {
    "StableDiffusionPipeline": FamilySpec(
        "unet",
        77,
        SamplingDefaults(num_steps=25, guidance_scale=7.5, sampler="dpmpp", latent_clip=0.0, upscale=False),
    ),
    "PixArtSigmaPipeline": _TRANSFORMER,
    "SanaPipeline": _TRANSFORMER,
}
OPTIONAL_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder")  # not needed to draw radiographs


def load_pipeline(folder: str | os.PathLike[str], *, index: dict[str, Any], device: torch.device) -> DiffusionPipeline:
    """A supported diffusers pipeline from a local folder whose ``model_index.json`` is ``index``: offline,
    safetensors only, in float32.

    Refused with :class:`InputError`: an unknown pipeline class, a missing component folder, pickle-only weights.
    """
    folder = Path(folder)
    name = index.get("_class_name")
    if name not in FAMILIES:
        raise InputError(f"{folder} holds a {name}; accepted: {', '.join(FAMILIES)} (diffusers format).")
    for component, spec in index.items():
        if not isinstance(spec, list) or None in spec or component in OPTIONAL_COMPONENTS:
            continue  # "_class_name", flags such as requires_safety_checker, and components saved as absent
        if not (folder / component).is_dir():
            raise InputError(f"{folder.name}: the {component} folder named in model_index.json is missing.")
        weights = [p for p in (folder / component).iterdir() if p.suffix in (".bin", ".safetensors", ".pt", ".ckpt")]
        if weights and not any(p.suffix == ".safetensors" for p in weights):
            raise InputError(
                f"{folder.name}/{component} has pickle weights only ({weights[0].name}), which can run code when "
                "loaded; convert them to safetensors (diffusers' save_pretrained does) and try again."
            )
    extra = {component: None for component in OPTIONAL_COMPONENTS if component in index}
    if name == "StableDiffusionPipeline":
        extra["requires_safety_checker"] = False
    try:
        pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True, use_safetensors=True, **extra)
    except (OSError, ValueError) as err:
        raise InputError(f"{folder.name} could not be loaded as a {name}: {err}") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@contextlib.contextmanager
def _quiet_diffusers():
    """diffusers logs the cut-off words of a long prompt: a report's text must not reach the logs (we warn with
    the count instead)."""
    logger = logging.getLogger("diffusers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class DiffusersFamily:
    """A loaded diffusers pipeline behind the family contract (see :mod:`cxr_studio.pipeline.family`)."""

    def __init__(self, pipe: DiffusionPipeline) -> None:
        self.pipe = pipe
        self.kind = type(pipe).__name__
        if self.kind not in FAMILIES:
            raise InputError(f"{self.kind} is not a supported family; accepted: {', '.join(FAMILIES)}.")
        self.spec = FAMILIES[self.kind]
        self.denoiser = getattr(pipe, self.spec.denoiser)
        self.vae = pipe.vae
        self.flow = (
            bool(pipe.scheduler.config.get("prediction_type") == "flow_prediction")
            or "FlowMatch" in type(pipe.scheduler).__name__
        )
        self.supports_resampling = not self.flow
        self.samplers = ("dpmpp", "unipc") if self.flow else ("dpmpp", "unipc", "ddim")

    # --- sizes and spaces ------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def vae_factor(self) -> int:
        return self.pipe.vae_scale_factor

    @property
    def image_size(self) -> int:
        return int(self.denoiser.config.sample_size) * self.vae_factor

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = int(self.denoiser.config.sample_size)
        return (int(self.denoiser.config.in_channels), size, size)

    @property
    def defaults(self) -> SamplingDefaults:
        return self.spec.defaults

    # --- prompts ---------------------------------------------------------------------------------------------

    def encode_reports(self, reports: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Reports -> ``(embeds (B, L, D), mask (B, L))`` with the family's own tokenizer and text encoder,
        padded to its token limit (77 for CLIP, 300 for T5 / Gemma); longer reports are cut there, with a warning."""
        reports = list(reports)
        self._warn_if_truncated(reports)
        with torch.no_grad(), _quiet_diffusers():
            if self.kind == "StableDiffusionPipeline":
                embeds, _ = self.pipe.encode_prompt(reports, self.device, 1, False)
                return embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
            options: dict[str, Any] = {"clean_caption": False, "max_sequence_length": self.spec.max_tokens}
            if self.kind == "SanaPipeline":  # no prompt-enhancing instruction: a report is already specific
                options["complex_human_instruction"] = None
            embeds, mask, _, _ = self.pipe.encode_prompt(
                reports, do_classifier_free_guidance=False, device=self.device, **options
            )
            return embeds, mask

    def truncated_tokens(self, report: str) -> int:
        """How many of ``report``'s tokens lie beyond the family's limit (0 when it fits)."""
        return max(0, len(self.pipe.tokenizer(report, add_special_tokens=True)["input_ids"]) - self.spec.max_tokens)

    def _warn_if_truncated(self, reports: list[str]) -> None:
        warned = self.__dict__.setdefault("_warned", set())  # once per report (training repeats them)
        for report in set(reports) - warned:
            warned.add(report)
            cut = self.truncated_tokens(report)
            if cut:
                warnings.warn(
                    # the count, never the text: a report can carry patient details
                    f"{self.kind} reads {self.spec.max_tokens} tokens; the last {cut} tokens of a report are ignored.",
                    TruncationWarning,
                    stacklevel=3,
                )

    # --- the denoiser ----------------------------------------------------------------------------------------

    def predict(self, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The denoiser's output in its scheduler's prediction space, called as the family's pipeline calls it."""
        timestep = t.expand(x.shape[0]) if torch.is_tensor(t) and t.ndim else torch.full((x.shape[0],), t)
        timestep = timestep.to(x.device)
        if self.kind == "StableDiffusionPipeline":
            return self.denoiser(x, timestep, encoder_hidden_states=embeds).sample
        if self.kind == "SanaPipeline":
            timestep = timestep * self.denoiser.config.timestep_scale
            out = self.denoiser(x, encoder_hidden_states=embeds, encoder_attention_mask=mask, timestep=timestep)
        else:
            out = self.denoiser(
                x,
                encoder_hidden_states=embeds,
                encoder_attention_mask=mask,
                timestep=timestep,
                added_cond_kwargs={"resolution": None, "aspect_ratio": None},
            )
        output = out.sample.float()
        if self.denoiser.config.out_channels // 2 == x.shape[1]:  # learned sigma: the first half is the prediction
            output = output.chunk(2, dim=1)[0]
        return output

    takes_layout = False  # no layout input: a layout given to these families is refused

    def layout_maps(self, layouts: Sequence[Layout | None]) -> None:
        """No layout input: any non-empty layout raises :class:`InputError`."""
        if any(layouts):
            raise InputError(f"a {self.kind} takes no layout; generate with layout=None (report only).")

    def guided(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        guidance_scale: float,
        scheduler: SchedulerMixin | None,
        *,
        layout: torch.Tensor | None = None,
    ) -> DenoiseFn:
        """Classifier-free guidance, negatives first in one batch of ``2B`` as the diffusers pipelines run it."""
        if layout is not None:
            raise InputError(f"a {self.kind} takes no layout.")
        prompt_embeds, negative_embeds = embeds.chunk(2)
        prompt_mask, negative_mask = mask.chunk(2)
        return classifier_free_guidance(
            self.predict, [prompt_embeds, prompt_mask], [negative_embeds, negative_mask], guidance_scale
        )

    # --- schedules -------------------------------------------------------------------------------------------

    def sampler(self, name: str) -> SchedulerMixin:
        """The family's schedule (its scheduler's config: betas or flow sigmas, prediction type) under sampler
        ``name``; flow-matching families have no DDIM."""
        if name not in self.samplers:
            raise InputError(
                f"sampler {name!r} is not offered for this {self.kind}; accepted: {', '.join(self.samplers)}."
            )
        config = dict(self.pipe.scheduler.config)
        if self.flow:  # a FlowMatchEuler config says "shift"; the multistep solvers need it spelled as flow sigmas
            shift = config.get("flow_shift") or config.get("shift") or 1.0
            config |= {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": shift}
        if name == "dpmpp":
            return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
        if name == "unipc":
            return UniPCMultistepScheduler.from_config(config)
        return DDIMScheduler.from_config(self._ddim_config)

    def noise_to(
        self, known: torch.Tensor, noise: torch.Tensor, scheduler: SchedulerMixin, index: int
    ) -> torch.Tensor:
        """``known`` latents at the noise level of ``scheduler``'s step ``index`` (after ``set_timesteps``)."""
        if self.flow:  # x_t = (1 - sigma) x_0 + sigma noise
            sigma = scheduler.sigmas[index].to(known.device, known.dtype)
            return (1 - sigma) * known + sigma * noise
        return self._forward.add_noise(known, noise, scheduler.timesteps[index : index + 1])

    def resample_ratio(self, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
        if self.flow:
            raise InputError("RePaint resampling needs a DDPM-type schedule; this model samples by flow matching.")
        alphas = self._forward.alphas_cumprod
        return alphas[t] / alphas[t_next]

    def inverse_sampler(self) -> SchedulerMixin:
        if self.flow:
            raise InputError(
                f"image interpolation inverts the images with DDIM, which this flow-matching {self.kind} does not "
                "have; use the 'report' or 'seed' mode."
            )
        return DDIMInverseScheduler.from_config(self._ddim_config)

    @property
    def _ddim_config(self) -> dict[str, Any]:
        """The schedule for DDIM and its inversion, which must step through the same timesteps; the inversion
        has no "linspace" spacing (DPM-Solver's default), so such schedules step "trailing" (Lin et al. 2024)."""
        config = dict(self.pipe.scheduler.config)
        if config.get("timestep_spacing") not in ("leading", "trailing"):
            config["timestep_spacing"] = "trailing"
        return config

    def training_example(
        self, latents: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_t, t, target)`` under the family's own objective: DDPM noising with its prediction type, or, for
        flow matching, ``x_t = (1 - s) x_0 + s n`` with target ``n - x_0`` at timestep ``1000 s``."""
        if not self.flow:
            return noised_example(self._forward, latents, generator)
        noise = torch.randn(latents.shape, generator=generator, device=latents.device)
        sigma = torch.rand(len(latents), generator=generator, device=latents.device)
        s = sigma.view(-1, 1, 1, 1)
        t = sigma * self.pipe.scheduler.config.num_train_timesteps
        return (1 - s) * latents + s * noise, t, noise - latents

    @functools.cached_property
    def _forward(self) -> DDPMScheduler:  # noise_to calls it at every step
        return DDPMScheduler.from_config(self.pipe.scheduler.config)

    # --- pixels <-> latents ----------------------------------------------------------------------------------

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S, S)`` in ``[-1, 1]`` -> scaled latents (the posterior's mode where the VAE has one)."""
        with torch.no_grad():
            encoded = self.vae.encode(imaging.to_rgb(image.to(self.device)))
            latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latent
            return latents * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> ``(B, 1, S, S)`` in ``[-1, 1]`` (the channel mean of the RGB decoding)."""
        with torch.no_grad():
            rgb = self.vae.decode(latents / self.vae.config.scaling_factor).sample
            return imaging.to_grayscale(rgb.float()).clamp(-1, 1)
