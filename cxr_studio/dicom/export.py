"""DICOM exports that a PACS and a validator accept, built with highdicom, and that always say what an image is.

Three kinds, every one checked with dicom3tools' ``dciodvfy`` in the tests:

- **synthetic**: a generated image as Secondary Capture (highdicom's :class:`~highdicom.sc.SCImage`) with
  Synthetic Data = YES, Conversion Type ``SYN``, a burned-in SYNTHETIC label and an obviously synthetic patient;
  :func:`synthetic_study` writes a whole set as one study (one series, one instance per image).
- **derived**: an edited real radiograph. From a CR or DX source (the usual chest film) the export keeps the
  source's SOP class, study, patient module, bit depth and photometric interpretation (MONOCHROME1 stays
  MONOCHROME1: the edit pasted back in stored values, so inverted consistently), becomes Image Type
  ``DERIVED\\SECONDARY`` in a new series, and references its source in Source Image Sequence. Any other source
  becomes Secondary Capture derived from it (:meth:`~highdicom.sc.SCImage.from_ref_dataset`), a non-DICOM source
  Secondary Capture in a new study. The source header is the de-identified one that :func:`read_radiograph` keeps,
  so the study and the referenced instance are the pseudonymised ones.

Orientation: a PA chest is shown with the patient's right on the image's left, so rows run to the patient's left
and columns to the feet: Patient Orientation ``L\\F``. Generation parameters are kept as JSON in Image Comments
(LT, 10,240 characters); every text value is cut to its VR's length limit (PS3.5 table 6.2-1), never longer.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import io
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxr_studio import imaging
from cxr_studio.errors import InputError
from cxr_studio.files import replacing, write_atomic

LABEL = "SYNTHETIC"
MANUFACTURER = "CXR Studio"
PA_ORIENTATION = ("L", "F")  # rows run to the patient's left, columns to the feet: PA, patient's right on the left
SYNTHETIC_PATIENT = "SYNTHETIC^CXR"
SYNTHETIC_SERIES = "Synthetic chest radiographs (CXR Studio)"
DERIVED_SERIES = "Edited: contains generated pixels (CXR Studio)"
DERIVED_SERIES_OFFSET = 1000  # the edit's series number: the source's plus this, so the two sort together
# sources whose SOP class an edit keeps (the edited pixels still fit the class): CR, and DX for presentation
KEEP_SOP_CLASS = frozenset({"1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"})
UNPAIRED = frozenset(
    {"CHEST", "ABDOMEN", "PELVIS", "HEAD", "SKULL", "NECK", "HEART", "SPINE", "CSPINE", "TSPINE", "LSPINE"}
)
# PS3.5 table 6.2-1: the longest value of each text VR we write.
VR_LIMITS = {
    "AE": 16,
    "CS": 16,
    "DS": 16,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "PN": 64,
    "SH": 16,
    "ST": 1024,
    "UT": 2**32 - 2,
}
# Type 2 attributes of the Patient, General Study, General Series, General Equipment and General Image modules
# present, possibly empty, in every export. (Laterality, 2C, stays absent: the chest is an unpaired body part.)
TYPE_2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "Laterality",
    "Manufacturer",
)


def burn_in_label(image01: np.ndarray, text: str = LABEL) -> np.ndarray:
    """Write ``text`` into the top-right corner of a ``[0, 1]`` image (white on a black box): metadata can be
    stripped, pixels cannot."""
    _height, width = image01.shape
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


def fit(value: str, vr: str) -> str:
    """``value`` cut to the length that ``vr`` allows (an ellipsis marks a cut)."""
    limit = VR_LIMITS[vr]
    return value if len(value) <= limit else value[: limit - 3] + "..." if vr in ("LT", "ST", "UT") else value[:limit]


def synthetic_dicom(
    image01: np.ndarray,
    parameters: dict[str, Any],
    *,
    bit_depth: int = 16,
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_number: int = 1,
) -> bytes:
    """A generated image as a DICOM Secondary Capture file (bytes).

    Args:
        image01: ``(H, W)`` float in ``[0, 1]``, white = dense, PA with the patient's right on the left.
        parameters: the generation parameters (as saved in the PNG), kept as JSON in Image Comments.
        bit_depth: 8 or 16 stored bits.
        study_uid, series_uid: put the image into an existing study and series (:func:`synthetic_study`);
            new ones when omitted.
        instance_number: the image's number in its series.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    if bit_depth not in (8, 16):
        raise InputError(f"DICOM bit depth {bit_depth}; 8 or 16 accepted.")
    labelled = burn_in_label(np.asarray(image01, dtype=np.float32))
    pixels = imaging.to_uint16(labelled) if bit_depth == 16 else imaging.to_uint8(labelled)
    now = datetime.datetime.now()
    sop_uid = generate_uid()
    ds = hd.sc.SCImage(
        pixel_array=pixels,
        photometric_interpretation="MONOCHROME2",
        bits_allocated=bit_depth,
        coordinate_system="PATIENT",
        study_instance_uid=study_uid or generate_uid(),
        series_instance_uid=series_uid or generate_uid(),
        series_number=1,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_id="SYN-" + sop_uid.split(".")[-1][:12]
        if study_uid is None
        else "SYN-" + study_uid.split(".")[-1][:12],
        patient_name=SYNTHETIC_PATIENT,
        study_id="SYN",
        study_date=now.date(),
        study_time=now.time().replace(microsecond=0),
        patient_orientation=PA_ORIENTATION,
    )
    ds.ConversionType = "SYN"  # synthetic image (highdicom's default is DI, digital interface)
    ds.SyntheticData = "YES"
    ds.BurnedInAnnotation = "YES"  # the SYNTHETIC label
    ds.RecognizableVisualFeatures = "NO"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesDescription = SYNTHETIC_SERIES
    ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    model = str(parameters.get("model", MANUFACTURER))
    ds.DerivationDescription = fit(f"Synthesized by {model}; not an acquired image", "ST")
    ds.ImageComments = fit(json.dumps(parameters, sort_keys=True, default=str), "LT")
    _complete_type_2(ds)
    return _to_bytes(ds)


