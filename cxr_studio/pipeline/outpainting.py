"""Outpainting (Cheff fig. 7): grow the canvas, or keep only a box, and regenerate the rest.

It is inpainting with the inverse mask: the kept pixels are exact, and the blend ramp lies in the new area.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxr_studio import imaging
from cxr_studio.config import SamplingSettings
from cxr_studio.diffusion.sampling import StepCallback
from cxr_studio.editing.masks import feather
from cxr_studio.errors import InputError
from cxr_studio.pipeline.inpainting import EditResult, InpaintOptions, InpaintPipeline, paste


class OutpaintPipeline:
    """``image`` + margins (or a box to keep) + report -> :class:`EditResult` on the new canvas."""

    def __init__(self, inpainting: InpaintPipeline) -> None:
        self.inpainting = inpainting

    def __call__(
        self,
        image: Any,
        *,
        left: int = 0,
        right: int = 0,
        top: int = 0,
        bottom: int = 0,
        keep_box: tuple[int, int, int, int] | None = None,
        report: str,
        negative_report: str,
        feather_px: int,
        settings: SamplingSettings,
        seed: int,
        callback: StepCallback | None = None,
    ) -> EditResult:
        """Grow the canvas by ``left/right/top/bottom`` pixels, or keep only ``keep_box`` ``(x0, y0, x1, y1)``."""
        # 1. The canvas and the region to regenerate: the padding (edge values as a start), or all but the box
        radiograph = imaging.read_radiograph(image, name="image")
        canvas, region = _canvas(radiograph, left=left, right=right, top=top, bottom=bottom, keep_box=keep_box)
        weights = feather(region, feather_px, inward=True)  # the ramp lies in the new area: kept pixels stay exact
        # 2. Inpaint the whole canvas at full strength
        options = InpaintOptions(report=report, negative_report=negative_report, context="whole", upscale=False)
        generated = self.inpainting.regenerate(
            canvas.display, region, weights, options=options, settings=settings, seed=seed, callback=callback
        )
        # 3. Paste back: the kept pixels exact
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
            **settings.as_parameters(),
            "derived": True,
            "synthetic_region": True,
        }
        return paste(canvas, generated, weights, parameters)


def _canvas(
    radiograph: imaging.Radiograph, *, left: int, right: int, top: int, bottom: int, keep_box: tuple | None
) -> tuple[imaging.Radiograph, np.ndarray]:
    height, width = radiograph.pixels.shape
    if keep_box is not None:
        x0, y0, x1, y1 = (int(v) for v in keep_box)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InputError(f"keep_box {keep_box} must be (x0, y0, x1, y1) inside the {width}x{height} image.")
        region = np.ones((height, width), bool)
        region[y0:y1, x0:x1] = False
        return radiograph, region
    pads = {"left": left, "right": right, "top": top, "bottom": bottom}
    if any(not isinstance(v, int) or v < 0 or v > 4 * max(height, width) for v in pads.values()):
        raise InputError(f"outpaint sizes {pads}: integers from 0 to 4x the image side are accepted.")
    if not any(pads.values()):
        raise InputError("outpaint of zero pixels: give left/right/top/bottom > 0 or a keep_box.")
    canvas = radiograph.with_pixels(np.pad(radiograph.pixels, ((top, bottom), (left, right)), mode="edge"))
    region = np.ones(canvas.pixels.shape, bool)
    region[top : top + height, left : left + width] = False
    return canvas, region
