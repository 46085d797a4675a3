"""Inpainting a real radiograph (Cheff 5): regenerate the white part of a mask, e.g. to remove a device.

The image is read once (its stored pixels and bit depth kept), edited in display space at model resolution
on a window around the mask, and pasted back so that every pixel outside the feathered mask is the input's own
value, bit for bit. Outpainting (:mod:`cxr_studio.pipeline.outpainting`) is the same after padding the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from cxr_studio import imaging
from cxr_studio.config import EDIT_FILLS, EDIT_PRESETS, SamplingSettings
from cxr_studio.diffusion.sampling import PreviewHook, StepCallback
from cxr_studio.editing.compositing import classical_fill, context_box, match_seam, paste_back, rim_blend
from cxr_studio.editing.masks import feather, grow, to_latent_mask, to_mask
from cxr_studio.errors import InputError
from cxr_studio.layout import Layout, layout_to_dicts, reframe
from cxr_studio.limits import LIMITS
from cxr_studio.pipeline.latent_inpainting import LatentInpaintPipeline
from cxr_studio.pipeline.super_resolution import SuperResolutionPipeline

CONTEXTS = ("crop", "whole")  # what the model sees: a padded square around the mask, or the whole image
# With the classical fill, the result ramps from that fill on the mask's edge to the model's output this many
# latent cells further in: the device-removal benchmark's thin devices (lines, wires) lost 1-4 dB to the fill
# alone when regenerated, its wide ones (generators) gained 2-5 dB (model card).
RIM_CELLS = 1.0


@dataclass(frozen=True)
class EditResult:
    """An edited radiograph. Inpainted and outpainted real images are still patient images, never anonymous.

    Attributes:
        image: stored pixels, same dtype and bit depth as the input (a 16-bit input stays 16-bit).
        display: ``image`` through the input's display chain, float32 in ``[0, 1]``.
        generated: the model's raw output at full size, display ``[0, 1]``.
        mask: the blend weights used, ``[0, 1]`` (0 = the input, bit for bit).
        difference: ``|display - input display|``.
        bit_depth, parameters: the input's bit depth; everything needed to reproduce the edit.
    """

    image: np.ndarray
    display: np.ndarray
    generated: np.ndarray
    mask: np.ndarray
    difference: np.ndarray
    bit_depth: int
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_pil(self) -> Image.Image:
        """The result for viewing: 8-bit grayscale of ``display``."""
        return imaging.to_pil(self.display)


@dataclass(frozen=True)
class InpaintOptions:
    """How an inpainting edit runs, checked: a named preset's values unless given (:data:`EDIT_PRESETS`).

    ``strength`` in ``(0, 1]`` is the fraction of the schedule re-run (1 ignores what was under the mask);
    ``fill`` is what a partial re-run starts from inside the mask; ``grow_px``/``feather_px`` dilate the mask
    and ramp its edge (pixels of the input); ``resample_jumps`` is RePaint resampling per step; ``context``
    is :data:`CONTEXTS`; ``upscale`` super-resolves a window larger than the model's size; ``layout`` says where
    the report's findings go ("add a nodule here": a box inside the mask), in the whole input's coordinates.
    """

    report: str
    negative_report: str = ""
    preset: str | None = None
    strength: float = 1.0
    fill: str = "original"
    grow_px: int = 0
    feather_px: int = 0
    resample_jumps: int = 0
    context: str = "crop"
    upscale: bool = True
    layout: Layout | None = None  # where the report's findings go, normalised to the whole input image

    def __post_init__(self) -> None:
        if self.fill not in EDIT_FILLS:
            raise InputError(f"fill {self.fill!r}; accepted: {', '.join(EDIT_FILLS)}.")
        if not 0.0 < self.strength <= 1.0:
            raise InputError(f"strength {self.strength!r}; a number in (0, 1] is accepted.")
        top = LIMITS.max_mask_px
        if not all(isinstance(v, int) and 0 <= v <= top for v in (self.grow_px, self.feather_px)):
            raise InputError(f"grow_px and feather_px must be integers from 0 to {top}.")
        if not (isinstance(self.resample_jumps, int) and 0 <= self.resample_jumps <= LIMITS.max_resample_jumps):
            raise InputError(
                f"resample_jumps {self.resample_jumps!r}; "
                f"an integer from 0 to {LIMITS.max_resample_jumps} is accepted."
            )
        if self.context not in CONTEXTS:
            raise InputError(f"context {self.context!r}; accepted {' or '.join(map(repr, CONTEXTS))}.")

    @property
    def classical(self) -> bool:
        """Does a partial re-run start from the classical fill (and keep it on the mask's rim)?"""
        return self.fill == "classical" and self.strength < 1.0

    @classmethod
    def from_preset(cls, preset: str | None, **given: Any) -> InpaintOptions:
        """The preset's values (``remove device`` when ``None``) with every given non-``None`` value over them;
        an empty report takes the preset's."""
        name = "remove device" if preset is None else preset
        if name not in EDIT_PRESETS:
            raise InputError(f"unknown edit preset {name!r}; accepted: {', '.join(EDIT_PRESETS)}.")
        chosen = EDIT_PRESETS[name]
        values = {
            "strength": chosen.strength,
            "fill": chosen.fill,
            "grow_px": chosen.grow_px,
            "feather_px": chosen.feather_px,
        }
        values |= {key: value for key, value in given.items() if value is not None}
        values["report"] = values.get("report") or chosen.report
        return cls(preset=preset, **values)


class InpaintPipeline:
    """``image`` + ``inpaint_mask`` (white = regenerate) + report -> :class:`EditResult`."""

    def __init__(
        self,
        *,
        latent_inpainting: LatentInpaintPipeline,
        super_resolution: SuperResolutionPipeline | None,
        sr_noise_level: float = 0.0,
    ) -> None:
        """``super_resolution``: the cascade's upscaler for windows larger than the family's size (``None``: such
        windows are resized instead); ``sr_noise_level``: its conditioning noise at sampling."""
        self.latent_inpainting = latent_inpainting
        self.super_resolution = super_resolution
        self.sr_noise_level = sr_noise_level

    def __call__(
        self,
        image: Any,
        inpaint_mask: Any,
        *,
        options: InpaintOptions,
        settings: SamplingSettings,
        seed: int,
        keep_mask: Any = None,
        callback: StepCallback | None = None,
        preview: PreviewHook | None = None,
    ) -> EditResult:
        """``image``: anything :func:`~cxr_studio.imaging.read_radiograph` reads; ``inpaint_mask``: same size, white
        (or 1) = regenerate, thresholded at half its range; ``keep_mask`` (optional, same size): white = must not
        change, even inside the grown and feathered edit (RadEdit's keep mask: a chest tube kept while a
        pneumothorax is added). Kept pixels are the input's bit for bit and their latents are never regenerated.
        ``preview``: the edited window's latent estimate at each step (the known latents outside the edit)."""
        # 1. Read the radiograph once and turn the masks into blend weights (grown, feathered, then keep cut out)
        radiograph = imaging.read_radiograph(image, name="image")
        region = to_mask(_pixels(inpaint_mask), radiograph.display.shape)
        if not region.any():
            raise InputError(
                "the mask is empty, so there is nothing to regenerate; paint (white) the region to regenerate."
            )
        keep = (
            np.zeros_like(region) if keep_mask is None else to_mask(_pixels(keep_mask), region.shape, name="keep_mask")
        )
        region = grow(region, options.grow_px) & ~keep
        if not region.any():
            raise InputError("the keep mask covers the whole edit mask, so nothing is left to regenerate.")
        weights = feather(region, options.feather_px) * ~keep  # float32 kept: paste-back rounds as before
        # 2. Regenerate the region in display space
        generated = self.regenerate(
            radiograph.display,
            region,
            weights,
            options=options,
            settings=settings,
            seed=seed,
            keep=keep,
            callback=callback,
            preview=preview,
        )
        # 3. Paste back in stored values: outside the weights, the input bit for bit
        parameters = {
            "edit": "inpaint",
            "report": options.report,
            "negative_report": options.negative_report,
            "preset": options.preset,
            "strength": options.strength,
            "fill": options.fill,
            "classical_rim_cells": RIM_CELLS if options.classical else 0.0,
            "grow_px": options.grow_px,
            "feather_px": options.feather_px,
            "resample_jumps": options.resample_jumps,
            "context": options.context,
            "keep_mask": bool(keep.any()),
            "layout": None if options.layout is None else layout_to_dicts(options.layout),
            "seed": seed,
            **settings.as_parameters(),
            "derived": True,
            "synthetic_region": True,
        }
        return paste(radiograph, generated, weights, parameters)

    def regenerate(
        self,
        display: np.ndarray,
        region: np.ndarray,
        weights: np.ndarray,
        *,
        options: InpaintOptions,
        settings: SamplingSettings,
        seed: int,
        keep: np.ndarray | None = None,
        callback: StepCallback | None = None,
        preview: PreviewHook | None = None,
    ) -> np.ndarray:
        """``display`` ``(H, W)`` in ``[0, 1]`` with ``region`` regenerated (never a latent cell that touches
        ``keep``); returns the full-size display."""
        family = self.latent_inpainting.family
        size = family.image_size
        # 1. The working window: a padded square around the edit (keeps detail on large images), or everything
        if options.context == "crop":
            top, left, bottom, right = context_box(weights > 0, min_side=min(size, *display.shape))
        else:
            top, left, bottom, right = 0, 0, *display.shape
        window = display[top:bottom, left:right]
        # 2. The model's input at its size: the window, its masked part pre-filled classically when asked
        latent_size = family.latent_shape[1:]
        latent_mask = to_latent_mask(region[top:bottom, left:right], latent_size)
        if keep is not None and keep.any():
            latent_mask = latent_mask * (1.0 - to_latent_mask(keep[top:bottom, left:right], latent_size))
        # (the fill at the window's own resolution: the rim of step 6 keeps it at full detail)
        filled = classical_fill(window, region[top:bottom, left:right]) if options.classical else window
        model_input = imaging.resize(filled, (size, size))
        # 3. Latent inpainting (blended, with the RePaint hook)
        generated = self.latent_inpainting(
            imaging.to_tensor(model_input),
            latent_mask,
            report=options.report,
            negative_report=options.negative_report,
            seed=seed,
            num_steps=settings.num_steps,
            guidance_scale=settings.guidance_scale,
            sampler=settings.sampler,
            strength=options.strength,
            resample_jumps=options.resample_jumps,
            layout=None
            if options.layout is None
            else reframe(options.layout, _frame(top, left, bottom, right, display)),
            callback=callback,
            preview=preview,
        )
        # 4. Super-resolution when the window is larger than the model's size
        if options.upscale and max(window.shape) > size and self.super_resolution is not None:
            generated = self.super_resolution(
                generated,
                seeds=[seed],
                num_steps=settings.sr_num_steps,
                sampler=settings.sr_sampler,
                noise_level=self.sr_noise_level,
            )
        full = display.copy()
        full[top:bottom, left:right] = imaging.resize(imaging.from_tensor(generated)[0], window.shape)
        # 5. Brightness and contrast matched at the seam
        full = match_seam(full, display, region)
        if options.classical:
            # 6. The mask's thin parts keep the classical fill (see rim_blend)
            classical = display.copy()
            classical[top:bottom, left:right] = filled
            full = rim_blend(classical, full, region, depth_px=RIM_CELLS * window.shape[0] / latent_size[0])
        return full


def _frame(top: int, left: int, bottom: int, right: int, image: np.ndarray) -> tuple[float, float, float, float]:
    """A window of ``image`` in pixels -> its normalised box ``(x0, y0, x1, y1)``."""
    height, width = image.shape[:2]
    return (left / width, top / height, right / width, bottom / height)


def _pixels(mask: Any) -> Any:
    return mask.pixels if isinstance(mask, imaging.Radiograph) else mask


def paste(
    radiograph: imaging.Radiograph, generated: np.ndarray, weights: np.ndarray, parameters: dict[str, Any]
) -> EditResult:
    """``generated`` display ``[0, 1]`` blended into the radiograph's stored values by ``weights`` (0 = the input,
    bit for bit)."""
    pixels = paste_back(radiograph.pixels, radiograph.to_pixels(generated), weights)
    display = radiograph.with_pixels(pixels).display
    return EditResult(
        image=pixels,
        display=display,
        generated=generated.astype(np.float32),
        mask=weights,
        difference=np.abs(display - radiograph.display),
        bit_depth=radiograph.bit_depth,
        parameters=parameters,
    )
