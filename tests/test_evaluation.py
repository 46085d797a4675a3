"""Metrics against scikit-image, and the benchmarks' plumbing on the tiny preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cxr_studio.data.phantom import write_dataset
from cxr_studio.evaluation import device_removal, quick
from cxr_studio.evaluation.metrics import psnr, ssim


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)[None, None]


def test_ssim_and_psnr_match_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((48, 48))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    reference = structural_similarity(
        a, b, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )[1]
    assert ssim(as_tensor(a), as_tensor(b), data_range=1.0).item() == pytest.approx(
        reference[5:-5, 5:-5].mean(), abs=1e-9
    )
    assert psnr(as_tensor(a), as_tensor(b), data_range=1.0).item() == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=1), abs=1e-9
    )
    assert ssim(as_tensor(a), as_tensor(a), data_range=1.0).item() == pytest.approx(1.0)
    shifted = np.clip(a + 0.1, 0, 1)
    assert psnr(as_tensor(a), as_tensor(shifted), data_range=1.0).item() < 25


def test_ssim_is_exact_under_bf16_autocast_and_keeps_its_gradient():
    rng = np.random.default_rng(1)
    a = (
        torch.from_numpy(rng.random((2, 1, 64, 64), dtype=np.float32)) * 0.2 + 0.6
    )  # bright, low-contrast: the hard case
    b = (a + 0.01 * torch.from_numpy(rng.standard_normal(a.shape, dtype=np.float32))).requires_grad_()
    reference = ssim(a, b.detach(), data_range=1.0)
    with torch.autocast(
        "cpu", dtype=torch.bfloat16
    ):  # how the trainer runs the autoencoder loss with --mixed-precision bf16
        value = ssim(a, b, data_range=1.0)
    assert value.dtype == torch.float32 and torch.allclose(value, reference, atol=1e-6)
    value.sum().backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0


def test_device_removal_benchmark_runs_both_methods(studio):
    result = device_removal.run(studio, n=2, size=64)
    assert result["cases"] == 2
    for method in ("cascade", "biharmonic"):
        assert set(result["summary"][method]) == {"psnr", "ssim", "device_signal_left"}
        assert np.isfinite(result["summary"][method]["psnr"])


def test_quick_figures(studio, tmp_path):
    manifest = write_dataset(tmp_path, n=12, size=64, seed=0, quiet=True)
    figures = quick.reconstruction(studio, manifest, n=8, split="train")
    assert figures["images"] > 0 and figures["psnr"] > 0 and -1 <= figures["ssim"] <= 1
    laterality = quick.effusion_laterality(studio, n=1)
    assert 0 <= laterality["accuracy"] <= 1
    image = np.zeros((100, 100), np.float32)
    image[60:75, 15:35] = 1.0  # brighter lower zone on the image's left: the patient's right
    assert quick.lower_zone_asymmetry(image) > 0


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    """A VGG16 state dict with torchvision's key names and random weights (the real one is 528 MB)."""
    from safetensors.torch import save_file

    from cxr_studio.evaluation.perceptual import vgg16_features

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in vgg16_features().state_dict().items()}, str(path))
    return path


def test_lpips_is_a_distance_that_grows_with_noise_and_has_gradients(vgg16_file):
    from cxr_studio.evaluation.perceptual import LPIPS

    lpips = LPIPS(vgg16_file)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 48, 48, generator=generator) * 2 - 1
    noise = torch.randn(image.shape, generator=generator)
    slightly, heavily = (image + 0.05 * noise).clamp(-1, 1), (image + 0.5 * noise).clamp(-1, 1)
    assert torch.equal(lpips(image, image), torch.zeros(2))
    torch.testing.assert_close(lpips(image, heavily), lpips(heavily, image))
    assert (lpips(image, slightly) < lpips(image, heavily)).all()
    probe = slightly.clone().requires_grad_(True)
    lpips(image, probe).sum().backward()
    assert probe.grad is not None and probe.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lpips.parameters())  # the backbone itself stays frozen


def test_lpips_backbone_files_pth_and_bad_ones(vgg16_file, tmp_path):
    from safetensors.torch import load_file

    from cxr_studio.errors import InputError
    from cxr_studio.evaluation.perceptual import LPIPS

    state = load_file(str(vgg16_file))
    torch.save(state, tmp_path / "vgg16.pth")  # a plain state dict, read with weights_only=True
    image = torch.rand(1, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(LPIPS(tmp_path / "vgg16.pth")(image, -image), LPIPS(vgg16_file)(image, -image))
    torch.save({"payload": ValueError("arbitrary object")}, tmp_path / "pickle.pth")  # not just tensors: refused
    (tmp_path / "junk.safetensors").write_bytes(b"not weights")
    del state["features.28.weight"]
    torch.save(state, tmp_path / "partial.pth")
    for name, message in (
        ("missing.pth", "no such VGG16"),
        ("pickle.pth", "cannot read"),
        ("junk.safetensors", "cannot read"),
        ("partial.pth", "not a VGG16"),
    ):
        with pytest.raises(InputError, match=message):
            LPIPS(tmp_path / name)


def test_quick_super_resolution_rows_follow_the_chosen_sampler(studio, tmp_path):
    manifest = write_dataset(tmp_path, n=40, size=64, seed=0, quiet=True)
    rows = quick.super_resolution_rows(studio, str(manifest), n=2, sampler="unipc", steps=2)
    assert (rows["sr_sampler"], rows["sr_num_steps"]) == ("unipc", 2)
    for name in ("autoencoder_plus_super_resolution", "autoencoder_plus_bicubic"):
        assert (
            rows[name]["images"] == 2
            and rows[name]["size"] == studio.config.output_size
            and np.isfinite(rows[name]["psnr"])
        )
    assert (
        studio.config.sampling.sr_sampler != "unipc" or studio.config.sampling.sr_num_steps != 2
    )  # the studio itself is unchanged


def test_sample_sheet_puts_each_one_sided_item_on_both_sides(studio):
    from cxr_studio.evaluation.prompt_sheet import SHEET, sample_sheet

    sheet = np.asarray(sample_sheet(studio, seeds=1, tile=32))
    sided = sum(row.label.endswith(", left") for row in SHEET)
    lines = sided + len(SHEET) - 2 * sided  # one line per item (left | right), then one per report without a side
    assert sheet.shape == (lines * (32 + 16), 2 * 2 * 32 + 32 // 8)
    left_real, right_real = sheet[16 : 16 + 32, 0:32], sheet[16 : 16 + 32, 68 : 68 + 32]
    assert left_real.std() > 10 and np.abs(left_real.astype(int) - right_real).mean() > 1  # two different phantoms
    assert sheet[-(32 + 16) :, 68:].max() == 0  # a report without a side has no right half
