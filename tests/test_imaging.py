"""Radiograph I/O: real DICOM files, 8/16-bit rasters, conversions, PNG metadata and bad input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from cxr_studio import InputError, imaging, read_png_parameters, read_radiograph, save_png


@pytest.fixture(scope="module")
def dicom_dir() -> Path:
    """pydicom-data's real DICOM files; skips only the tests that need them when it is missing."""
    data_store = pytest.importorskip(
        "data_store", reason="pydicom-data (requirements-test.txt) ships the real DICOM files"
    )
    return Path(data_store.__file__).parent / "data"


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def gradient(height: int = 67, width: int = 53, dtype=np.uint16) -> np.ndarray:
    top = np.iinfo(dtype).max
    values = np.linspace(0, top, height * width).reshape(height, width)
    return np.rint(values).astype(dtype)


# --- real DICOM radiographs ---------------------------------------------------------------------------


def test_chest_cr_uncompressed_and_jpeg2000_lossless_decode_identically(dicom_dir):
    plain = read_radiograph(dicom_dir / "RG1_UNCR.dcm")
    j2k = read_radiograph(dicom_dir / "RG1_J2KR.dcm")
    assert plain.pixels.shape == (1955, 1841)
    assert plain.bit_depth == 15 and plain.pixels.dtype == np.uint16
    assert np.array_equal(plain.pixels, j2k.pixels)
    assert np.array_equal(plain.display, j2k.display)


def test_monochrome1_is_inverted_so_dense_is_white(dicom_dir):
    cr = read_radiograph(dicom_dir / "RG1_UNCR.dcm")
    assert cr.dicom.PhotometricInterpretation == "MONOCHROME1"
    assert np.all(np.diff(cr.lut) <= 0), "MONOCHROME1: higher stored values must display darker"
    assert cr.display[cr.pixels == cr.pixels.max()].max() < cr.display[cr.pixels == cr.pixels.min()].min()
    mono2 = read_radiograph(dicom_dir / "MR2_UNCR.dcm")
    assert np.all(np.diff(mono2.lut) >= 0)


def test_dicom_display_is_the_window_of_the_file(dicom_dir):
    cr = read_radiograph(dicom_dir / "RG3_UNCR.dcm")
    ds = pydicom.dcmread(dicom_dir / "RG3_UNCR.dcm")
    centre, width = float(np.atleast_1d(ds.WindowCenter)[0]), float(np.atleast_1d(ds.WindowWidth)[0])
    stored = cr.pixels.astype(np.float64)
    inside = np.abs(stored - centre) < width / 2 - 2
    # DICOM linear window (PS3.3 C.11.2.1.2), then MONOCHROME1 inversion
    expected = 1.0 - np.clip((stored - (centre - 0.5)) / (width - 1) + 0.5, 0, 1)
    assert np.allclose(cr.display[inside], expected[inside], atol=2e-3)
    assert 0.0 <= cr.display.min() and cr.display.max() <= 1.0


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "JPEG-LL.dcm", "vlut_04.dcm", "mlut_18.dcm", "MR2_J2KR.dcm"])
def test_compressed_and_lut_dicoms_read(name, dicom_dir):
    image = read_radiograph(dicom_dir / name)
    assert image.display.dtype == np.float32 and image.display.shape == image.pixels.shape
    assert 0.0 <= image.display.min() < image.display.max() <= 1.0


def test_signed_dicom_keeps_signed_pixels(dicom_dir):
    image = read_radiograph(dicom_dir / "mlut_18.dcm")
    assert image.pixels.dtype.kind == "i"
    assert image.dicom.PixelRepresentation == 1


def test_dicom_pixels_round_trip_through_display_inside_the_window(dicom_dir):
    cr = read_radiograph(dicom_dir / "RG1_UNCR.dcm")
    back = cr.to_pixels(cr.display)
    assert back.dtype == cr.pixels.dtype
    assert np.array_equal(back, cr.pixels)


@pytest.mark.parametrize(
    "name, message",
    [
        ("emri_small.dcm", "multi-frame"),
        ("SC_rgb.dcm", "photometric"),
        ("US1_UNCR.dcm", "photometric"),
        ("OT-PAL-8-face.dcm", "not a readable DICOM"),
        ("emri_small_jpeg_2k_lossless_too_short.dcm", "no pixel data"),
    ],
)
def test_unsupported_dicoms_raise_input_error(name, message, dicom_dir):
    with pytest.raises(InputError, match=message):
        read_radiograph(dicom_dir / name)