def synthetic_study(
    images01: Iterable[np.ndarray], parameters: Iterable[dict[str, Any]], out_dir: str | Path, *, bit_depth: int = 16
) -> list[Path]:
    """A synthetic set as one DICOM study: one series, instance ``i + 1`` for image ``i``, written atomically as
    ``out_dir/IM000001.dcm`` ...; returns the paths. ``images01`` and ``parameters`` as in :func:`synthetic_dicom`,
    read one pair at a time (a whole synthetic dataset never sits in memory)."""
    from pydicom.uid import generate_uid

    study_uid, series_uid = generate_uid(), generate_uid()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for index, (image01, params) in enumerate(zip(images01, parameters, strict=True)):
            path = out_dir / f"IM{index + 1:06d}.dcm"
            data = synthetic_dicom(
                image01,
                params,
                bit_depth=bit_depth,
                study_uid=study_uid,
                series_uid=series_uid,
                instance_number=index + 1,
            )
            write_atomic(path, data)
            paths.append(path)
    except ValueError as err:
        if "zip()" not in str(err):
            raise
        raise InputError("the images and parameter sets differ in number; one parameter set per image.") from None
    if not paths:
        raise InputError("no images to export; at least one is needed.")
    return paths


def study_from_pngs(pngs: Sequence[str | Path], out: str | Path, *, bit_depth: int = 16) -> Path:
    """The studio's synthetic PNGs (parameters inside) as one DICOM study: a folder of ``IM000001.dcm`` ...,
    or, when ``out`` ends in ``.zip``, one zip of those files (built beside it, then renamed into place). One
    image is in memory at a time, so a whole synthetic dataset exports."""
    import tempfile
    import zipfile

    if not pngs:
        raise InputError("no PNG files; the studio's synthetic PNGs are accepted.")
    images = (imaging.read_radiograph(path).display for path in pngs)
    parameters = (imaging.read_png_parameters(path) for path in pngs)
    out = Path(out)
    if out.suffix != ".zip":
        synthetic_study(images, parameters, out, bit_depth=bit_depth)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # contexts close in reverse: the archive is complete before replacing renames it into place
    with (
        replacing(out) as partial,
        tempfile.TemporaryDirectory(dir=out.parent) as folder,
        zipfile.ZipFile(partial, "w") as archive,
    ):
        for path in synthetic_study(images, parameters, folder, bit_depth=bit_depth):
            archive.write(path, path.name)
    return out


