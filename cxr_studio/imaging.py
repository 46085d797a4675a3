"""All image reading, writing and conversion lives here; nothing else in CXR Studio rescales pixels.

Value conventions used across the project:

* ``display`` arrays: ``(H, W)`` float32 in ``[0, 1]``, white = dense (MONOCHROME2), PA view with the
  patient's right on the image's left.
* model tensors: ``(B, 1, H, W)`` float32 in ``[-1, 1]`` (``to_tensor`` / ``from_tensor``).
* stored pixels: the file's own values and dtype (uint8, uint16, int16 or float32), kept untouched in
  :class:`Radiograph` so edits can be written back losslessly with :meth:`Radiograph.to_pixels`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from cxr_studio.dicom.reading import read_dicom
from cxr_studio.errors import InputError
from cxr_studio.files import write_atomic
from cxr_studio.limits import ACCEPTED_IMAGES as ACCEPTED
from cxr_studio.limits import MAX_PIXELS, check_image_size

if TYPE_CHECKING:
    import pydicom
    import torch

PARAMETERS_KEY = "parameters"  # PNG text chunk holding the JSON needed to reproduce an image
SYNTHETIC_KEY = "Synthetic"  # PNG text chunk: "YES" on every generated image


@dataclass(frozen=True, eq=False)
class Radiograph:
    """A radiograph as read from disk: the stored pixels untouched, plus a display copy.

    Attributes:
        pixels: ``(H, W)`` stored values exactly as in the file (uint8, uint16, int16 or float32).
        display: ``(H, W)`` float32 in ``[0, 1]``; modality LUT, VOI LUT or window and MONOCHROME1
            inversion applied, so white is dense.
        bit_depth: significant bits per stored value (8, 16, DICOM BitsStored, or 32 for float).
        source_format: ``"png"``, ``"jpeg"``, ``"tiff"``, ``"dicom"``, ``"array"``, ...
        lut: display value for every stored value from ``lut_offset`` up (integer sources only);
            the mapping :meth:`to_pixels` inverts.
        lut_offset: the stored value that ``lut[0]`` belongs to.
        dicom: the DICOM header (without pixel data) for DICOM sources, else ``None``.
    """

    pixels: np.ndarray
    display: np.ndarray
    bit_depth: int
    source_format: str
    lut: np.ndarray | None = None
    lut_offset: int = 0
    dicom: pydicom.Dataset | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` as PIL counts it."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def with_pixels(self, pixels: np.ndarray) -> Radiograph:
        """The same reading chain applied to other stored values (an edited or enlarged canvas)."""
        pixels = np.asarray(pixels, dtype=self.pixels.dtype)
        if self.lut is None:
            lo, hi = float(self.pixels.min()), float(self.pixels.max())
            display = ((pixels - lo) / (hi - lo) if hi > lo else np.zeros_like(pixels)).astype(np.float32)
        else:
            display = self.lut[np.clip(pixels.astype(np.int64) - self.lut_offset, 0, len(self.lut) - 1)]
        return dataclasses.replace(self, pixels=pixels, display=np.clip(display, 0, 1).astype(np.float32))

    def to_pixels(self, display: np.ndarray) -> np.ndarray:
        """Map display values in ``[0, 1]`` back to stored values of this radiograph's dtype.

        Exact inverse of the reading chain wherever that chain is invertible (everywhere for PNG,
        JPEG and TIFF; inside the window for windowed DICOM), so pixels that were not edited come back
        bit for bit when the caller pastes only the edited region.
        """
        display = np.clip(np.asarray(display, dtype=np.float64), 0.0, 1.0)
        if self.lut is None:  # float source: linear between the stored minimum and maximum
            lo, hi = float(self.pixels.min()), float(self.pixels.max())
            return (lo + display * (hi - lo)).astype(self.pixels.dtype)
        order = np.argsort(self.lut, kind="stable")
        stored = np.interp(display, self.lut[order], order.astype(np.float64) + self.lut_offset)
        info = np.iinfo(self.pixels.dtype)
        return np.clip(np.rint(stored), info.min, info.max).astype(self.pixels.dtype)


# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------


def read_radiograph(source: Any, *, name: str = "image", deidentify: bool = True) -> Radiograph:
    """Read a radiograph from a path, bytes, a binary file object, a PIL image or a numpy array.

    DICOM is recognised by content (``DICM`` at byte 128) or a ``.dcm`` suffix; anything else goes
    through Pillow. Raises :class:`InputError` for anything that is not a single 2-D grayscale image.
    ``name`` is only used in error messages (never the uploaded file's own name: it may carry PHI).
    DICOM is read by :func:`cxr_studio.dicom.reading.read_dicom` (modality and VOI LUT, MONOCHROME1); its header
    is de-identified (PS3.15 Annex E basic profile) before it is kept in ``Radiograph.dicom``, unless
    ``deidentify=False``.
    """
    if isinstance(source, Radiograph):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, name=name)
    if isinstance(source, Image.Image):
        return _from_pil(source, name=name, source_format=(source.format or "pil").lower())
    data, suffix = _read_bytes(source, name=name)
    # Content decides, not the extension: a PNG named .dcm is a PNG; a .dcm without a preamble is DICOM
    raster = data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*"))
    if data[128:132] == b"DICM" or (suffix in {".dcm", ".dicom"} and not raster):
        parts = read_dicom(data, name=name, deidentify=deidentify)
        return Radiograph(
            pixels=parts.stored,
            display=parts.display,
            bit_depth=parts.bit_depth,
            source_format="dicom",
            lut=parts.lut,
            lut_offset=parts.lut_offset,
            dicom=parts.header,
        )
    return _read_raster(data, name=name)


def _read_bytes(source: Any, *, name: str) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, suffix = bytes(source), ""
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{name}: no such file. {ACCEPTED}.")
        data, suffix = path.read_bytes(), path.suffix.lower()
    elif hasattr(source, "read"):
        data, suffix = source.read(), ""
    else:
        raise InputError(f"{name}: cannot read an object of type {type(source).__name__}; {ACCEPTED}.")
    if len(data) == 0:
        raise InputError(f"{name}: the file is empty (0 bytes); {ACCEPTED}.")
    return data, suffix


def _read_raster(data: bytes, *, name: str) -> Radiograph:
    # Pillow warns between MAX_IMAGE_PIXELS and twice that and raises above; our own cap is explicit.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            check_image_size(image.size, name=name)
            if getattr(image, "n_frames", 1) > 1:
                raise InputError(
                    f"{name}: has {image.n_frames} frames or pages; a single frame is accepted. "
                    "Save the frame you want as its own file."
                )
            image.load()
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise InputError(f"{name}: too many pixels (decompression bomb?); at most {MAX_PIXELS} pixels.") from err
        except UnidentifiedImageError as err:
            raise InputError(f"{name}: not a readable image; {ACCEPTED}.") from err
        # Pillow's decoders raise all of these on corrupt input (its own fuzz harness accepts the same set)
        except (
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            TypeError,
            KeyError,
            IndexError,
            struct.error,
            ZeroDivisionError,
            OverflowError,
            MemoryError,
        ) as err:
            raise InputError(
                f"{name}: the image file is damaged or truncated ({type(err).__name__}: {err}); {ACCEPTED}."
            ) from err
    return _from_pil(image, name=name, source_format=(image.format or "image").lower())


def _from_pil(image: Image.Image, *, name: str, source_format: str) -> Radiograph:
    check_image_size(image.size, name=name)
    mode = image.mode
    if mode in {"P", "PA"}:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"1", "L"}:
        return _integer_radiograph(np.asarray(image.convert("L")), 8, source_format)
    if mode in {"I;16", "I;16B", "I;16L", "I;16N"}:
        return _integer_radiograph(np.asarray(image).astype(np.uint16), 16, source_format)
    if mode == "I":
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise InputError(f"{name}: 32-bit integer pixels outside 0..65535; {ACCEPTED}.")
        return _integer_radiograph(array.astype(np.uint16), 16, source_format)
    if mode == "F":
        return _from_array(np.asarray(image, dtype=np.float32), name=name, source_format=source_format)
    if mode in {"LA", "RGB", "RGBA"}:
        array = np.asarray(image.convert("RGBA" if "A" in mode else "RGB"))
        return _from_array(array, name=name, source_format=source_format)
    raise InputError(f"{name}: pixel mode {mode!r} is not supported; {ACCEPTED}.")


def _from_array(array: np.ndarray, *, name: str, source_format: str = "array") -> Radiograph:
    """Accept (H, W), (H, W, 1), grayscale (H, W, 3) and opaque grayscale (H, W, 4) arrays."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] in {2, 4}:  # grayscale+alpha or RGBA: only opaque images
        alpha = array[..., -1]
        full = np.iinfo(array.dtype).max if array.dtype.kind in "ui" else 1.0
        if not np.all(alpha == full):
            raise InputError(f"{name}: has transparent pixels; a radiograph must be opaque. {ACCEPTED}.")
        array = array[..., :-1]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] == 3:
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise InputError(f"{name}: is a colour image; radiographs are grayscale. {ACCEPTED}.")
        array = array[..., 0]
    if array.ndim != 2:
        raise InputError(f"{name}: array of shape {array.shape} is not a 2-D image; {ACCEPTED}.")
    check_image_size((array.shape[1], array.shape[0]), name=name)
    array = np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return _integer_radiograph(array.astype(np.uint8) * 255, 8, source_format)
    if array.dtype == np.uint8:
        return _integer_radiograph(array, 8, source_format)
    if array.dtype == np.uint16:
        return _integer_radiograph(array, 16, source_format)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise InputError(f"{name}: contains NaN or infinite values; pixel values must be finite numbers.")
        array = array.astype(np.float32)
        lo, hi = float(array.min()), float(array.max())
        if lo >= 0.0 and hi <= 1.0:  # already a [0, 1] image: keep its scale
            display = array.copy()
        else:
            wide = array.astype(np.float64)  # float32 extremes overflow in (x - lo) and give NaN
            display = (wide - lo) / (hi - lo) if hi > lo else np.zeros_like(wide)
        return Radiograph(pixels=array, display=display.astype(np.float32), bit_depth=32, source_format=source_format)
    raise InputError(f"{name}: pixel type {array.dtype} is not supported; use uint8, uint16 or float in [0, 1].")


