"""Exports that always say what an image is: synthetic images as Secondary Capture with Synthetic Data = YES
and a burned-in SYNTHETIC label; edited real images as DERIVED with the edit recorded.

DICOM attributes follow PS3.3: Synthetic Data (0008,001C), Conversion Type (0008,0064) ``SYN``,
Image Type ``DERIVED\\SECONDARY``, Burned In Annotation (0028,0301), new UIDs for every export.
"""

from __future__ import annotations

import datetime
import io
import json
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxr_studio import imaging

LABEL = "SYNTHETIC"


def burn_in_label(image01: np.ndarray, text: str = LABEL) -> np.ndarray:
    """Write ``text`` into the top-right corner of a ``[0, 1]`` image (white on a black box): metadata can be
    stripped, pixels cannot."""
    height, width = image01.shape
    size = max(10, width // 24)
    pil = Image.fromarray(imaging.to_uint8(image01))
    pen = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
    x, y = width - (right - left) - size // 2, size // 3
    pen.rectangle((x - 3, y - 2, x + right - left + 3, y + bottom - top + 4), fill=0)
    pen.text((x - left, y - top), text, fill=255, font=font)
    out = image01.copy()
    box = np.asarray(pil, dtype=np.float32) / 255.0
    region = (slice(0, y + bottom - top + 6), slice(max(0, x - 4), width))
    out[region] = box[region]
    return out


def _base_dataset(pixels: np.ndarray, bits: int, description: str) -> Any:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    now = datetime.datetime.now()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.Modality = "OT"
    ds.ConversionType = "SYN"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description[:1024]
    ds.SecondaryCaptureDeviceManufacturer = "CXR Studio"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def synthetic_dicom(image01: np.ndarray, parameters: dict[str, Any], *, bit_depth: int = 16) -> bytes:
    """A generated image as DICOM Secondary Capture: Synthetic Data YES, Conversion Type SYN, new UIDs,
    an obviously synthetic patient, the recipe in Derivation Description, and SYNTHETIC burned in."""
    labelled = burn_in_label(np.asarray(image01, dtype=np.float32))
    pixels = imaging.to_uint16(labelled) if bit_depth == 16 else imaging.to_uint8(labelled)
    ds = _base_dataset(pixels, bit_depth, f"Synthesized by {parameters.get('model', 'CXR Studio')}; not an acquired image; "
                       f"{json.dumps(parameters, sort_keys=True, default=str)}")
    ds.SyntheticData = "YES"
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"
    ds.PatientName = "SYNTHETIC^CXR"
    ds.PatientID = "SYN-" + ds.SOPInstanceUID.split(".")[-1][:16]
    ds.SeriesDescription = "Synthetic chest radiograph (CXR Studio)"
    return _to_bytes(ds)


def derived_dicom(pixels: np.ndarray, bit_depth: int, parameters: dict[str, Any], *, source: Any | None = None) -> bytes:
    """An edited real radiograph as DICOM: DERIVED\\SECONDARY, the edit recorded, Synthetic Data YES (part of
    the content is generated). It is still the patient's image: patient attributes come from ``source``
    (a DICOM header) when given, and nothing here makes it anonymous."""
    pixels = np.asarray(pixels)
    if pixels.dtype.kind == "f":
        pixels = imaging.to_uint16(pixels)
    if pixels.dtype == np.int16:  # signed stored values: shift into the unsigned range we declare
        pixels = (pixels.astype(np.int32) + 32768).astype(np.uint16)
    ds = _base_dataset(pixels, bit_depth if pixels.dtype == np.uint16 or bit_depth <= 8 else 16,
                       f"Edited with CXR Studio ({parameters.get('edit', 'edit')}): {json.dumps(parameters, sort_keys=True, default=str)}")
    ds.SyntheticData = "YES"
    ds.BurnedInAnnotation = "NO"
    if source is not None:
        for keyword in ("PatientName", "PatientID", "PatientSex", "PatientBirthDate", "StudyInstanceUID", "StudyDate", "AccessionNumber"):
            if keyword in source:
                setattr(ds, keyword, source.data_element(keyword).value)
    ds.SeriesDescription = "Edited (inpainted/outpainted) - contains generated pixels"
    return _to_bytes(ds)


def _to_bytes(ds: Any) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
