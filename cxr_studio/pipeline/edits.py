"""Editing real radiographs with the cascade: inpainting, outpainting and interpolation (Cheff 5, 7.4).

Every edit reads the image once (keeping its stored pixels and bit depth), works in display space at
model resolution, and pastes the result back so that every pixel outside the feathered mask is the
input's own value, bit for bit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from cxr_studio import imaging
from cxr_studio.config import EDIT_FILLS, EDIT_PRESETS, INTERPOLATION_MODES, EditPreset
from cxr_studio.diffusion.guidance import classifier_free_guidance
from cxr_studio.diffusion.interpolation import slerp
from cxr_studio.diffusion.noise import LATENT_STREAM, seeded_noise
from cxr_studio.diffusion.sampling import StepCallback, denoise
from cxr_studio.diffusion.schedules import make_sampler
from cxr_studio.editing.compositing import classical_fill, context_box, match_seam, paste_back
from cxr_studio.editing.masks import feather, grow, to_latent_mask, to_mask
from cxr_studio.errors import InputError
from cxr_studio.limits import LIMITS, check_seed

if TYPE_CHECKING:
    from cxr_studio.pipeline.studio import CXRStudio


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


def _preset(name: str | None) -> EditPreset:
    if name is None:
        return EDIT_PRESETS["remove device"]
    if name not in EDIT_PRESETS:
        raise InputError(f"unknown edit preset {name!r}; accepted: {', '.join(EDIT_PRESETS)}.")
    return EDIT_PRESETS[name]


def _regenerate(
    studio: CXRStudio,
    radiograph: imaging.Radiograph,
    region: np.ndarray,
    weights: np.ndarray,
    *,
    context: str,
    report: str,
    negative_report: str,
    seed: int,
    settings: dict[str, Any],
    strength: float,
    fill: str,
    resample_jumps: int,
    upscale: bool,
    callback: StepCallback | None,
) -> np.ndarray:
    """Regenerate ``region`` of the radiograph's display at model resolution; returns the full-size display."""
    size = studio.config.image_size
    display = radiograph.display
    # 1. The working window: a padded square around the edit (keeps detail on large images), or everything
    if context == "crop":
        top, left, bottom, right = context_box(weights > 0, min_side=min(size, *display.shape))
    elif context == "whole":
        top, left, bottom, right = 0, 0, *display.shape
    else:
        raise InputError(f"context {context!r}; accepted 'crop' or 'whole'.")
    window = display[top:bottom, left:right]
    latent_mask = to_latent_mask(region[top:bottom, left:right], (studio.config.latent_size,) * 2)
    model_input = imaging.resize(window, (size, size))
    if fill == "classical" and strength < 1.0:  # at model resolution: cheap however large the window
        model_input = classical_fill(
            model_input, imaging.resize(region[top:bottom, left:right].astype(np.float32), (size, size)) > 0.5
        )
    # 2. Inpaint at model resolution, then super-resolve when the window is larger than that
    generated = studio.inpainting(
        imaging.to_tensor(model_input),
        latent_mask,
        report=report,
        negative_report=negative_report,
        seed=seed,
        num_steps=settings["num_steps"],
        guidance_scale=settings["guidance_scale"],
        sampler=settings["sampler"],
        strength=strength,
        resample_jumps=resample_jumps,
        callback=callback,
    )
    if upscale and max(window.shape) > size:
        generated = studio.super_resolution(
            generated,
            seeds=[seed],
            num_steps=settings["sr_num_steps"],
            sampler=settings["sr_sampler"],
            noise_level=studio.config.sampling.sr_noise_level,
        )
    full = display.copy()
    full[top:bottom, left:right] = imaging.resize(imaging.from_tensor(generated)[0], window.shape)
    # 3. Match brightness and contrast at the seam
    return match_seam(full, display, region)


def _finish(
    radiograph: imaging.Radiograph, generated: np.ndarray, weights: np.ndarray, parameters: dict[str, Any]
) -> EditResult:
    """Paste back in stored values: outside the weights the input, bit for bit."""
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


