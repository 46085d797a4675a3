"""DICOM exports: every kind passes dicom3tools' validator (dciodvfy), reads back in pydicom without a warning,
and keeps its pixels, bit depth, photometric interpretation and study exactly."""

import json
import os
import shutil
import subprocess
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cxr_studio import read_radiograph
from cxr_studio.dicom import export
from cxr_studio.imaging import save_png

# dicom3tools' packaged dictionary predates Synthetic Data (0008,001C, added to PS3.6 by CP-2014 in 2022), so it
# calls the attribute unknown; the attribute is what the issue asks for, so that one line is allowed.
ALLOWED_ERRORS = (
    "Error - Attribute with an even group number is not a recognized standard attribute - (0x0008,0x001c)",
)
EDITED_BOX = (slice(100, 200), slice(120, 260))


def validator_errors(path: Path) -> list[str]:
    """dciodvfy's ``Error`` lines for ``path``, less the allowed ones. CI installs dicom3tools and sets
    CXR_REQUIRE_DCIODVFY, so there a missing validator fails instead of skipping."""
    if shutil.which("dciodvfy") is None:
        if os.environ.get("CXR_REQUIRE_DCIODVFY"):
            pytest.fail("dciodvfy (Debian package dicom3tools) is required here but not installed")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    run = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error") and not line.startswith(ALLOWED_ERRORS)]


def read_back(data: bytes, path: Path) -> pydicom.Dataset:
    """Write ``data`` to ``path`` and read it with every pydicom warning an error, pixels included."""
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = pydicom.dcmread(path)
        str(ds)  # parses every element
        ds.pixel_array  # noqa: B018 (decodes the pixels)
    return ds


def source_path(name: str) -> Path:
    data_store = pytest.importorskip("data_store")
    return Path(data_store.__file__).parent / "data" / name


def edited(name: str):
    """A real radiograph with a box of its display set to mid grey, pasted back in stored values as the editor does."""
    radiograph = read_radiograph(source_path(name))
    pixels = radiograph.pixels.copy()
    height, width = pixels[EDITED_BOX].shape
    pixels[EDITED_BOX] = radiograph.to_pixels(np.full((height, width), 0.5, np.float32))
    return radiograph, pixels


def test_synthetic_export_validates_and_says_what_it_is(tmp_path):
    image = np.random.default_rng(0).random((256, 200)).astype(np.float32)
    parameters = {
        "model": "demo@abc",
        "report": "Large left pleural effusion. " * 500,
        "seed": 3,
    }  # ~15,000 characters
    ds = read_back(export.synthetic_dicom(image, parameters), tmp_path / "synthetic.dcm")
    assert validator_errors(tmp_path / "synthetic.dcm") == []
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert (ds.SyntheticData, ds.ConversionType, ds.BurnedInAnnotation) == ("YES", "SYN", "YES")
    assert list(ds.PatientOrientation) == ["L", "F"] and "Laterality" not in ds and ds.BodyPartExamined == "CHEST"
    assert np.array_equal(ds.pixel_array, export.imaging.to_uint16(export.burn_in_label(image)))
    assert ds.BitsStored == 16 and ds.PhotometricInterpretation == "MONOCHROME2"
    assert len(ds.ImageComments) <= 10240 and ds.ImageComments.startswith('{"model": "demo@abc"')
    short = read_back(
        export.synthetic_dicom(image, {"seed": 3, "report": "Normal."}, bit_depth=8), tmp_path / "s8.dcm"
    )
    assert json.loads(short.ImageComments) == {"seed": 3, "report": "Normal."} and short.BitsStored == 8


@pytest.mark.parametrize(
    "name, sop_class, photometric, bits",
    [
        ("RG1_UNCR.dcm", "1.2.840.10008.5.1.4.1.1.1", "MONOCHROME1", 15),  # PA chest CR, MONOCHROME1
        ("RG1_J2KR.dcm", "1.2.840.10008.5.1.4.1.1.1", "MONOCHROME1", 15),  # the same, JPEG 2000 source
        ("RG3_UNCR.dcm", "1.2.840.10008.5.1.4.1.1.1", "MONOCHROME1", 10),  # CR, another bit depth
        ("MR2_UNCR.dcm", "1.2.840.10008.5.1.4.1.1.7", "MONOCHROME2", 16),  # not CR/DX: Secondary Capture
    ],
)
def test_derived_export_validates_and_keeps_the_source(tmp_path, name, sop_class, photometric, bits):
    radiograph, pixels = edited(name)
    data = export.derived_dicom(
        pixels, radiograph.bit_depth, {"edit": "inpaint", "report": "x" * 300}, source=radiograph.dicom
    )
    ds = read_back(data, tmp_path / "derived.dcm")
    assert validator_errors(tmp_path / "derived.dcm") == []
    assert ds.SOPClassUID == sop_class and ds.PhotometricInterpretation == photometric
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"] and ds.SyntheticData == "YES"
    assert ds.StudyInstanceUID == radiograph.dicom.StudyInstanceUID  # the pseudonymised study, kept
    assert (
        ds.SeriesInstanceUID != radiograph.dicom.SeriesInstanceUID
        and ds.SOPInstanceUID != radiograph.dicom.SOPInstanceUID
    )
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == radiograph.dicom.SOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    if sop_class != pydicom.uid.SecondaryCaptureImageStorage:
        assert ds.BitsStored == bits
    assert np.array_equal(ds.pixel_array, pixels)  # bit-exact round trip of the stored values


