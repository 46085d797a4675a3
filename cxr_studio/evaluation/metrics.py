"""Image-quality metrics on torch tensors, differentiable where training uses them as losses."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _gaussian_window(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 2.0, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, valid convolution).

    ``x``, ``y``: ``(B, 1, H, W)``; ``data_range`` 2 for ``[-1, 1]`` images. Returns ``(B,)``; matches
    scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
    away from the borders.
    """
    # At least float32, autocast off: the variances are differences of nearly equal moments, which bf16's
    # 8-bit mantissa turns into noise (a bf16-autocast autoencoder run went NaN within 30 steps).
    with torch.autocast(device_type=x.device.type, enabled=False):
        dtype = torch.promote_types(x.dtype, torch.float32)  # float64 stays float64
        x, y = x.to(dtype), y.to(dtype)
        window = min(window, x.shape[-1], x.shape[-2]) | 1  # odd, and no larger than the image
        kernel = _gaussian_window(window, sigma, x.device, x.dtype)
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        mu_x, mu_y = F.conv2d(x, kernel), F.conv2d(y, kernel)
        var_x = F.conv2d(x * x, kernel) - mu_x**2
        var_y = F.conv2d(y * y, kernel) - mu_y**2
        cov = F.conv2d(x * y, kernel) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return ssim_map.flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``(B,)``."""
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties counting half."""
    pos, neg = score[positive], score[~positive]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 2.0,
    window: int = 11,
    sigma: float = 1.5,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> torch.Tensor:
    """Multi-scale SSIM per image, ``(B,)`` (Medfusion's reconstruction metric).

    ``x``, ``y``: ``(B, 1, H, W)``. Contrast-structure terms at every scale, luminance at the coarsest,
    2x2 average pooling between scales; the number of scales shrinks (weights renormalised) when the
    image is too small for five, so 64 px images still get a score. Negative terms are clamped to 0.
    """
    window = min(window, x.shape[-1], x.shape[-2]) | 1
    kernel = _gaussian_window(window, sigma, x.device, x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scales = max(1, min(len(weights), 1 + int(np.log2(min(x.shape[-2:]) / window))))
    w = torch.tensor(weights[:scales], device=x.device, dtype=x.dtype)
    w = w / w.sum()
    terms = []
    for level in range(scales):
        mu_x, mu_y = F.conv2d(x, kernel), F.conv2d(y, kernel)
        var_x = F.conv2d(x * x, kernel) - mu_x**2
        var_y = F.conv2d(y * y, kernel) - mu_y**2
        cov = F.conv2d(x * y, kernel) - mu_x * mu_y
        cs = ((2 * cov + c2) / (var_x + var_y + c2)).flatten(1).mean(1)
        if level == scales - 1:
            luminance = ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)).flatten(1).mean(1)
            terms.append((cs * luminance).clamp_min(0))
        else:
            terms.append(cs.clamp_min(0))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.prod(torch.stack(terms, 1) ** w[None], dim=1)
