"""``CXRStudio``: holds the cascade's components once and chains its stages (report -> low-res -> high-res)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cxr_studio import imaging
from cxr_studio.checkpoints import load_studio, save_studio
from cxr_studio.config import PREVIEW_SAMPLING, SamplingDefaults, SamplingSettings, StudioConfig, preset
from cxr_studio.diffusion.sampling import PreviewHook, StepCallback
from cxr_studio.errors import InputError
from cxr_studio.labels import mirrored_report
from cxr_studio.layout import Layout, layout_to_dicts, resolve_layout
from cxr_studio.limits import LIMITS, check_number, check_seed, check_steps, random_seed_or
from cxr_studio.models.autoencoder import build_autoencoder
from cxr_studio.models.latent_unet import build_latent_unet
from cxr_studio.models.report_encoder import build_report_encoder, train_tokenizer
from cxr_studio.models.super_res_unet import build_super_res_unet
from cxr_studio.pipeline.adapters import Adapter, apply_weights, load_lora, loaded_adapters
from cxr_studio.pipeline.adapters import remove as remove_adapter
from cxr_studio.pipeline.diffusers_family import DiffusersFamily, load_pipeline
from cxr_studio.pipeline.family import LatentFamily, text_to_image
from cxr_studio.pipeline.inpainting import EditResult, InpaintOptions, InpaintPipeline
from cxr_studio.pipeline.interpolation import InterpolationPipeline, InterpolationResult
from cxr_studio.pipeline.latent_inpainting import LatentInpaintPipeline
from cxr_studio.pipeline.outpainting import OutpaintPipeline
from cxr_studio.pipeline.super_resolution import SuperResolutionPipeline
from cxr_studio.pipeline.text_to_image import TextToImagePipeline


@dataclass(frozen=True)
class GenerationResult:
    """What ``generate`` made. Every image is synthetic.

    Attributes:
        images: final images (8-bit grayscale PIL, PA view), after super-resolution when it ran.
        low_res: the latent-diffusion stage's images (``config.image_size`` px).
        pixels: ``(N, H, W)`` float32 in ``[0, 1]`` behind ``images``, for lossless 16-bit export.
        seeds: the seed of each image; ``generate(..., seed=seeds[i], num_images=1)`` reproduces image ``i``.
        parameters: everything needed to reproduce the batch (first report, settings, model name and hash).
        reports: the report of each image.
    """

    images: list[Image.Image]
    low_res: list[Image.Image]
    pixels: np.ndarray
    seeds: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)

    def parameters_for(self, index: int) -> dict[str, Any]:
        """The parameters of image ``index`` alone (its own report and seed), as written into its PNG."""
        own_report = {"report": self.reports[index]} if self.reports else {}
        own_layout = {"layout": self.parameters["layouts"][index]} if "layouts" in self.parameters else {}
        return {
            **{k: v for k, v in self.parameters.items() if k not in ("seeds", "layouts")},
            **own_report,
            **own_layout,
            "seed": self.seeds[index],
            "num_images": 1,
        }


# What generate's layout takes: "auto", "none"/None, or an explicit layout (JSON, dicts or LayoutItems)
LayoutArg = str | Layout | Sequence[dict[str, Any]] | None
Preview = Callable[[np.ndarray, int, int], None]  # (first image's estimate (H, W) in [0, 1], step, total)
PREVIEW_EVERY = 2  # steps between live previews (the cost: the benchmark's with_live_preview_median_s)


class Studio:
    """What every model does behind the same calls, whatever its family: generate (with a layout where the model
    takes one), inpaint, outpaint, interpolate, upscale where there is a super-resolution stage, adapters. A
    concrete studio (:class:`CXRStudio`, our cascade; :class:`DiffusersStudio`, a diffusers folder) supplies
    ``family`` (through ``text_to_image``), ``super_resolution`` (or None), ``sampling``, ``model_id``,
    ``folder``, ``device`` and ``family_name``; this class only chains the task pipelines over them."""

    text_to_image: LatentFamily
    super_resolution: SuperResolutionPipeline | None
    model_id: str
    folder: Path | None
    device: torch.device

    @property
    def family_name(self) -> str:
        raise NotImplementedError

    @property
    def sampling(self) -> SamplingDefaults:
        """The model's sampling defaults (the app's sliders start here)."""
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        """The size of generated images (after super-resolution where there is one)."""
        return self.image_size

    def _wire(self) -> None:
        """The task pipelines over ``self.family`` (and the cascade's super-resolution where there is one)."""
        self.inpainting = InpaintPipeline(
            latent_inpainting=LatentInpaintPipeline(self.family),
            super_resolution=self.super_resolution,
            sr_noise_level=self.sampling.sr_noise_level,
        )
        self.outpainting = OutpaintPipeline(self.inpainting)
        self.interpolation = InterpolationPipeline(self.family, encode=self.encode)

    # --- adapters (LoRA) -------------------------------------------------------------------------------------

    @property
    def adapters(self) -> dict[str, Adapter]:
        """The loaded LoRA adapters by name, with their weights (recorded in every result's parameters); kept
        with the denoiser, so a studio that shares it (``with_sampling``, ...) knows them too."""
        return loaded_adapters(self.family.denoiser)

    def load_adapter(self, folder: str | os.PathLike[str], *, name: str | None = None, weight: float = 1.0) -> Adapter:
        """Load a LoRA adapter (``python -m training.finetune`` writes them; diffusers' LoRA format) onto this
        model's denoiser at ``weight``; an adapter trained on another base model is refused."""
        name = name or Path(folder).name or "adapter"
        if name in self.adapters:
            raise InputError(f"an adapter named {name!r} is already loaded; unload it or choose another name.")
        adapter = load_lora(
            self.family.denoiser, folder, name=name, base_model=self.model_id, weight=self._adapter_weight(weight)
        )
        self.adapters[name] = adapter
        apply_weights(self.family.denoiser, self.adapters)
        return adapter

    def set_adapter_weight(self, name: str, weight: float) -> None:
        """Change a loaded adapter's strength (0 switches it off; negative steers away from it)."""
        if name not in self.adapters:
            raise InputError(f"no adapter named {name!r} is loaded; loaded: {', '.join(self.adapters) or 'none'}.")
        self.adapters[name] = dataclasses.replace(self.adapters[name], weight=self._adapter_weight(weight))
        apply_weights(self.family.denoiser, self.adapters)

    def unload_adapter(self, name: str) -> None:
        """Remove a loaded adapter; the model is then as before it was loaded (to float rounding)."""
        if name not in self.adapters:
            raise InputError(f"no adapter named {name!r} is loaded; loaded: {', '.join(self.adapters) or 'none'}.")
        del self.adapters[name]
        remove_adapter(self.family.denoiser, name)
        apply_weights(self.family.denoiser, self.adapters)

    def as_preview(self) -> Studio:
        """The same weights with the fast preview (:data:`~cxr_studio.config.PREVIEW_SAMPLING`, the app's "Preview
        (fast)") as the sampling defaults, for the commands that measure it (``--preview``)."""
        return self.with_sampling(PREVIEW_SAMPLING)

    @staticmethod
    def _adapter_weight(weight: float) -> float:
        return check_number("adapter weight", weight, -LIMITS.max_adapter_weight, LIMITS.max_adapter_weight)

    # --- what every family has ------------------------------------------------------------------------------

    @property
    def family(self) -> LatentFamily:
        """The generator behind every task (:mod:`cxr_studio.pipeline.family`): here the cascade's latent stage."""
        return self.text_to_image

    @property
    def image_size(self) -> int:
        """The generator's native size in pixels (the latent stage's)."""
        return self.family.image_size

    # --- stages, each usable on its own -------------------------------------------------------------------

    def encode_report(self, reports: str | Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Report(s) -> ``prompt_embeds`` ``(B, L, D)`` and attention mask ``(B, L)``."""
        with torch.no_grad():
            return self.family.encode_reports(_as_reports(reports))

    def sample_latents(
        self,
        report: str,
        *,
        negative_report: str = "",
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        seed: int = 0,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """One report -> scaled latents ``(1, C, h, w)`` (decode them with :meth:`decode`)."""
        settings = self._settings(num_steps=num_steps, guidance_scale=guidance_scale, sampler=sampler)
        reports = _as_reports(report)
        _, latents = text_to_image(
            self.family,
            reports,
            negative_reports=_negatives(reports, negative_report, side_contrast=self.sampling.side_contrast),
            seeds=[check_seed(seed)],
            num_steps=settings.num_steps,
            guidance_scale=settings.guidance_scale,
            sampler=settings.sampler,
            callback=callback,
        )
        return latents

    def encode(self, image: Any) -> torch.Tensor:
        """A radiograph (anything ``read_radiograph`` accepts) -> scaled latents, after Cheff's resize and crop."""
        low_res = imaging.resize_center_crop(imaging.read_radiograph(image).display, self.image_size)
        with torch.no_grad():
            return self.family.encode_image(imaging.to_tensor(low_res).to(self.device))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, C, h, w)`` -> images ``(B, 1, H, W)`` in ``[-1, 1]``."""
        with torch.no_grad():
            return self.family.decode(latents)

    def upscale(
        self,
        image: Any,
        *,
        num_steps: int | None = None,
        sampler: str | None = None,
        seed: int = 0,
        noise_level: float | None = None,
        callback: StepCallback | None = None,
    ) -> Image.Image:
        """Super-resolve any radiograph: resized and cropped to ``image_size``, upscaled by the SR factor."""
        if self.super_resolution is None:
            raise InputError(f"{self.family_name} has no super-resolution stage.")
        settings = self._settings(sr_num_steps=num_steps, sr_sampler=sampler)
        level = (
            self.config.sampling.sr_noise_level
            if noise_level is None
            else check_number("noise_level", noise_level, 0.0, 1.0)
        )
        low_res = imaging.resize_center_crop(imaging.read_radiograph(image).display, self.config.image_size)
        high = self.super_resolution(
            imaging.to_tensor(low_res),
            seeds=[check_seed(seed)],
            num_steps=settings.sr_num_steps,
            sampler=settings.sr_sampler,
            noise_level=level,
            callback=callback,
        )
        return imaging.to_pil(imaging.from_tensor(high)[0])

    # --- the whole cascade --------------------------------------------------------------------------------

    def generate(
        self,
        report: str,
        *,
        negative_report: str = "",
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        seed: int | None = None,
        num_images: int = 1,
        upscale: bool | None = None,
        sr_num_steps: int | None = None,
        sr_sampler: str | None = None,
        side_contrast: bool | None = None,
        layout: LayoutArg = "auto",
        callback: StepCallback | None = None,
        preview: Preview | None = None,
        preview_every: int = PREVIEW_EVERY,
    ) -> GenerationResult:
        """Generate chest radiographs from a report.

        Args:
            report: the radiology report (free text; the empty report gives unconditional samples).
            layout: where each finding goes (:mod:`cxr_studio.layout`): ``"auto"`` (the rule's layout from the
                report), ``None`` or ``"none"`` (the report alone), or a layout (its JSON, a list of ``{label, side,
                box}`` with boxes normalised to ``[0, 1]``, or of ``LayoutItem``). A model without layout channels
                takes ``"auto"`` as none (the parameters say so) and refuses an explicit layout.
            negative_report: what to steer away from (the unconditional half of classifier-free guidance).
            side_contrast: when ``negative_report`` is empty, guide a report that names a side away from its
                mirror image ("Left effusion." from "Right effusion.") rather than from the empty report; default
                from ``config.sampling``.
            num_steps, guidance_scale, sampler: latent stage; defaults from ``config.sampling``.
            seed: seed of the first image (image ``i`` uses ``seed + i``); ``None`` draws one at random.
            num_images: 1 to 16 images, each reproducible from its own seed.
            upscale: run the super-resolution stage (``sr_num_steps``, ``sr_sampler``); default from
                ``config.sampling``.
            callback: ``callback(step, total)`` after every denoising step of both stages; return True to stop.
            preview: ``preview(pixels, step, total)`` every ``preview_every`` steps of both stages: the first
                image's current clean-image estimate, ``(H, W)`` display pixels in ``[0, 1]`` at half the first
                stage's size (the latent estimate decoded at half resolution; during super-resolution its own
                estimate, reduced to that size). Costs one small decode per preview of the first stage.

        Returns:
            A :class:`GenerationResult`; images are ``output_size`` px (``image_size`` without upscaling).
        """
        if not isinstance(num_images, int) or not 1 <= num_images <= LIMITS.max_images:
            raise InputError(f"num_images {num_images!r}; an integer from 1 to {LIMITS.max_images} is accepted.")
        first = random_seed_or(seed)
        if first + num_images - 1 > LIMITS.max_seed:
            raise InputError(f"seed {first} + {num_images} images passes the largest seed {LIMITS.max_seed}.")
        return self.generate_batch(
            [report] * num_images,
            seeds=[first + i for i in range(num_images)],
            negative_report=negative_report,
            num_steps=num_steps,
            guidance_scale=guidance_scale,
            sampler=sampler,
            upscale=upscale,
            sr_num_steps=sr_num_steps,
            sr_sampler=sr_sampler,
            side_contrast=side_contrast,
            layout=layout,
            callback=callback,
            preview=preview,
            preview_every=preview_every,
        )

    def generate_batch(
        self,
        reports: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_report: str = "",
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        upscale: bool | None = None,
        sr_num_steps: int | None = None,
        sr_sampler: str | None = None,
        side_contrast: bool | None = None,
        layout: LayoutArg = "auto",
        layouts: Sequence[LayoutArg] | None = None,
        callback: StepCallback | None = None,
        preview: Preview | None = None,
        preview_every: int = PREVIEW_EVERY,
    ) -> GenerationResult:
        """One image per ``(reports[i], seeds[i])`` in one batch (dataset synthesis); options as :meth:`generate`;
        ``layouts``, one per report, overrides ``layout`` (e.g. a manifest's boxes, ``"auto"`` where a row has none).

        Each image's start noise depends on its seed alone; the batch's makeup can still change the last bits
        of the arithmetic, so a set is reproduced bit for bit from the same batches (``synthesize`` keeps them).
        """
        settings = self._settings(
            num_steps=num_steps,
            guidance_scale=guidance_scale,
            sampler=sampler,
            sr_num_steps=sr_num_steps,
            sr_sampler=sr_sampler,
        )
        upscale = self._upscale(upscale)
        reports = _as_reports(list(reports) if not isinstance(reports, str) else reports)
        seeds = [check_seed(s) for s in seeds]
        if len(seeds) != len(reports):
            raise InputError(f"{len(reports)} reports but {len(seeds)} seeds; one seed per report.")
        side_contrast = self.sampling.side_contrast if side_contrast is None else bool(side_contrast)
        negatives = _negatives(reports, negative_report, side_contrast=side_contrast)
        if layouts is not None and len(layouts) != len(reports):
            raise InputError(f"{len(reports)} reports but {len(layouts)} layouts; one layout per report.")
        drawn = self._layouts(reports, [layout] * len(reports) if layouts is None else list(layouts))
        total = settings.num_steps + (settings.sr_num_steps if upscale else 0)
        start = time.perf_counter()
        # 1. Report (and layout) -> low-resolution image through the latent diffusion stage
        low_res, _ = text_to_image(
            self.family,
            reports,
            negative_reports=negatives,
            seeds=seeds,
            num_steps=settings.num_steps,
            guidance_scale=settings.guidance_scale,
            sampler=settings.sampler,
            callback=_offset(callback, 0, total),
            layouts=drawn,
            preview=self._previewer(preview, preview_every, 0, total, latent=True),
        )
        # 2. Low-resolution -> high-resolution through the super-resolution stage
        final = low_res
        if upscale:
            final = self.super_resolution(
                low_res,
                seeds=seeds,
                num_steps=settings.sr_num_steps,
                sampler=settings.sr_sampler,
                noise_level=self.sampling.sr_noise_level,
                callback=_offset(callback, settings.num_steps, total),
                preview=self._previewer(preview, preview_every, settings.num_steps, total, latent=False),
            )
        # 3. Tensors -> images, with the parameters that reproduce them
        pixels = imaging.from_tensor(final)
        parameters = {
            "report": reports[0],
            "negative_report": _clean_report(negative_report),
            "side_contrast": side_contrast,  # the empty negative then is each sided report's mirror image
            **self._layout_parameters(layout if layouts is None else "per image", drawn),
            **settings.as_parameters(),
            "upscale": upscale,
            "seeds": seeds,
            "sr_noise_level": self.sampling.sr_noise_level,
            "guidance_max_timestep": self.sampling.guidance_max_timestep,  # the model's, recorded beside the scale
            "layout_min_timestep": self.sampling.layout_min_timestep,  # the model's: where the layout enters
            "model": self.model_id,
            **self._adapter_parameters(),
            "size": int(pixels.shape[-1]),
            "synthetic": True,
            "software": f"cxr_studio {_version()}",
            "seconds": round(time.perf_counter() - start, 3),
        }
        return GenerationResult(
            images=[imaging.to_pil(p) for p in pixels],
            low_res=[imaging.to_pil(p) for p in imaging.from_tensor(low_res)],
            pixels=pixels,
            seeds=seeds,
            parameters=parameters,
            reports=reports,
        )

    def _previewer(
        self, preview: Preview | None, every: int, done: int, total: int | None, *, latent: bool
    ) -> PreviewHook | None:
        """A stage's live-preview hook: the first image's estimate every ``every`` steps (and at the stage's
        last), as display pixels at half the first stage's size; the latent estimate decoded at half resolution
        (a quarter of a full decode's cost). ``done`` steps of earlier stages, of ``total`` (None: this stage's)."""
        if preview is None:
            return None
        every = check_steps("preview_every", every)
        size = self.image_size // 2

        def hook(estimate: torch.Tensor, step: int, stage_total: int) -> None:
            if step % every and step != stage_total:
                return
            first = estimate[:1].float()
            if latent:
                first = self.family.decode(torch.nn.functional.avg_pool2d(first, 2))
            pixels = torch.nn.functional.interpolate(first.clamp(-1, 1), size=(size, size), mode="area")
            preview(imaging.from_tensor(pixels)[0], done + step, total or stage_total)

        return hook

    def _layouts(self, reports: Sequence[str], given: Sequence[LayoutArg]) -> list[Layout | None]:
        """Each report's ``layout`` argument -> the layout drawn (None: none); ``"auto"`` is none for a model
        without layout channels, an explicit layout is refused by it (:class:`InputError`)."""
        takes = self.takes_layout
        return [None if (g == "auto" and not takes) else resolve_layout(g, r) for r, g in zip(reports, given)]

    def _layout_parameters(self, mode: Any, drawn: Sequence[Layout | None]) -> dict[str, Any]:
        """The layout part of a result's parameters: the mode asked for, and each image's layout as JSON (None:
        none was drawn), which :meth:`GenerationResult.parameters_for` gives each image as ``layout``."""
        if isinstance(mode, str) and mode in ("auto", "none", "per image"):
            asked = mode
        else:
            asked = "none" if mode is None else "drawn"
        if asked == "auto" and not self.takes_layout:
            asked = "off: the model takes no layout"
        return {"layout_mode": asked, "layouts": [None if d is None else layout_to_dicts(d) for d in drawn]}

    # --- editing ------------------------------------------------------------------------------------------

    def inpaint(
        self,
        image: Any,
        mask: Any,
        *,
        report: str = "",
        negative_report: str = "",
        preset: str | None = None,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        strength: float | None = None,
        fill: str | None = None,
        seed: int | None = None,
        grow_px: int | None = None,
        feather_px: int | None = None,
        resample_jumps: int = 0,
        context: str = "crop",
        upscale: bool | None = None,
        keep_mask: Any = None,
        layout: LayoutArg = None,
        callback: StepCallback | None = None,
        preview: Preview | None = None,
        preview_every: int = PREVIEW_EVERY,
    ) -> EditResult:
        """Regenerate the white part of ``mask`` (1 / white = regenerate), e.g. to remove a device, or add a
        finding where ``layout`` puts it.

        Args:
            image: PIL, numpy (8 or 16 bit) or anything :func:`read_radiograph` reads, DICOM included.
            mask: same size as the image; white/1 = regenerate (thresholded at half its range).
            report: what the regenerated region should show ("" = whatever fits).
            preset: ``remove device`` (default), ``subtle fix`` or ``replace region``; explicit
                ``strength``/``fill``/``grow_px``/``feather_px`` override it; an empty ``report`` takes the preset's.
            strength: fraction of the schedule re-run, ``(0, 1]``; 1 ignores what was under the mask.
            fill: what a partial re-run starts from inside the mask: ``original`` (the pixels there) or
                ``classical`` (biharmonic fill from the surroundings; "remove device" uses it).
            resample_jumps: RePaint resampling per step (harmonises the border; runs DDIM; slower).
            context: ``crop`` works on a padded square around the mask (detail on large images,
                super-resolved when larger than the model), ``whole`` on the whole image.
            keep_mask: optional, same size; white = must not change even inside the edit (RadEdit): those
                pixels stay the input's bit for bit and their latents are never regenerated.
            layout: where the report's findings go ("add a nodule here": a box inside the mask), normalised to
                the whole image (as :meth:`generate`'s); ``"auto"`` the rule's from the report; None (default): none.
            preview: as :meth:`generate`'s, the edited window's estimate (its latents decoded at half resolution).

        Returns:
            An :class:`EditResult` whose ``image`` has the input's size, dtype and bit depth and equals it
            bit for bit wherever ``mask`` (the feathered weights) is 0.
        """
        options = InpaintOptions.from_preset(
            preset,
            report=_clean_report(report),
            negative_report=_clean_report(negative_report),
            strength=strength,
            fill=fill,
            grow_px=grow_px,
            feather_px=feather_px,
            resample_jumps=resample_jumps,
            context=context,
            upscale=self._upscale(upscale),
            layout=self._layouts([report], [layout])[0],
        )
        settings = self._settings(num_steps=num_steps, guidance_scale=guidance_scale, sampler=sampler)
        result = self.inpainting(
            image,
            mask,
            options=options,
            settings=settings,
            seed=random_seed_or(seed),
            keep_mask=keep_mask,
            callback=callback,
            preview=self._previewer(preview, preview_every, 0, None, latent=True),
        )
        return self._with_model(result)

    def outpaint(
        self,
        image: Any,
        *,
        left: int = 0,
        right: int = 0,
        top: int = 0,
        bottom: int = 0,
        keep_box: tuple[int, int, int, int] | None = None,
        report: str = "",
        negative_report: str = "",
        feather_px: int = 8,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        seed: int | None = None,
        callback: StepCallback | None = None,
    ) -> EditResult:
        """Grow the canvas by ``left/right/top/bottom`` pixels, or keep only ``keep_box`` ``(x0, y0, x1, y1)``
        and regenerate the rest (Cheff fig. 7). The kept pixels are exact; the blend ramp lies in the new area."""
        settings = self._settings(num_steps=num_steps, guidance_scale=guidance_scale, sampler=sampler)
        result = self.outpainting(
            image,
            left=left,
            right=right,
            top=top,
            bottom=bottom,
            keep_box=keep_box,
            report=_clean_report(report),
            negative_report=_clean_report(negative_report),
            feather_px=feather_px,
            settings=settings,
            seed=random_seed_or(seed),
            callback=callback,
        )
        return self._with_model(result)

    def interpolate(
        self,
        start: Any,
        end: Any,
        *,
        mode: str,
        num_frames: int = 8,
        report: str = "",
        seed: int = 0,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        callback: StepCallback | None = None,
    ) -> InterpolationResult:
        """Frames between two endpoints. ``mode``: ``report`` (two reports, one start noise), ``seed`` (two
        seeds, one report), ``image`` (two radiographs inverted with DDIM) or ``latent-blend`` (straight
        lines between autoencoder latents: the cross-fade baseline of Cheff 7.4)."""
        settings = self._settings(num_steps=num_steps, guidance_scale=guidance_scale, sampler=sampler)
        if mode == "report":
            start, end = _clean_report(start), _clean_report(end)
        result = self.interpolation(
            start,
            end,
            mode=mode,
            num_frames=num_frames,
            report=_clean_report(report),
            seed=check_seed(seed),
            settings=settings,
            callback=callback,
        )
        return self._with_model(result)

    @property
    def takes_layout(self) -> bool:
        """Whether generation and inpainting take a layout (the latent UNet has layout channels)."""
        return self.family.takes_layout

    @property
    def samplers(self) -> tuple[str, ...]:
        """The samplers that converge for this model's latent schedule (the app's menu): see
        :func:`cxr_studio.diffusion.schedules.converging_samplers`."""
        return self.family.samplers

    def _with_model(self, result: Any) -> Any:
        """A pipeline's result with this model's name and hash (and its adapters) in its parameters."""
        return dataclasses.replace(
            result, parameters={**result.parameters, "model": self.model_id, **self._adapter_parameters()}
        )

    def _adapter_parameters(self) -> dict[str, Any]:
        return {"adapters": [a.as_parameters() for a in self.adapters.values()]} if self.adapters else {}

    def _settings(self, **given: Any) -> SamplingSettings:
        """The call's settings: the given values, else ``config.sampling``'s, every one checked."""
        return SamplingSettings.resolve(self.sampling, **given)

    def _upscale(self, upscale: bool | None) -> bool:
        """Whether to super-resolve: the given choice, else the model's default; never without an SR stage."""
        if self.super_resolution is None:
            if upscale:
                raise InputError(f"{self.family_name} has no super-resolution stage; set upscale to False.")
            return False
        return self.sampling.upscale if upscale is None else bool(upscale)


class CXRStudio(Studio):
    """The report-to-radiograph cascade: report encoder, latent diffusion, autoencoder, super-resolution; the one
    kind of model that is built from a configuration, trained, resized and saved."""

    def __init__(
        self,
        *,
        config: StudioConfig,
        tokenizer: Any,
        report_encoder: torch.nn.Module,
        autoencoder: torch.nn.Module,
        latent_unet: torch.nn.Module,
        super_res_unet: torch.nn.Module,
        model_id: str,
        device: str | torch.device | None = None,
    ) -> None:
        self.config = config
        self.model_id = model_id
        self.folder: Path | None = None  # the folder it was loaded from, if any (its model card lives there)
        self.device = torch.device(device or "cpu")  # the caller chooses a GPU; never assumed
        self.tokenizer = tokenizer
        self.report_encoder = report_encoder.to(self.device).eval()
        self.autoencoder = autoencoder.to(self.device).eval()
        self.latent_unet = latent_unet.to(self.device).eval()
        self.super_res_unet = super_res_unet.to(self.device).eval()
        self.text_to_image = TextToImagePipeline(
            config=config,
            tokenizer=tokenizer,
            report_encoder=self.report_encoder,
            latent_unet=self.latent_unet,
            autoencoder=self.autoencoder,
        )
        self.codec = self.text_to_image.codec  # the autoencoder as images <-> scaled latents
        self.super_resolution = SuperResolutionPipeline(config=config, super_res_unet=self.super_res_unet)
        self._wire()

    @property
    def family_name(self) -> str:
        return "CXR Studio cascade"

    @property
    def sampling(self) -> SamplingDefaults:
        """The model's sampling defaults (the app's sliders start here)."""
        return self.config.sampling

    @property
    def output_size(self) -> int:
        """The size of generated images after super-resolution (``image_size`` where there is none)."""
        return self.config.output_size if self.super_resolution is not None else self.image_size

    # --- construction and persistence -------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: StudioConfig,
        *,
        seed: int = 0,
        device: str | torch.device | None = None,
        reports: Sequence[str] = (),
    ) -> CXRStudio:
        """Randomly initialised components for ``config`` (weights depend only on ``seed``)."""
        tokenizer = train_tokenizer(
            reports, vocab_size=config.report_encoder.vocab_size, max_tokens=config.report_encoder.max_tokens
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            report_encoder = build_report_encoder(config.report_encoder, vocab_size=len(tokenizer))
            autoencoder = build_autoencoder(config.autoencoder)
            latent_unet = build_latent_unet(
                config.latent_unet,
                latent_channels=config.autoencoder.latent_channels,
                latent_size=config.latent_size,
                context_dim=config.report_encoder.hidden_size,
            )
            super_res_unet = build_super_res_unet(config.super_res, output_size=config.output_size)
        return cls(
            config=config,
            tokenizer=tokenizer,
            report_encoder=report_encoder,
            autoencoder=autoencoder,
            latent_unet=latent_unet,
            super_res_unet=super_res_unet,
            model_id=f"{config.name}@random-init-seed{seed}",
            device=device,
        )

    @classmethod
    def from_preset(cls, name: str, *, seed: int = 0, device: str | torch.device | None = None) -> CXRStudio:
        """Random weights for preset ``tiny`` (tests), ``demo`` (the bundled default's size) or ``cheff``
        (the paper's)."""
        return cls.from_config(preset(name), seed=seed, device=device)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, device: str | torch.device | None = None) -> CXRStudio:
        """Load a cascade written by :meth:`save_pretrained`, offline, its files checked first. Damaged or
        pickle-bearing folders raise InputError; :func:`cxr_studio.model_folders.load_model` loads any model
        folder (diffusers pipelines too)."""
        components, config, model_hash = load_studio(path, device=torch.device(device or "cpu"))
        studio = cls(config=config, model_id=f"{config.name}@{model_hash[:12]}", device=device, **components)
        studio.folder = Path(path)
        return studio

    def components(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer,
            "report_encoder": self.report_encoder,
            "autoencoder": self.autoencoder,
            "latent_unet": self.latent_unet,
            "super_res_unet": self.super_res_unet,
        }

    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks by component name (for parameter counts and device moves)."""
        return {k: v for k, v in self.components().items() if isinstance(v, torch.nn.Module)}

    def with_sampling(self, changes: dict[str, Any]) -> CXRStudio:
        """The same weights with other sampling defaults: ``changes`` maps ``SamplingDefaults`` fields to values."""
        config = self.config.replace(sampling=dataclasses.replace(self.config.sampling, **changes))
        return CXRStudio(config=config, model_id=self.model_id, device=self.device, **self.components())

    def with_resolution(self, *, image_size: int, sr_factor: int | None = None, name: str | None = None) -> CXRStudio:
        """The same weights at another first-stage size (and super-resolution factor).

        Every part is convolutional or attends over positions, so the weights run at any size that the
        UNets' downsampling divides; what they learned at one scale does not carry over as is (a latent
        UNet trained on 32x32 latents draws noise at 64x64), so each stage is then fine-tuned at the new
        size, as Stable Diffusion was moved from 512 to 768 px: far fewer steps than training anew. The
        modules are shared with this studio, not copied (their configs' ``sample_size``, metadata only,
        follow the new size). ``name`` renames the configuration (the preset it now matches).
        """
        factor = self.config.super_res.factor if sr_factor is None else sr_factor
        if not isinstance(factor, int) or factor < 1:
            raise InputError(f"sr_factor must be a whole number of at least 1, got {factor!r}.")
        latent_step = self.config.autoencoder.downsampling * 2 ** (len(self.config.latent_unet.block_out_channels) - 1)
        sr_step = 2 ** (len(self.config.super_res.block_out_channels) - 1)
        if (
            not isinstance(image_size, int)
            or image_size < latent_step
            or image_size % latent_step
            or (image_size * factor) % sr_step
        ):
            raise InputError(
                f"image_size {image_size!r} with factor {factor}: the size must be a multiple of {latent_step} "
                f"(autoencoder and latent UNet downsampling) and size x factor a multiple of {sr_step}."
            )
        config = self.config.replace(
            image_size=image_size,
            super_res=dataclasses.replace(self.config.super_res, factor=factor),
            name=name or self.config.name,
        )
        self.latent_unet.register_to_config(sample_size=config.latent_size)
        self.super_res_unet.register_to_config(sample_size=config.output_size)
        return CXRStudio(config=config, model_id=self.model_id, device=self.device, **self.components())

    def save_pretrained(self, path: str | os.PathLike[str], *, dtype: torch.dtype | None = None) -> str:
        """Write the cascade as a model folder (safetensors only, with sha256 list); returns the model hash.

        ``dtype=torch.float16`` stores half-precision weights (the bundled demo); they load as float32.
        """
        model_hash = save_studio(self.components(), self.config, path, dtype=dtype)
        self.model_id = f"{self.config.name}@{model_hash[:12]}"
        return model_hash


class DiffusersStudio(Studio):
    """A diffusers-format text-to-image model (RoentGen, CheXGenBench's Sana / PixArt-Sigma / SD fine-tunes)
    behind the same generate / inpaint / outpaint / interpolate calls. It has no super-resolution stage: images
    come at the family's native size. Saving, resizing and training a cascade's stages are :class:`CXRStudio`'s
    alone; few-shot adaptation (LoRA or full) works for both."""

    def __init__(
        self,
        family: DiffusersFamily,
        *,
        model_id: str,
        folder: str | os.PathLike[str] | None = None,
        sampling: SamplingDefaults | None = None,
    ) -> None:
        self.model_id = model_id
        self.folder = Path(folder) if folder else None
        self.text_to_image = family
        self.super_resolution = None
        self._sampling = sampling or family.defaults
        self.device = family.device
        self._wire()

    @classmethod
    def from_folder(
        cls,
        path: str | os.PathLike[str],
        *,
        index: dict[str, Any],
        model_id: str,
        device: str | torch.device | None = None,
    ) -> DiffusersStudio:
        """Load a local diffusers folder (offline, safetensors only) whose ``model_index.json`` is ``index``;
        :func:`cxr_studio.model_folders.load_model` classifies and names the folder first."""
        family = DiffusersFamily(load_pipeline(path, index=index, device=torch.device(device or "cpu")))
        return cls(family, model_id=model_id, folder=path)

    @property
    def family_name(self) -> str:
        return self.family.kind

    def modules(self) -> dict[str, torch.nn.Module]:
        return {k: v for k, v in self.family.pipe.components.items() if isinstance(v, torch.nn.Module)}

    @property
    def sampling(self) -> SamplingDefaults:
        return self._sampling

    def with_sampling(self, changes: dict[str, Any]) -> DiffusersStudio:
        if changes.get("guidance_max_timestep") is not None:  # refused rather than silently ignored
            raise InputError(f"{self.family_name} guides at every step; guidance_max_timestep is for cascades.")
        return DiffusersStudio(
            self.family,
            model_id=self.model_id,
            folder=self.folder,
            sampling=dataclasses.replace(self._sampling, **changes),
        )


def _version() -> str:
    from cxr_studio.version import __version__

    return __version__


def _negatives(reports: Sequence[str], negative_report: str, *, side_contrast: bool) -> list[str]:
    """Each report's negative: the one given, else (``side_contrast``) its mirror image where it names a side, else
    the empty report."""
    negative = _clean_report(negative_report)
    if negative or not side_contrast:
        return [negative] * len(reports)
    return [mirrored if (mirrored := mirrored_report(r)) != r else "" for r in reports]


def _clean_report(report: Any) -> str:
    if not isinstance(report, str):
        raise InputError(f"a report must be text, got {type(report).__name__}.")
    if len(report) > LIMITS.max_report_chars:  # far beyond any token limit: a pasted file, not a report
        raise InputError(
            f"the report has {len(report)} characters; at most {LIMITS.max_report_chars} are accepted "
            "(the model reads the first tokens only)."
        )
    # control characters (other than line breaks) carry no meaning for the model
    return " ".join("".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in report).split())


def _as_reports(reports: str | Sequence[str]) -> list[str]:
    if isinstance(reports, str):
        return [_clean_report(reports)]
    if not isinstance(reports, (list, tuple)):
        raise InputError(f"a report must be text, got {type(reports).__name__}.")
    if not reports:
        raise InputError("no report given; a string or a list of strings is accepted.")
    return [_clean_report(r) for r in reports]


def _offset(callback: StepCallback | None, done: int, total: int) -> StepCallback | None:
    """Report a stage's steps as steps of the whole cascade."""
    if callback is None:
        return None
    return lambda step, _stage_total: callback(done + step, total)
