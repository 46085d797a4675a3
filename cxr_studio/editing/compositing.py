"""Crops around an edit and the lossless paste-back of generated pixels into the original."""

from __future__ import annotations

import numpy as np

from cxr_studio.editing.masks import bounding_box


def context_box(mask: np.ndarray, *, min_side: int, context: float = 0.5) -> tuple[int, int, int, int]:
    """A square ``(top, left, bottom, right)`` around the mask with ``context`` (fraction of its size) on
    every side, at least ``min_side`` px, inside the image where the image allows."""
    height, width = mask.shape
    top, left, bottom, right = bounding_box(mask)
    side = int(np.ceil(max(bottom - top, right - left) * (1 + 2 * context)))
    side = min(max(side, min_side), height, width)
    cy, cx = (top + bottom) // 2, (left + right) // 2
    top = int(np.clip(cy - side // 2, 0, height - side))
    left = int(np.clip(cx - side // 2, 0, width - side))
    return top, left, top + side, left + side


def match_seam(generated: np.ndarray, original: np.ndarray, mask: np.ndarray, *, ring_px: int = 6) -> np.ndarray:
    """Shift and scale ``generated`` (display ``[0, 1]``) so its mean and spread in a ring just outside
    the mask equal the original's there: no step in brightness at the seam."""
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask, iterations=ring_px) & ~mask
    if ring.sum() < 8:
        return generated
    g, o = generated[ring], original[ring]
    scale = (o.std() + 1e-4) / (g.std() + 1e-4)
    scale = float(np.clip(scale, 0.5, 2.0))  # a flat ring must not blow the generated texture up
    return np.clip((generated - g.mean()) * scale + o.mean(), 0.0, 1.0)


def classical_fill(display: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``display`` ``[0, 1]`` with the ``mask`` (True = fill) replaced by scikit-image's biharmonic
    inpainting from its surroundings: smooth, and free of whatever the mask covered."""
    from skimage.restoration import inpaint_biharmonic

    if not mask.any():
        return display
    if mask.all():
        return np.full_like(display, display.mean())
    return np.clip(inpaint_biharmonic(display.astype(np.float64), mask), 0.0, 1.0).astype(display.dtype)


def rim_blend(classical: np.ndarray, generated: np.ndarray, region: np.ndarray, *, depth_px: float) -> np.ndarray:
    """Inside ``region``: ``classical`` on its edge pixels, ramping linearly to ``generated`` at ``depth_px``
    further in (``generated`` deeper, and outside ``region``). All ``(H, W)`` display ``[0, 1]``.

    A biharmonic fill interpolates well from neighbours a few pixels away, and a latent model works on cells of
    several pixels: the thin parts of a mask (a line, a wire) keep the fill, the wide parts get the model's
    texture."""
    from scipy import ndimage

    if region.all():  # no known neighbour to interpolate from (the fill is a flat mean): the model's alone
        return generated
    depth = ndimage.distance_transform_edt(region)  # 1 on the region's edge pixels, 0 outside
    alpha = np.where(region, np.clip((depth - 1.0) / max(depth_px, 1e-6), 0.0, 1.0), 1.0)
    return (classical * (1.0 - alpha) + generated * alpha).astype(generated.dtype)


def paste_back(original: np.ndarray, generated: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``original * (1 - w) + generated * w`` in the original's dtype; exactly ``original`` where ``w == 0``.

    ``original`` and ``generated`` are stored values of the same dtype and shape (uint8, uint16, int16
    or float); ``weights`` in ``[0, 1]``.
    """
    blended = original.astype(np.float64) * (1.0 - weights) + generated.astype(np.float64) * weights
    if original.dtype.kind in "ui":
        info = np.iinfo(original.dtype)
        blended = np.clip(np.rint(blended), info.min, info.max)
    out = blended.astype(original.dtype)
    keep = weights <= 0
    out[keep] = original[keep]  # bit for bit, whatever rounding did elsewhere
    return out