def inpaint(
    studio: CXRStudio,
    image: Any,
    mask: Any,
    *,
    report: str,
    negative_report: str,
    preset: str | None,
    strength: float | None,
    fill: str | None,
    grow_px: int | None,
    feather_px: int | None,
    resample_jumps: int,
    context: str,
    seed: int,
    settings: dict[str, Any],
    upscale: bool,
    callback: StepCallback | None,
) -> EditResult:
    choice = _preset(preset)
    strength = choice.strength if strength is None else strength
    grow_px = choice.grow_px if grow_px is None else grow_px
    feather_px = choice.feather_px if feather_px is None else feather_px
    fill = choice.fill if fill is None else fill
    report = report or choice.report
    if fill not in EDIT_FILLS:
        raise InputError(f"fill {fill!r}; accepted: {', '.join(EDIT_FILLS)}.")
    if not 0.0 < strength <= 1.0:
        raise InputError(f"strength {strength!r}; a number in (0, 1] is accepted.")
    top = LIMITS.max_mask_px
    if not (
        isinstance(grow_px, int) and isinstance(feather_px, int) and 0 <= grow_px <= top and 0 <= feather_px <= top
    ):
        raise InputError(f"grow_px and feather_px must be integers from 0 to {top}.")
    if not (isinstance(resample_jumps, int) and 0 <= resample_jumps <= LIMITS.max_resample_jumps):
        raise InputError(
            f"resample_jumps {resample_jumps!r}; an integer from 0 to {LIMITS.max_resample_jumps} is accepted."
        )
    radiograph = imaging.read_radiograph(image, name="image")
    region = to_mask(mask if not isinstance(mask, imaging.Radiograph) else mask.pixels, radiograph.display.shape)
    if not region.any():
        raise InputError(
            "the mask is empty, so there is nothing to regenerate; paint (white) the region to regenerate."
        )
    region = grow(region, grow_px)
    weights = feather(region, feather_px)
    generated = _regenerate(
        studio,
        radiograph,
        region,
        weights,
        context=context,
        report=report,
        negative_report=negative_report,
        seed=seed,
        settings=settings,
        strength=strength,
        fill=fill,
        resample_jumps=resample_jumps,
        upscale=upscale,
        callback=callback,
    )
    parameters = {
        "edit": "inpaint",
        "report": report,
        "negative_report": negative_report,
        "preset": preset,
        "strength": strength,
        "fill": fill,
        "grow_px": grow_px,
        "feather_px": feather_px,
        "resample_jumps": resample_jumps,
        "context": context,
        "seed": seed,
        **settings,
        "model": studio.model_id,
        "derived": True,
        "synthetic_region": True,
    }
    return _finish(radiograph, generated, weights, parameters)


def outpaint(
    studio: CXRStudio,
    image: Any,
    *,
    left: int,
    right: int,
    top: int,
    bottom: int,
    keep_box: tuple[int, int, int, int] | None,
    report: str,
    negative_report: str,
    feather_px: int,
    seed: int,
    settings: dict[str, Any],
    callback: StepCallback | None,
) -> EditResult:
    radiograph = imaging.read_radiograph(image, name="image")
    height, width = radiograph.pixels.shape
    if keep_box is not None:
        x0, y0, x1, y1 = (int(v) for v in keep_box)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InputError(f"keep_box {keep_box} must be (x0, y0, x1, y1) inside the {width}x{height} image.")
        canvas = radiograph
        region = np.ones((height, width), bool)
        region[y0:y1, x0:x1] = False
    else:
        pads = {"left": left, "right": right, "top": top, "bottom": bottom}
        if any(not isinstance(v, int) or v < 0 or v > 4 * max(height, width) for v in pads.values()):
            raise InputError(f"outpaint sizes {pads}: integers from 0 to 4x the image side are accepted.")
        if not any(pads.values()):
            raise InputError("outpaint of zero pixels: give left/right/top/bottom > 0 or a keep_box.")
        canvas = radiograph.with_pixels(np.pad(radiograph.pixels, ((top, bottom), (left, right)), mode="edge"))
        region = np.ones(canvas.pixels.shape, bool)
        region[top : top + height, left : left + width] = False
    weights = feather(region, feather_px, inward=True)  # the ramp lies in the new area: kept pixels stay exact
    generated = _regenerate(
        studio,
        canvas,
        region,
        weights,
        context="whole",
        report=report,
        negative_report=negative_report,
        seed=seed,
        settings=settings,
        strength=1.0,
        fill="original",
        resample_jumps=0,
        upscale=False,
        callback=callback,
    )
    parameters = {
        "edit": "outpaint",
        "left": left,
        "right": right,
        "top": top,
        "bottom": bottom,
        "keep_box": keep_box,
        "report": report,
        "feather_px": feather_px,
        "seed": seed,
        **settings,
        "model": studio.model_id,
        "derived": True,
        "synthetic_region": True,
    }
    return _finish(canvas, generated, weights, parameters)


