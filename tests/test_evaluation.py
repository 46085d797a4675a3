"""Metrics against scikit-image, and the benchmarks' plumbing on the tiny preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cxr_studio import CXRStudio
from cxr_studio.data.phantom import write_dataset
from cxr_studio.evaluation import device_removal, quick
from cxr_studio.evaluation.metrics import psnr, ssim


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)[None, None]


def test_ssim_and_psnr_match_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((48, 48))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    reference = structural_similarity(a, b, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)[1]
    assert ssim(as_tensor(a), as_tensor(b), data_range=1.0).item() == pytest.approx(reference[5:-5, 5:-5].mean(), abs=1e-9)
    assert psnr(as_tensor(a), as_tensor(b), data_range=1.0).item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), abs=1e-9)
    assert ssim(as_tensor(a), as_tensor(a), data_range=1.0).item() == pytest.approx(1.0)
    shifted = np.clip(a + 0.1, 0, 1)
    assert psnr(as_tensor(a), as_tensor(shifted), data_range=1.0).item() < 25


@pytest.fixture(scope="module")
def studio():
    return CXRStudio.from_preset("tiny")


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