def test_monochrome1_edit_reads_back_as_it_was_drawn(tmp_path):
    radiograph, pixels = edited("RG1_UNCR.dcm")
    data = export.derived_dicom(pixels, radiograph.bit_depth, {"edit": "inpaint"}, source=radiograph.dicom)
    again = read_radiograph(data)
    assert np.abs(again.display[EDITED_BOX] - 0.5).max() < 0.01  # mid grey stays mid grey: not inverted twice
    outside = np.ones(pixels.shape, bool)
    outside[EDITED_BOX] = False
    assert np.array_equal(again.display[outside], radiograph.display[outside])


def test_derived_export_from_a_png_is_secondary_capture_in_a_new_study(tmp_path):
    pixels = (np.random.default_rng(1).random((64, 80)) * 4095).astype(np.uint16)
    ds = read_back(export.derived_dicom(pixels, 12, {"edit": "outpaint"}), tmp_path / "png.dcm")
    assert validator_errors(tmp_path / "png.dcm") == []
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and ds.BitsStored == 12
    assert np.array_equal(ds.pixel_array, pixels) and "SourceImageSequence" not in ds


def test_a_synthetic_set_is_one_study_of_one_series(tmp_path):
    images = [np.full((64, 64), value, np.float32) for value in (0.2, 0.5, 0.8)]
    (tmp_path / "pngs").mkdir()
    for index, image in enumerate(images):
        save_png(
            tmp_path / "pngs" / f"synthetic-seed{index}.png",
            image,
            bit_depth=16,
            parameters={"seed": index},
            synthetic=True,
        )
    assert export.main(["--pngs", str(tmp_path / "pngs"), "--out", str(tmp_path / "study")]) == 0
    files = sorted((tmp_path / "study").glob("*.dcm"))
    datasets = [read_back(path.read_bytes(), path) for path in files]
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1 and len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3 and [ds.InstanceNumber for ds in datasets] == [1, 2, 3]
    assert [json.loads(ds.ImageComments)["seed"] for ds in datasets] == [0, 1, 2]
    assert validator_errors(files[0]) == []
    archive = export.study_from_pngs(sorted((tmp_path / "pngs").glob("*.png")), tmp_path / "study.zip")
    assert sorted(zipfile.ZipFile(archive).namelist()) == [path.name for path in files]
    assert export.main(["--pngs", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2


def test_the_synthesis_command_writes_its_set_as_one_validated_study(studio, tmp_path):
    from PIL import Image

    from cxr_studio import synthesize

    studio.save_pretrained(tmp_path / "tiny")
    (tmp_path / "reports.txt").write_text("Left pneumothorax.\nCardiomegaly.\n")
    argv = ["--model", str(tmp_path / "tiny"), "--reports", str(tmp_path / "reports.txt"), "--per-report", "2"]
    assert synthesize.main([*argv, "--out", str(tmp_path / "set"), "--dicom-study", str(tmp_path / "study.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert archive.namelist() == [f"IM00000{i}.dcm" for i in range(1, 5)]
        archive.extractall(tmp_path / "study")
    pngs = sorted((tmp_path / "set" / "images").glob("*.png"))
    for index, (png, dcm) in enumerate(zip(pngs, sorted((tmp_path / "study").glob("*.dcm")))):
        ds = read_back(dcm.read_bytes(), dcm)
        assert ds.InstanceNumber == index + 1 and json.loads(ds.ImageComments)["seed"] == index
        # the pixels are the PNG's 16-bit values (burned-in SYNTHETIC label aside: the label's rows differ)
        same = ds.pixel_array == np.asarray(Image.open(png))
        assert same.mean() > 0.8 and same[ds.Rows // 2 :].all()
    assert validator_errors(min((tmp_path / "study").glob("*.dcm"))) == []