def test_dicom_without_pixel_data_and_truncated_dicom(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / "RG3_UNCR.dcm")
    del ds.PixelData
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(InputError, match="no pixel data"):
        read_radiograph(buffer.getvalue())
    data = (dicom_dir / "RG3_UNCR.dcm").read_bytes()
    with pytest.raises(InputError):
        read_radiograph(data[: len(data) // 2])


# --- rasters ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, bits", [(np.uint8, 8), (np.uint16, 16)])
def test_png_keeps_pixels_and_bit_depth(dtype, bits):
    original = gradient(dtype=dtype)
    image = read_radiograph(png_bytes(original))
    assert image.bit_depth == bits and image.pixels.dtype == dtype
    assert np.array_equal(image.pixels, original)
    assert image.display.min() == 0.0 and image.display.max() == 1.0
    assert np.array_equal(image.to_pixels(image.display), original)


def test_tiff_16_bit_and_jpeg_8_bit(tmp_path):
    original = gradient()
    Image.fromarray(original).save(tmp_path / "x.tif")
    tiff = read_radiograph(tmp_path / "x.tif")
    assert tiff.bit_depth == 16 and np.array_equal(tiff.pixels, original)
    Image.fromarray((original >> 8).astype(np.uint8)).save(tmp_path / "x.jpg", quality=95)
    jpeg = read_radiograph(tmp_path / "x.jpg")
    assert jpeg.bit_depth == 8 and jpeg.source_format == "jpeg"
    assert np.abs(jpeg.pixels.astype(int) - (original >> 8)).mean() < 2


def test_grayscale_stored_as_rgb_is_accepted_but_colour_is_not():
    gray = gradient(dtype=np.uint8)
    image = read_radiograph(png_bytes(np.stack([gray] * 3, axis=-1)))
    assert np.array_equal(image.pixels, gray)
    colour = np.stack([gray, gray, 255 - gray], axis=-1)
    with pytest.raises(InputError, match="colour"):
        read_radiograph(png_bytes(colour))


def test_palette_and_alpha():
    gray = gradient(dtype=np.uint8)
    palette = Image.fromarray(gray).convert("P")
    assert np.array_equal(read_radiograph(palette).pixels, np.asarray(palette.convert("L")))
    rgba = np.stack([gray, gray, gray, np.full_like(gray, 255)], axis=-1)
    assert np.array_equal(read_radiograph(png_bytes(rgba)).pixels, gray)
    rgba[0, 0, 3] = 10
    with pytest.raises(InputError, match="transparent"):
        read_radiograph(png_bytes(rgba))


def make_bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header that claims a huge size (the pixel data is never needed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is a report, not an image" * 10, "not a readable image"),
        (
            png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))[:2000],
            "damaged or truncated",
        ),
        (png_bytes(np.zeros((1, 1), np.uint8)), "too small"),
        (make_bomb_png(100_000, 100_000), "decompression bomb"),
    ],
    ids=["empty", "not-an-image", "truncated", "1x1", "bomb"],
)
def test_bad_raster_files(data, message):
    with pytest.raises(InputError, match=message):
        read_radiograph(data)


def test_multi_page_tiff_is_refused(tmp_path):
    pages = [Image.fromarray(gradient(dtype=np.uint8)) for _ in range(2)]
    pages[0].save(tmp_path / "two.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(InputError, match="frames"):
        read_radiograph(tmp_path / "two.tif")


def test_float_tiff_with_nan_is_refused(tmp_path):
    values = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    values[3, 3] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="NaN"):
        read_radiograph(tmp_path / "nan.tif")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((0, 10), np.uint8), "too small"),
        (np.zeros((4, 64, 64), np.uint8), "not a 2-D image"),
        (np.full((64, 64), np.inf, np.float32), "NaN or infinite"),
        (np.zeros((64, 64), np.complex64), "not supported"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(InputError, match=message):
        read_radiograph(array)


def test_missing_file_names_no_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_radiograph(tmp_path / "missing.png", name="upload")


# --- conversions --------------------------------------------------------------------------------------


def test_tensor_round_trip_and_ranges():
    images = np.random.default_rng(0).random((3, 40, 24)).astype(np.float32)
    tensor = imaging.to_tensor(images)
    assert tensor.shape == (3, 1, 40, 24) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert np.allclose(imaging.from_tensor(tensor), images, atol=1e-6)
    rgb = imaging.to_rgb(tensor)
    assert rgb.shape == (3, 3, 40, 24)
    assert torch.allclose(imaging.to_grayscale(rgb), tensor, atol=1e-6)
    assert imaging.to_tensor(images[0]).shape == (1, 1, 40, 24)


def test_uint_conversions_are_exact_inverses():
    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(imaging.to_uint8(imaging.to_float01(values)), values)
    values16 = np.arange(0, 65536, 7, dtype=np.uint16)
    assert np.array_equal(imaging.to_uint16(imaging.to_float01(values16)), values16)
    assert np.allclose(imaging.to_unsigned(imaging.to_signed(np.array([0.0, 0.25, 1.0]))), [0.0, 0.25, 1.0])


def test_resize_shortest_edge_then_centre_crop():
    image = np.zeros((300, 200), np.float32)
    image[:, 100:] = 1.0  # right half white
    out = imaging.resize_center_crop(image, 64)
    assert out.shape == (64, 64)
    assert out[:, :28].max() < 0.05 and out[:, 36:].min() > 0.95  # the edge stays in the middle
    tall = np.zeros((400, 100), np.float32)
    tall[:100] = 1.0  # the top quarter is cropped away
    assert imaging.resize_center_crop(tall, 50).max() < 0.05


# --- PNG writing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_parameters_round_trip(tmp_path, bit_depth):
    image = np.random.default_rng(1).random((37, 41)).astype(np.float32)
    parameters = {"report": "Large right pleural effusion.", "seed": 7, "steps": 20, "model": "demo@abc123"}
    save_png(tmp_path / "x.png", image, bit_depth=bit_depth, parameters=parameters, synthetic=True)
    loaded = read_radiograph(tmp_path / "x.png")
    assert loaded.bit_depth == bit_depth
    step = 1 / (2**bit_depth - 1)
    assert np.abs(loaded.display - image).max() <= step / 2 + 1e-6
    assert read_png_parameters(tmp_path / "x.png") == {**parameters, "synthetic": True}


def test_png_without_parameters_reads_empty(tmp_path):
    save_png(tmp_path / "y.png", gradient(dtype=np.uint8))
    assert read_png_parameters(tmp_path / "y.png") == {}
