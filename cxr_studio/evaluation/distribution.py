"""Realism and diversity from features: FID, KID, improved precision/recall, density and coverage.

All functions take feature matrices ``(N, D)`` (rows are images) from any extractor; the formulas
follow the reference implementations so figures are comparable: FID as in pytorch-fid / torchmetrics
(Fréchet distance of Gaussians, ``scipy.linalg.sqrtm``), KID as torchmetrics (unbiased MMD² with the
cubic polynomial kernel ``(x·y / D + 1)³`` over random subsets), precision and recall as Kynkäänniemi et
al. 2019 (k-nearest-neighbour balls, k = 3), density and coverage as Naeem et al. 2020 (:func:`prdc`, the four
with k = 5 as CheXGenBench reports them). Everything is float64: no uint8 arithmetic that could wrap around.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from cxr_studio.errors import InputError

PR_NEIGHBOURS = 3  # Kynkäänniemi et al.'s k
PRDC_NEIGHBOURS = 5  # CheXGenBench's k for precision, recall, density and coverage


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the two feature sets."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():  # singular product: nudge the diagonals, as pytorch-fid does
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kid(
    real: np.ndarray, fake: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel inception distance: mean and standard deviation over ``subsets`` random subsets."""
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(real), len(fake))
    dim = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = fake[rng.choice(len(fake), size, replace=False)]
        k_xx, k_yy, k_xy = (x @ x.T / dim + 1) ** 3, (y @ y.T / dim + 1) ** 3, (x @ y.T / dim + 1) ** 3
        m = size
        mmd = (
            (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
            + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
            - 2 * k_xy.mean()
        )
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def _radii(features: np.ndarray, k: int) -> np.ndarray:
    distances = np.sqrt(np.maximum(((features[:, None] - features[None]) ** 2).sum(-1), 0))
    return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = PR_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision (share of fakes inside the real manifold) and recall (reals inside the fake one).

    Each set needs more than ``k`` images (a point's k-th neighbour other than itself)."""
    if min(len(real), len(fake)) <= k:
        raise InputError(
            f"precision/recall with k={k} nearest neighbours needs at least {k + 1} images in each set; "
            f"got {len(real)} real and {len(fake)} generated."
        )
    real_radii, fake_radii = _radii(real, k), _radii(fake, k)
    cross = np.sqrt(np.maximum(((fake[:, None] - real[None]) ** 2).sum(-1), 0))  # (fake, real)
    precision = float((cross <= real_radii[None]).any(1).mean())
    recall = float((cross.T <= fake_radii[None]).any(1).mean())
    return precision, recall


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = PRDC_NEIGHBOURS) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with ``k`` nearest neighbours.

    Density counts, for each generated image, how many real k-NN balls contain it (divided by k; 1 when the
    generated set is distributed like the real one, above 1 when it crowds the dense regions); coverage is the
    share of real balls that contain at least one generated image (mode coverage, robust to outliers)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision, recall = precision_recall(real, fake, k=k)
    real_radii = _radii(real, k)
    cross = np.sqrt(np.maximum(((fake[:, None] - real[None]) ** 2).sum(-1), 0))  # (fake, real)
    inside = cross <= real_radii[None]
    return {
        "precision": precision,
        "recall": recall,
        "density": float(inside.sum() / (k * len(fake))),
        "coverage": float(inside.any(0).mean()),
    }