def _integer_radiograph(pixels: np.ndarray, bit_depth: int, source_format: str) -> Radiograph:
    lut = np.arange(2**bit_depth, dtype=np.float32) / (2**bit_depth - 1)
    return Radiograph(pixels=pixels, display=lut[pixels], bit_depth=bit_depth, source_format=source_format, lut=lut)


# ----------------------------------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------------------------------


def to_float01(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image or integer/bool/float array -> float32 array in ``[0, 1]`` (shape kept)."""
    array = np.asarray(image)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind in "ui":
        return (array / float(np.iinfo(array.dtype).max)).astype(np.float32)
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def to_uint8(image01: np.ndarray) -> np.ndarray:
    """Float array in ``[0, 1]`` -> uint8, rounded to nearest."""
    return np.rint(np.clip(image01, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(image01: np.ndarray) -> np.ndarray:
    """Float array in ``[0, 1]`` -> uint16, rounded to nearest."""
    return np.rint(np.clip(image01, 0.0, 1.0) * 65535.0).astype(np.uint16)


def to_pil(image01: np.ndarray, *, bit_depth: int = 8) -> Image.Image:
    """``(H, W)`` float array in ``[0, 1]`` -> PIL image, mode ``L`` (8 bit) or ``I;16`` (16 bit)."""
    if bit_depth == 8:
        return Image.fromarray(to_uint8(image01), mode="L")
    if bit_depth == 16:
        return Image.fromarray(to_uint16(image01))
    raise InputError(f"bit_depth {bit_depth} is not supported; 8 or 16 accepted.")


def to_signed(image01: np.ndarray) -> np.ndarray:
    """``[0, 1]`` -> ``[-1, 1]``, the models' value range."""
    return np.asarray(image01, dtype=np.float32) * 2.0 - 1.0


def to_unsigned(image_signed: np.ndarray) -> np.ndarray:
    """``[-1, 1]`` -> ``[0, 1]``, clipped."""
    return np.clip((np.asarray(image_signed, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)


def to_tensor(image01: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """``(H, W)``, ``(B, H, W)`` or a list of ``(H, W)`` floats in ``[0, 1]`` -> ``(B, 1, H, W)`` in ``[-1, 1]``."""
    import torch

    array = np.stack(image01) if isinstance(image01, list) else np.asarray(image01)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise InputError(f"expected (H, W) or (B, H, W) images, got shape {array.shape}.")
    return torch.from_numpy(to_signed(array)).unsqueeze(1)


def from_tensor(images: torch.Tensor) -> np.ndarray:
    """``(B, 1, H, W)`` or ``(B, 3, H, W)`` tensor in ``[-1, 1]`` -> ``(B, H, W)`` float32 in ``[0, 1]``."""
    images = images.detach().float().cpu()
    if images.ndim != 4 or images.shape[1] not in {1, 3}:
        raise InputError(f"expected (B, 1|3, H, W) tensor, got shape {tuple(images.shape)}.")
    return to_unsigned(to_grayscale(images)[:, 0].numpy())


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ``(B, 1, H, W)`` by channel mean; 1-channel input is returned as is."""
    return images if images.shape[1] == 1 else images.mean(dim=1, keepdim=True)


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` -> ``(B, 3, H, W)`` by repetition (for RGB feature extractors)."""
    return images if images.shape[1] == 3 else images.repeat(1, 3, 1, 1)


def window(display: np.ndarray, *, level: float = 0.5, width: float = 1.0, invert: bool = False) -> np.ndarray:
    """Window/level a ``[0, 1]`` display image for viewing (level and width in display units); ``invert`` flips it."""
    width = max(float(width), 1e-3)
    out = np.clip((np.asarray(display, dtype=np.float32) - (level - width / 2)) / width, 0.0, 1.0)
    return 1.0 - out if invert else out


def resize_center_crop(image01: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize so the shortest edge is ``size`` (or fits ``(height, width)``), then centre-crop (Cheff).

    ``(H, W)`` float in ``[0, 1]`` -> ``(size, size)`` float32 in ``[0, 1]``; antialiased bicubic.
    """
    target_h, target_w = (size, size) if isinstance(size, int) else size
    height, width = image01.shape
    scale = max(target_h / height, target_w / width)
    new_h, new_w = max(target_h, round(height * scale)), max(target_w, round(width * scale))
    resized = resize(image01, (new_h, new_w))
    top, left = (new_h - target_h) // 2, (new_w - target_w) // 2
    return resized[top : top + target_h, left : left + target_w]


def resize(image01: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float in ``[0, 1]`` -> ``shape`` (height, width), antialiased bicubic, clipped to ``[0, 1]``."""
    if tuple(image01.shape) == tuple(shape):
        return np.asarray(image01, dtype=np.float32)
    pil = Image.fromarray(np.asarray(image01, dtype=np.float32), mode="F")
    out = pil.resize((shape[1], shape[0]), Image.Resampling.BICUBIC, reducing_gap=None)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def fit_height(image01: np.ndarray, height: int) -> np.ndarray:
    """Scale ``(H, W)`` ``[0, 1]`` to ``height`` rows, keeping the aspect ratio: side-by-side review shows
    real and synthetic images at the same size on screen whatever their pixel counts."""
    return resize(image01, (height, max(1, round(image01.shape[1] * height / image01.shape[0]))))


def to_batch(pixels01: Any, size: int, *, crop: bool = False) -> np.ndarray:
    """Display images (``(H, W)`` each, ``[0, 1]``) -> ``(N, 1, size, size)`` float32 in ``[-1, 1]``: resized,
    or with ``crop`` Cheff's shortest-edge resize and centre crop. The evaluation's one input format."""
    fit = resize_center_crop if crop else (lambda image, side: resize(image, (side, side)))
    return np.stack([fit(p, size) * 2 - 1 for p in pixels01])[:, None].astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


def save_png(
    path: str | os.PathLike[str] | BinaryIO,
    image: np.ndarray | Image.Image,
    *,
    bit_depth: int = 8,
    parameters: dict[str, Any] | None = None,
    synthetic: bool = False,
) -> None:
    """Write a grayscale PNG (8 or 16 bit) with a ``parameters`` JSON text chunk.

    ``image`` is a float array in ``[0, 1]``, a uint8/uint16 array (written as is; ``bit_depth`` then
    follows the dtype) or a PIL image. Synthetic images get ``Synthetic: YES`` so no generated image
    leaves the program unlabelled.
    """
    if isinstance(image, Image.Image):
        pil = image
    elif np.asarray(image).dtype in (np.uint8, np.uint16):
        pil = Image.fromarray(np.asarray(image))
    else:
        pil = to_pil(np.asarray(image, dtype=np.float32), bit_depth=bit_depth)
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text(PARAMETERS_KEY, json.dumps(parameters, sort_keys=True, default=str))
    if synthetic:
        info.add_text(SYNTHETIC_KEY, "YES")
    if hasattr(path, "write"):
        pil.save(path, format="PNG", pnginfo=info)
        return
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", pnginfo=info)
    write_atomic(path, buffer.getvalue())  # a kill mid-write never leaves a truncated PNG


def read_png_parameters(source: str | os.PathLike[str] | bytes | BinaryIO | Image.Image) -> dict[str, Any]:
    """The ``parameters`` JSON written by :func:`save_png` (empty dict when absent); adds ``synthetic``."""
    if isinstance(source, Image.Image):
        image = source
    else:
        data, _ = _read_bytes(source, name="PNG")
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as err:
            raise InputError("not a PNG file; a PNG written by CXR Studio is accepted.") from err
    text = getattr(image, "text", {}) or image.info
    try:
        parameters = json.loads(text[PARAMETERS_KEY]) if PARAMETERS_KEY in text else {}
    except json.JSONDecodeError as err:
        raise InputError(f"the PNG's '{PARAMETERS_KEY}' chunk is not valid JSON.") from err
    if SYNTHETIC_KEY in text:
        parameters.setdefault("synthetic", text[SYNTHETIC_KEY] == "YES")
    return parameters