@torch.no_grad()
def interpolate(
    studio: CXRStudio,
    start: Any,
    end: Any,
    *,
    mode: str,
    num_frames: int,
    report: str,
    seed: int,
    settings: dict[str, Any],
    callback: StepCallback | None,
) -> InterpolationResult:
    if mode not in INTERPOLATION_MODES:
        raise InputError(f"interpolation mode {mode!r}; accepted: {', '.join(INTERPOLATION_MODES)}.")
    if not isinstance(num_frames, int) or not 2 <= num_frames <= LIMITS.max_frames:
        raise InputError(f"num_frames {num_frames!r}; an integer from 2 to {LIMITS.max_frames} is accepted.")
    t2i = studio.text_to_image
    alphas = np.linspace(0.0, 1.0, num_frames)
    steps, scale, sampler = settings["num_steps"], settings["guidance_scale"], settings["sampler"]
    latents = []
    if mode == "report":  # two reports, one start noise, embeddings interpolated
        if not isinstance(start, str) or not isinstance(end, str):
            raise InputError("mode 'report' interpolates between two report texts.")
        embeds, mask = t2i.encode_reports([start, end, ""])
        union = torch.maximum(mask[0], mask[1])[None]
        noise = seeded_noise([seed], t2i.latent_shape, stream=LATENT_STREAM, device=t2i.device)
        for k, a in enumerate(alphas):
            if k in (0, num_frames - 1):  # the endpoints exactly as generate() encodes them (own padding)
                frame_embeds, frame_mask = t2i.encode_reports([start if k == 0 else end, ""])
            else:
                frame_embeds = torch.cat([torch.lerp(embeds[0:1], embeds[1:2], float(a)), embeds[2:]])
                frame_mask = torch.cat([union, mask[2:]])
            latents.append(
                t2i.sample(
                    frame_embeds,
                    frame_mask,
                    noise,
                    num_steps=steps,
                    guidance_scale=scale,
                    sampler=sampler,
                    callback=_frame(callback, k, num_frames),
                )
            )
    elif mode == "seed":  # one report, spherical interpolation between two start noises
        first, second = check_seed(start), check_seed(end)
        embeds, mask = t2i.encode_reports([report, ""])
        a_noise, b_noise = (
            seeded_noise([s], t2i.latent_shape, stream=LATENT_STREAM, device=t2i.device) for s in (first, second)
        )
        for k, a in enumerate(alphas):
            latents.append(
                t2i.sample(
                    embeds,
                    mask,
                    slerp(a_noise, b_noise, float(a)),
                    num_steps=steps,
                    guidance_scale=scale,
                    sampler=sampler,
                    callback=_frame(callback, k, num_frames),
                )
            )
    else:
        known = [studio.encode(image) for image in (start, end)]
        if (
            mode == "latent-blend"
        ):  # straight lines between autoencoder latents: a cross-fade (Cheff 7.4), the baseline
            latents = [torch.lerp(known[0], known[1], float(a)) for a in alphas]
        else:  # "image": DDIM inversion of both radiographs to noise, then spherical interpolation
            embeds, mask = t2i.encode_reports([report, ""])
            conditional = classifier_free_guidance(t2i.latent_unet, embeds[:1], mask[:1], embeds[1:], mask[1:], 1.0)
            from diffusers import DDIMInverseScheduler

            inverse = DDIMInverseScheduler.from_config(make_sampler("ddim", studio.config.latent_schedule).config)
            noises = [denoise(conditional, z, inverse, steps) for z in known]
            for k, a in enumerate(alphas):
                latents.append(
                    denoise(
                        conditional,
                        slerp(noises[0], noises[1], float(a)),
                        t2i.sampler("ddim"),
                        steps,
                        callback=_frame(callback, k, num_frames),
                    )
                )
    pixels = imaging.from_tensor(torch.cat([t2i.decode(z) for z in latents]))
    parameters = {
        "interpolation": mode,
        "num_frames": num_frames,
        "report": report,
        "seed": seed,
        **settings,
        "model": studio.model_id,
        "synthetic": True,
    }
    if mode == "report":
        parameters.update(start_report=start, end_report=end)
    if mode == "seed":
        parameters.update(start_seed=int(start), end_seed=int(end))
    return InterpolationResult(pixels=pixels, parameters=parameters)


def _frame(callback: StepCallback | None, index: int, total: int) -> StepCallback | None:
    """Report frame ``index``'s steps as progress over all frames."""
    if callback is None:
        return None
    return lambda step, steps: callback(index * steps + step, total * steps)
