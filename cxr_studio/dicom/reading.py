"""Reading a DICOM radiograph: the modality LUT, then the VOI LUT or window (or the image's own range), MONOCHROME1
and an INVERSE presentation LUT turned to white = dense, as one lookup table over every stored value (so an edit can
be written back into stored values losslessly); the header de-identified on read (:mod:`.deidentify`).

:func:`cxr_studio.imaging.read_radiograph` is the one entry point; it wraps what this returns in a ``Radiograph``.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxr_studio.dicom.deidentify import deidentify as remove_identifiers
from cxr_studio.errors import InputError
from cxr_studio.limits import ACCEPTED_IMAGES as ACCEPTED
from cxr_studio.limits import check_image_size


@dataclass(frozen=True, eq=False)
class DicomPixels:
    """One frame read: ``stored`` (the file's values), ``display`` ``(H, W)`` float32 in ``[0, 1]`` (white =
    dense), ``lut`` (display value of stored value ``v`` at ``v - lut_offset``), ``bit_depth`` (BitsStored) and the
    header without its pixel data."""

    stored: np.ndarray
    display: np.ndarray
    bit_depth: int
    lut: np.ndarray
    lut_offset: int
    header: Any


def read_dicom(data: bytes, *, name: str, deidentify: bool = True) -> DicomPixels:
    """A single-frame MONOCHROME1/2 DICOM file's bytes -> its stored pixels, their display values and the lookup
    table between them, and its header (de-identified unless ``deidentify=False``). Raises :class:`InputError` for
    anything else: any failure while parsing untrusted DICOM is the user's file, not our crash (a fuzz run found
    several exception types pydicom raises on corrupt headers, lazily, long after ``dcmread``)."""
    try:
        return _parse_dicom(data, name=name, deidentify=deidentify)
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{name}: not a readable DICOM file ({type(err).__name__}); {ACCEPTED}.") from err


def _parse_dicom(data: bytes, *, name: str, deidentify: bool) -> DicomPixels:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error, NotImplementedError) as err:
        raise InputError(f"{name}: not a readable DICOM file ({err}); {ACCEPTED}.") from err
    if "PixelData" not in ds:
        raise InputError(f"{name}: DICOM file has no pixel data (a report or structured document?); {ACCEPTED}.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(f"{name}: multi-frame DICOM ({frames} frames); a single-frame radiograph is accepted.")
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise InputError(
            f"{name}: DICOM photometric interpretation {photometric or 'missing'}; MONOCHROME1/2 accepted."
        )
    check_image_size((int(ds.get("Columns", 0)), int(ds.get("Rows", 0))), name=name)
    try:
        stored = ds.pixel_array
    except Exception as err:  # decoder plugins raise many types; all mean "cannot decode this file"
        raise InputError(f"{name}: cannot decode the DICOM pixel data: {_missing_decoder_hint(ds, err)}") from err
    if stored.ndim != 2:
        raise InputError(f"{name}: DICOM pixel data of shape {stored.shape}; one 2-D grayscale frame is accepted.")

    # One LUT over every possible stored value: the display chain as a function, so it can be inverted.
    bits_stored = int(ds.get("BitsStored", stored.dtype.itemsize * 8))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo = -(2 ** (bits_stored - 1)) if signed else 0
    hi = 2 ** (bits_stored - 1) - 1 if signed else 2**bits_stored - 1
    lo, hi = min(lo, int(stored.min())), max(hi, int(stored.max()))  # tolerate values outside BitsStored
    values = np.arange(lo, hi + 1, dtype=np.int64)[None, :]
    modality = np.asarray(apply_modality_lut(values, ds))  # stays integer without rescale: VOI LUTs index by it
    has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
    if has_voi:
        try:
            lut = np.asarray(apply_voi_lut(modality, ds, index=0, prefer_lut=True), dtype=np.float64)[0]
        except Exception as err:  # malformed window or LUT attributes
            raise InputError(f"{name}: invalid DICOM window or VOI LUT ({err}).") from err
        out_lo, out_hi = _voi_output_range(ds)
    else:  # no window in the file: window to the image's own range, as viewers do
        lut = modality[0].astype(np.float64)
        used = apply_modality_lut(stored, ds)
        out_lo, out_hi = float(np.min(used)), float(np.max(used))
    lut = np.clip((lut - out_lo) / max(out_hi - out_lo, 1e-12), 0.0, 1.0)
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if photometric == "MONOCHROME1" or inverse:  # MONOCHROME1 (or INVERSE) means low values are white
        lut = 1.0 - lut
    lut = lut.astype(np.float32)
    header = ds.copy()
    del header.PixelData
    if deidentify:
        try:
            remove_identifiers(header)
        except Exception as err:  # pydicom parses elements lazily: a corrupt one surfaces only here (found by fuzzing)
            raise InputError(
                f"{name}: the DICOM header has malformed elements, so it cannot be de-identified safely; "
                "re-export the file from its source."
            ) from err
    return DicomPixels(
        stored=stored, display=lut[stored.astype(np.int64) - lo], bit_depth=bits_stored, lut=lut, lut_offset=lo,
        header=header,
    )  # fmt: skip


def _voi_output_range(ds: Any) -> tuple[float, float]:
    """The full output range of the VOI LUT or window (PS3.3 C.11.2), which maps to display [0, 1]."""
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    # windowing: the range of the modality LUT's output, as pydicom's apply_windowing defines it
    bits = int(ds.BitsStored)
    if "ModalityLUTSequence" in ds:
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None and "ModalityLUTSequence" not in ds:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    return lo, hi


def _missing_decoder_hint(ds: Any, err: Exception) -> str:
    uid = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
    try:
        from pydicom.pixels.decoders.base import get_decoder

        decoder = get_decoder(uid)
        if not decoder.is_available:
            missing = "; ".join(f"{k}: {', '.join(v)}" for k, v in decoder.missing_dependencies.items())
            return f"transfer syntax {getattr(uid, 'name', uid)} needs a decoder plugin ({missing})."
    except Exception:  # noqa: BLE001, S110 - the hint is best effort; the original error is reported below
        pass
    return f"{err} (transfer syntax {getattr(uid, 'name', uid)})."
