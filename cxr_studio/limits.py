"""What the library accepts, checked in one place, and the narrower ranges the app's controls offer.

The library raises :class:`~cxr_studio.errors.InputError` outside the accepted range; the app builds its sliders
from the ``ui_*`` ranges (never restating a number), so a value the app offers is always one the library takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxr_studio.errors import InputError

MIN_SIDE = 32  # smaller images carry no diagnostic content and break the models' downsampling
MAX_PIXELS = 8192 * 8192  # well above any detector (43 cm at 0.1 mm = 4300 px); beyond this is a decompression bomb
ACCEPTED_IMAGES = (
    "accepted: PNG, JPEG or TIFF (8 or 16 bit grayscale, or RGB with equal channels), "
    "single-frame MONOCHROME1/2 DICOM, or a 2-D numpy array"
)


def check_image_size(size: tuple[int, int], *, name: str) -> None:
    """An image's ``(width, height)`` within :data:`MIN_SIDE` and :data:`MAX_PIXELS`, checked before decoding."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise InputError(f"{name}: {width}x{height} is too large (decompression bomb?); at most {MAX_PIXELS} pixels.")
    if min(width, height) < MIN_SIDE:
        raise InputError(f"{name}: {width}x{height} is too small; both sides must be at least {MIN_SIDE} pixels.")


@dataclass(frozen=True)
class Limits:
    max_seed: int = 2**63 - 1
    max_images: int = 16  # per call
    max_steps: int = 1000  # sampling steps of either stage (the training schedule's length)
    max_guidance: float = 30.0
    max_adapter_weight: float = 4.0  # LoRA strength either way; past it an adapter only adds artefacts
    max_report_chars: int = 20_000  # far beyond any token limit: more is a pasted file, not a report
    ui_max_steps: int = 150  # beyond this a CPU user waits minutes for no visible change
    ui_max_guidance: float = 15.0  # above it every model here saturates
    ui_max_images: int = 8
    max_mask_px: int = 256  # growing or feathering an inpainting mask
    ui_max_mask_px: int = 64
    max_resample_jumps: int = 10  # RePaint resampling per step
    ui_max_resample_jumps: int = 5
    max_frames: int = 64  # interpolation frames
    ui_max_frames: int = 16


LIMITS = Limits()


def check_seed(seed: Any) -> int:
    """An integer seed from 0 to ``LIMITS.max_seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= LIMITS.max_seed:
        raise InputError(f"seed {seed!r}; an integer from 0 to {LIMITS.max_seed} is accepted.")
    return int(seed)


def random_seed_or(seed: Any) -> int:
    """The seed checked, or a fresh random one when ``None`` (recorded in the result's parameters)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 2) if seed is None else check_seed(seed)


def check_steps(name: str, value: Any) -> int:
    """An integer number of sampling steps from 1 to ``LIMITS.max_steps``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LIMITS.max_steps:
        raise InputError(f"{name} {value!r}; an integer from 1 to {LIMITS.max_steps} is accepted.")
    return value


def check_number(name: str, value: Any, low: float, high: float) -> float:
    """A finite number in ``[low, high]``, as float."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InputError(f"{name} {value!r}; a number from {low} to {high} is accepted.")
    return float(value)