def derived_dicom(
    pixels: np.ndarray, bit_depth: int, parameters: dict[str, Any], *, source: Any | None = None
) -> bytes:
    """An edited real radiograph as DICOM (bytes): DERIVED\\SECONDARY, Synthetic Data YES (part of the content is
    generated), the edit's parameters in Image Comments; see the module docstring for which SOP class.

    Args:
        pixels: ``(H, W)`` stored values as the edit returns them (the source's dtype and value space; float
            ``[0, 1]`` is stored as 16 bits).
        bit_depth: significant bits of ``pixels`` (the source's Bits Stored).
        parameters: the edit's parameters.
        source: the source's (de-identified) DICOM header, or ``None`` for a PNG/TIFF/array source.

    It is still the patient's image: nothing here makes it anonymous beyond what the source header already is.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise InputError(f"pixels of shape {pixels.shape}; a single grey (H, W) image is accepted.")
    if pixels.dtype.kind == "f":
        pixels, bit_depth = imaging.to_uint16(pixels), 16
    if source is not None and str(source.get("SOPClassUID", "")) in KEEP_SOP_CLASS and pixels.dtype.itemsize <= 2:
        ds = _derived_same_class(pixels, bit_depth, source)
    else:
        ds = _derived_secondary_capture(pixels, bit_depth, source)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SyntheticData = "YES"
    ds.BurnedInAnnotation = "NO"
    ds.SeriesDescription = DERIVED_SERIES
    edit = str(parameters.get("edit", "edit"))
    ds.DerivationDescription = fit(
        f"Edited with CXR Studio ({edit}): the masked region is generated, the rest is the "
        "source's stored values unchanged",
        "ST",
    )
    ds.ImageComments = fit(json.dumps(parameters, sort_keys=True, default=str), "LT")
    _complete_type_2(ds)
    return _to_bytes(ds)


def _derived_same_class(pixels: np.ndarray, bit_depth: int, source: Any) -> Any:
    """A copy of the source's header with new instance and series, the edited pixels, and a reference back."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = copy.deepcopy(source)
    for keyword in ("PixelData", "LargestImagePixelValue", "SmallestImagePixelValue", "IconImageSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):  # a zero spacing (seen in the wild) is invalid: drop it
        if keyword in ds and not all(float(value) > 0 for value in ds.data_element(keyword).value):
            delattr(ds, keyword)
    ds.SourceImageSequence = [_reference(source)]
    ds.SOPInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SeriesNumber = int(source.get("SeriesNumber") or 0) + DERIVED_SERIES_OFFSET
    ds.InstanceNumber = 1
    now = datetime.datetime.now()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if "PatientOrientation" not in ds or not ds.PatientOrientation:
        ds.PatientOrientation = list(PA_ORIENTATION) if str(ds.get("ViewPosition", "")).upper() == "PA" else ""
    if "BodyPartExamined" not in ds:
        ds.BodyPartExamined = ""
    if "ViewPosition" not in ds:
        ds.ViewPosition = ""
    _set_pixels(ds, pixels, bit_depth, photometric=str(source.PhotometricInterpretation))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian  # decoded (e.g. from JPEG 2000) and stored uncompressed
    ds.file_meta = meta
    return ds


def _derived_secondary_capture(pixels: np.ndarray, bit_depth: int, source: Any | None) -> Any:
    """Secondary Capture of the edited pixels, in the source's study when there is one, else in a new study."""
    import highdicom as hd
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if pixels.dtype == np.int16:  # signed stored values: shift into the unsigned range Secondary Capture declares
        pixels, bit_depth = (pixels.astype(np.int32) + 32768).astype(np.uint16), 16
    if pixels.dtype not in (np.uint8, np.uint16):
        raise InputError(f"pixels of type {pixels.dtype}; uint8, uint16, int16 or float in [0, 1] accepted.")
    photometric = str(source.get("PhotometricInterpretation", "MONOCHROME2")) if source is not None else "MONOCHROME2"
    common = {
        "pixel_array": pixels,
        "photometric_interpretation": photometric,
        "bits_allocated": pixels.dtype.itemsize * 8,
        "coordinate_system": "PATIENT",
        "series_instance_uid": generate_uid(),
        "series_number": DERIVED_SERIES_OFFSET,
        "sop_instance_uid": generate_uid(),
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
        "patient_orientation": PA_ORIENTATION,
        "transfer_syntax_uid": ExplicitVRLittleEndian,  # from_ref_dataset's default is implicit VR
    }
    if source is not None and "StudyInstanceUID" in source:
        ds = hd.sc.SCImage.from_ref_dataset(source, **common)
        ds.SourceImageSequence = [_reference(source)]
    else:
        ds = hd.sc.SCImage(study_instance_uid=generate_uid(), **common)
    ds.BitsStored, ds.HighBit = bit_depth, bit_depth - 1  # the source's depth, not the container's
    return ds


def _reference(source: Any) -> Any:
    """A Source Image Sequence item naming the (pseudonymised) source instance."""
    import pydicom

    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def _set_pixels(ds: Any, pixels: np.ndarray, bit_depth: int, *, photometric: str) -> None:
    """Uncompressed pixel data and the attributes that describe it."""
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = min(bit_depth, ds.BitsAllocated)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"  # explicit VR files need it resolved


def _complete_type_2(ds: Any) -> None:
    """Every Type 2 attribute present (empty where unknown), as the IODs require. Laterality (2C) is absent for an
    unpaired body part such as the chest, empty only where the body part is unknown."""
    for keyword in TYPE_2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    body_part = str(ds.get("BodyPartExamined", "")).upper()
    if body_part in UNPAIRED and "Laterality" in ds and not ds.Laterality:
        del ds.Laterality
    elif not body_part and "Laterality" not in ds:
        ds.Laterality = ""  # body part unknown: whether it is paired is unknown too


def _to_bytes(ds: Any) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_studio.dicom.export",
        description="Write a folder of synthetic PNGs (with their parameters) as one DICOM study.",
    )
    parser.add_argument("--pngs", type=Path, required=True, help="folder of synthetic PNGs written by the studio")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the study's files (IM000001.dcm, ...) or a .zip"
    )
    parser.add_argument("--bit-depth", type=int, default=16, choices=(8, 16), help="stored bits per pixel")
    args = parser.parse_args(argv)
    try:
        pngs = sorted(args.pngs.glob("*.png"))
        if not pngs:
            raise InputError(f"{args.pngs}: no PNG files; a folder of the studio's synthetic PNGs is accepted.")
        images = [imaging.read_radiograph(path).display for path in pngs]
        paths = synthetic_study(
            images, [imaging.read_png_parameters(path) for path in pngs], args.out, bit_depth=args.bit_depth
        )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote one study of {len(paths)} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
