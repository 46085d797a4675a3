"""Inpainting, outpainting and interpolation on the tiny preset: lossless paste-back above all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_studio import InputError
from cxr_studio.editing.compositing import classical_fill, match_seam, paste_back, rim_blend
from cxr_studio.editing.masks import feather, grow, to_latent_mask, to_mask


def noise_image(shape, dtype, seed=0):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top, shape, dtype=dtype, endpoint=True)


def box_mask(shape, top, left, bottom, right):
    mask = np.zeros(shape, bool)
    mask[top:bottom, left:right] = True
    return mask


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("context", ["crop", "whole"])
def test_inpaint_is_bit_exact_outside_the_mask(studio, dtype, context):
    image = noise_image((77, 59), dtype)
    mask = box_mask(image.shape, 30, 20, 45, 33)
    result = studio.inpaint(image, mask, seed=1, context=context)
    assert result.image.dtype == dtype and result.image.shape == image.shape
    outside = result.mask == 0
    assert outside.sum() > 0.5 * image.size
    assert np.array_equal(result.image[outside], image[outside])
    assert not np.array_equal(result.image[mask], image[mask])  # white = regenerate
    assert result.mask[mask].min() == 1.0 and result.difference.shape == image.shape
    assert result.bit_depth == np.iinfo(dtype).bits


def test_blend_band_is_the_grown_and_feathered_mask(studio):
    image = noise_image((64, 64), np.uint8)
    mask = box_mask(image.shape, 28, 28, 36, 36)
    result = studio.inpaint(image, mask, seed=0, grow_px=3, feather_px=4)
    from scipy import ndimage

    grown = grow(mask, 3)
    assert np.array_equal(result.mask == 1, grown)
    assert np.array_equal(result.mask > 0, ndimage.distance_transform_edt(~grown) < 4 + 1)  # a 4-pixel ramp beyond


def test_same_seed_same_edit(studio):
    image = noise_image((64, 64), np.uint16)
    mask = box_mask(image.shape, 10, 10, 30, 30)
    a, b = studio.inpaint(image, mask, seed=3), studio.inpaint(image, mask, seed=3)
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, studio.inpaint(image, mask, seed=4).image)


def test_presets_strength_and_resampling(studio):
    image = noise_image((64, 64), np.uint8)
    mask = box_mask(image.shape, 20, 20, 40, 40)
    subtle = studio.inpaint(image, mask, seed=0, preset="subtle fix")
    assert subtle.parameters["strength"] == 0.5 and subtle.parameters["grow_px"] == 2
    repaint = studio.inpaint(image, mask, seed=0, resample_jumps=2)
    assert np.array_equal(repaint.image[repaint.mask == 0], image[repaint.mask == 0])
    with pytest.raises(InputError, match="unknown edit preset"):
        studio.inpaint(image, mask, preset="make it pretty")
    removal = studio.inpaint(image, mask, seed=0)  # the default preset starts from the classical fill
    assert removal.parameters["fill"] == "classical" and removal.parameters["strength"] < 1
    assert removal.parameters["report"] == "No support devices."
    with pytest.raises(InputError, match="fill 'latent noise'"):
        studio.inpaint(image, mask, fill="latent noise")


def test_classical_fill_removes_what_the_mask_covers():
    _y, x = np.mgrid[0:64, 0:64] / 64.0
    clean = (0.3 + 0.4 * x).astype(np.float32)  # a smooth gradient
    device = clean.copy()
    device[28:36, 10:50] = 1.0  # a bright wire across it
    mask = box_mask(clean.shape, 26, 8, 38, 52)
    filled = classical_fill(device, mask)
    assert np.array_equal(filled[~mask], device[~mask])
    assert np.abs(filled[mask] - clean[mask]).max() < 0.02  # the wire is gone, the gradient goes on
    assert np.array_equal(classical_fill(device, np.zeros_like(mask)), device)


def test_rim_blend_keeps_the_fill_on_the_edge_and_the_model_deep_inside():
    classical, generated = np.zeros((40, 40), np.float32), np.ones((40, 40), np.float32)
    wide = box_mask(classical.shape, 5, 5, 35, 35)
    blended = rim_blend(classical, generated, wide, depth_px=4)
    assert np.array_equal(blended[~wide], generated[~wide])  # outside: the model's (the paste-back decides)
    assert blended[5, 20] == 0.0 and blended[7, 20] == 0.5 and blended[20, 20] == 1.0  # edge, 2 px in, centre
    thin = box_mask(classical.shape, 10, 5, 12, 35)  # 2 px wide: every pixel is an edge pixel
    assert np.array_equal(rim_blend(classical, generated, thin, depth_px=4)[thin], classical[thin])
    everything = np.ones_like(wide)  # nothing known to interpolate from: the model's output, whole
    assert np.array_equal(rim_blend(classical, generated, everything, depth_px=4), generated)


def test_removing_a_thin_device_keeps_the_classical_fill_there(studio):
    """The "remove device" preset on a 2 px wire: the result there is the biharmonic fill (the latent model's
    4 px cells cannot draw what is under a wire); from what is there instead (fill "original") it is not."""
    _y, x = np.mgrid[0:64, 0:64] / 64.0
    image = (0.3 + 0.4 * x).astype(np.float32)
    image[30:32, 8:56] = 1.0
    wire = box_mask(image.shape, 30, 8, 32, 56)
    expected = classical_fill(image, wire)
    result = studio.inpaint(image, wire, preset="remove device", grow_px=0, feather_px=0, seed=0)
    np.testing.assert_allclose(result.display[wire], expected[wire], atol=1e-4)
    other = studio.inpaint(image, wire, preset="remove device", grow_px=0, feather_px=0, fill="original", seed=0)
    assert np.abs(other.display[wire] - expected[wire]).max() > 0.01


def test_real_16_bit_dicom_keeps_its_pixels(studio):
    data_store = pytest.importorskip("data_store")
    path = Path(data_store.__file__).parent / "data" / "RG3_UNCR.dcm"
    from cxr_studio import read_radiograph

    original = read_radiograph(path)
    mask = box_mask(original.pixels.shape, 800, 900, 880, 990)
    result = studio.inpaint(path, mask, seed=0)
    assert result.image.dtype == original.pixels.dtype and result.bit_depth == 10
    assert np.array_equal(result.image[result.mask == 0], original.pixels[result.mask == 0])


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((64, 64), bool), "mask is empty"),
        (np.ones((32, 64), bool), "must match the image size"),
        (np.full((64, 64), np.nan, np.float32), "NaN"),
        (np.zeros((64, 64, 2), np.uint8), "not a 2-D mask"),
    ],
)
def test_bad_masks(studio, mask, message):
    with pytest.raises(InputError, match=message):
        studio.inpaint(noise_image((64, 64), np.uint8), mask, seed=0)


def test_mask_conventions_and_edge_cases(studio):
    image = noise_image((64, 64), np.uint8)
    soft = np.zeros((64, 64), np.float32)
    soft[10:20, 10:20] = 0.6  # anti-aliased paint: above half is regenerate
    soft[40:50, 40:50] = 0.4
    assert to_mask(soft, (64, 64)).sum() == 100
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[5:9, 5:9, 3] = 255  # the app's brush layer: paint in the alpha channel
    assert to_mask(rgba, (64, 64)).sum() == 16
    assert to_mask(Image.fromarray((soft > 0.5).astype(np.uint8) * 255), (64, 64)).sum() == 100
    full = studio.inpaint(image, np.ones((64, 64), bool), seed=0)  # documented: a full mask is generation
    assert full.image.shape == image.shape
    border = studio.inpaint(image, box_mask(image.shape, 0, 0, 10, 64), seed=0)  # touching the border
    assert np.array_equal(border.image[border.mask == 0], image[border.mask == 0])
    with pytest.raises(InputError, match="colour"):
        studio.inpaint(np.stack([image, image, 255 - image], -1), np.ones((64, 64), bool), seed=0)
    with pytest.raises(InputError, match="too small"):
        studio.inpaint(np.zeros((8, 8), np.uint8), np.ones((8, 8), bool), seed=0)


def test_latent_mask_covers_every_painted_pixel():
    mask = np.zeros((64, 64), bool)
    mask[3, 60] = True  # one pixel
    latent = to_latent_mask(mask, (8, 8))
    assert latent.shape == (1, 1, 8, 8) and latent.sum() == 1 and latent[0, 0, 0, 7] == 1


def test_paste_back_and_seam_matching():
    original = noise_image((20, 20), np.uint16)
    generated = noise_image((20, 20), np.uint16, seed=5)
    weights = feather(box_mask((20, 20), 5, 5, 10, 10), 3)
    out = paste_back(original, generated, weights)
    assert np.array_equal(out[weights == 0], original[weights == 0])
    assert np.array_equal(out[weights == 1], generated[weights == 1])
    display = np.random.default_rng(0).random((40, 40)).astype(np.float32) * 0.5
    region = box_mask((40, 40), 10, 10, 30, 30)
    matched = match_seam(display + 0.3, display, region)
    from scipy import ndimage

    ring = ndimage.binary_dilation(region, iterations=6) & ~region
    assert abs(matched[ring].mean() - display[ring].mean()) < 1e-3


def test_outpaint_keeps_the_original_exactly(studio):
    image = noise_image((50, 41), np.uint16)
    result = studio.outpaint(image, left=7, top=3, right=0, bottom=11, seed=0)
    assert result.image.shape == (64, 48) and result.image.dtype == np.uint16
    assert np.array_equal(result.image[3:53, 7:48], image)
    other = studio.outpaint(image, left=7, top=3, bottom=11, seed=1)
    assert not np.array_equal(other.image[:3], result.image[:3])  # another seed, other surroundings
    kept = studio.outpaint(image, keep_box=(5, 6, 30, 40), seed=0)
    assert kept.image.shape == image.shape and np.array_equal(kept.image[6:40, 5:30], image[6:40, 5:30])
    with pytest.raises(InputError, match="zero pixels"):
        studio.outpaint(image)
    with pytest.raises(InputError, match="keep_box"):
        studio.outpaint(image, keep_box=(30, 6, 5, 40))


def test_interpolation_end_frames_match_their_endpoints(studio):
    reports = ("Large right pleural effusion.", "Normal chest radiograph.")
    frames = studio.interpolate(*reports, mode="report", num_frames=4, seed=2)
    assert frames.pixels.shape == (4, 32, 32)
    for index, report in ((0, reports[0]), (-1, reports[1])):
        alone = studio.generate(report, seed=2, upscale=False).pixels[0]
        assert np.mean(np.abs(frames.pixels[index] - alone) > 1e-3) < 0.01
    seeds = studio.interpolate(4, 9, mode="seed", report=reports[0], num_frames=3)
    # the random tiny model saturates pixels at 0 or 1, where the last bit of slerp's arithmetic can flip one
    assert (
        np.mean(np.abs(seeds.pixels[0] - studio.generate(reports[0], seed=4, upscale=False).pixels[0]) > 1e-3) < 0.01
    )
    assert (
        np.mean(np.abs(seeds.pixels[-1] - studio.generate(reports[0], seed=9, upscale=False).pixels[0]) > 1e-3) < 0.01
    )
    a, b = noise_image((40, 40), np.uint8, 1), noise_image((40, 40), np.uint8, 2)
    blend = studio.interpolate(a, b, mode="latent-blend", num_frames=3)
    reconstruction = studio.decode(studio.encode(a))
    from cxr_studio.imaging import from_tensor

    assert np.abs(blend.pixels[0] - from_tensor(reconstruction)[0]).max() < 1e-5
    inverted = studio.interpolate(a, b, mode="image", num_frames=3, report="")
    assert inverted.pixels.shape == (3, 32, 32) and np.isfinite(inverted.pixels).all()
    gif = Image.open(__import__("io").BytesIO(frames.gif()))
    assert gif.format == "GIF" and gif.n_frames == 2 * 4 - 2
    with pytest.raises(InputError, match="mode"):
        studio.interpolate(a, b, mode="morph")
    with pytest.raises(InputError, match="num_frames"):
        studio.interpolate(*reports, mode="report", num_frames=1)
