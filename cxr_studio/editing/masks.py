"""THE mask convention of CXR Studio: white / 1 / True means *regenerate*; black / 0 means keep.

It is diffusers' convention. Every mask from the outside (PIL, numpy of any dtype, the app's brush) is
converted once, here, by :func:`to_mask`; nothing else in the project interprets mask polarity.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from cxr_studio.errors import InputError


def to_mask(mask: Image.Image | np.ndarray, shape: tuple[int, int], *, name: str = "mask") -> np.ndarray:
    """Any mask -> ``(H, W)`` bool, True = regenerate. Values are thresholded at half their range.

    ``shape`` is the image's ``(height, width)``; a mask of another size is an error (resizing would move
    the boundary the user painted).
    """
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L") if mask.mode not in ("1", "L", "I;16", "F") else mask)
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., 3] if array.shape[2] == 4 else array[..., 0]  # RGBA brush layers: the alpha is the paint
    if array.ndim != 2:
        raise InputError(f"{name} of shape {array.shape} is not a 2-D mask; white (1) = regenerate, black (0) = keep.")
    if array.shape != tuple(shape):
        raise InputError(
            f"{name} is {array.shape[1]}x{array.shape[0]} but the image is {shape[1]}x{shape[0]}; "
            "masks must match the image size."
        )
    if array.dtype == np.bool_:
        return array.copy()
    if array.dtype.kind in "ui":
        return array > np.iinfo(array.dtype).max / 2
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise InputError(f"{name} contains NaN or infinite values.")
        return array > 0.5
    raise InputError(f"{name} has unsupported type {array.dtype}.")


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate the regenerate region by ``pixels`` (a disk), so device edges and halos are covered."""
    if pixels <= 0:
        return mask.copy()
    distance = ndimage.distance_transform_edt(~mask)
    return distance <= pixels


def feather(mask: np.ndarray, pixels: int, *, inward: bool = False) -> np.ndarray:
    """Blend weights in ``[0, 1]``: 1 inside ``mask``, a linear ramp over ``pixels`` at its edge, 0 beyond.

    Outward (default) the ramp lies outside the mask; ``inward=True`` puts it inside, so nothing outside
    the mask changes at all (outpainting keeps the original pixels exact). Weights are exactly 0 wherever
    the output must equal the input.
    """
    if pixels <= 0:
        return mask.astype(np.float32)
    if inward:
        return np.clip(ndimage.distance_transform_edt(mask) / (pixels + 1), 0.0, 1.0).astype(np.float32)
    outside = ndimage.distance_transform_edt(~mask)
    return np.clip(1.0 - outside / (pixels + 1), 0.0, 1.0).astype(np.float32)


def to_latent_mask(mask: np.ndarray, latent_shape: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` pixel mask -> ``(1, 1, h, w)`` float latent mask: a latent cell is regenerated if any of its
    pixels is."""
    tensor = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    return F.adaptive_max_pool2d(tensor, latent_shape)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the True pixels (bottom/right exclusive)."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1
