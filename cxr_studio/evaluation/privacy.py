"""Privacy screening: is a generated image a near-copy of a training image? (Packhäuser et al. 2023)

For each query the screen finds candidate neighbours in the training set two ways (cosine similarity
of classifier features, and correlation of small thumbnails), then scores each candidate by the
normalised cross-correlation of the thumbnails, maximised over small shifts and zooms, so shifted,
rescaled and re-noised copies still score high. The threshold is calibrated on the training set itself:
the highest score any training image reaches against a *different* training image (its nearest
neighbour), at a chosen quantile. A query above it is closer to some training image than training
images are to each other, and is flagged. Exact search: a matrix product over all training thumbnails
and features, fine up to a few hundred thousand images.

Edited real images (inpainted, outpainted) are patient images whatever this screen says; it only
applies to images generated from noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from cxr_studio.errors import InputError

COARSE = 32  # candidate search on 32 px thumbnails
SHIFTS = range(-2, 3)  # coarse shifts in thumbnail pixels: +-6 % of the width
ZOOMS = (1.0, 0.95, 0.975, 1.025, 1.05)
MARGIN = 4  # the compared window leaves this border so shifted variants stay inside the thumbnail


def thumbnails(images: np.ndarray, *, size: int = COARSE) -> np.ndarray:
    """``(N, 1, S, S)`` in ``[-1, 1]`` -> ``(N, size, size)`` float32, area-averaged (noise averages out)."""
    n, _, s, _ = images.shape
    factor = s // size
    cropped = images[:, 0, : factor * size, : factor * size]
    return cropped.reshape(n, size, factor, size, factor).mean((2, 4)).astype(np.float32)


def band_pass(image: np.ndarray) -> np.ndarray:
    """Fine structure (vessels, rib edges) that identifies a patient, without the broad shape (exposure,
    heart size, effusions) that many patients share, nor pixel noise."""
    return ndimage.gaussian_filter(image, 1.0) - ndimage.gaussian_filter(image, 4.0)


def _normalise(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1).astype(np.float64)
    flat = flat - flat.mean(1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def _warp(image: np.ndarray, dy: float, dx: float, zoom: float) -> np.ndarray:
    """``image`` zoomed by ``zoom`` about its centre and shifted by ``(dy, dx)`` pixels."""
    centre = (np.array(image.shape) - 1) / 2
    offset = centre - (centre + np.array([dy, dx])) / zoom
    return ndimage.affine_transform(image, np.eye(2) / zoom, offset=offset, order=1, mode="nearest")


def _variants(thumb: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """The coarse query thumbnail over the shift/zoom grid, minus the training mean, normalised; and the grid."""
    inner = slice(MARGIN, COARSE - MARGIN)
    out, grid = [], []
    for zoom in ZOOMS:
        for dy in SHIFTS:
            for dx in SHIFTS:
                out.append(_warp(thumb, dy, dx, zoom)[inner, inner] - mean)
                grid.append((float(dy), float(dx), zoom))
    return _normalise(np.stack(out)), grid


def registered_correlation(query: np.ndarray, reference: np.ndarray, start: tuple[float, float, float]) -> float:
    """Correlation of the band-passed images after aligning ``query`` to ``reference`` (shift and zoom,
    refined by Nelder-Mead from ``start``): about 1 for a copy, however it was moved or re-noised."""
    from scipy.optimize import minimize

    margin = max(2, query.shape[0] // 10)
    inner = slice(margin, query.shape[0] - margin)
    target = _normalise(band_pass(reference)[inner, inner][None])[0]
    moving = band_pass(query)

    def loss(p: np.ndarray) -> float:
        return -float(_normalise(_warp(moving, p[0], p[1], float(np.exp(p[2])))[inner, inner][None])[0] @ target)

    x0 = np.array([start[0], start[1], np.log(start[2])])
    simplex = np.stack([x0, x0 + [1.0, 0, 0], x0 + [0, 1.0, 0], x0 + [0, 0, 0.02]])  # scipy's default is ~0 around 0
    result = minimize(
        loss,
        x0,
        method="Nelder-Mead",
        options={"xatol": 0.02, "fatol": 1e-5, "maxfev": 150, "initial_simplex": simplex},
    )
    return -float(result.fun)


@dataclass(frozen=True)
class Match:
    """A query's closest training image: its index, the score (correlation of fine structure after
    registration), the feature cosine similarity, and whether it is above the calibrated threshold."""

    nearest: int
    score: float
    feature_similarity: float | None
    flagged: bool


class PrivacyScreen:
    """Near-copy screen against a training set; see the module docstring."""

    def __init__(
        self, train_images: np.ndarray, *, embed: Callable[[np.ndarray], np.ndarray] | None = None, refine: int = 5
    ) -> None:
        self.embed, self.refine = embed, refine
        self.images = train_images[:, 0]
        self.thumbs = thumbnails(train_images)
        # Radiographs share their anatomy: raw correlation between two patients is ~0.97. What identifies a
        # patient is the deviation from the average image, so candidates are found on residuals.
        self.mean = self.thumbs.mean(0)
        inner = slice(MARGIN, COARSE - MARGIN)
        self.inner_mean = self.mean[inner, inner]
        self.inner = _normalise(self.thumbs[:, inner, inner] - self.inner_mean)
        self.features = _normalise(embed(train_images)) if embed is not None else None
        self.threshold = np.inf
        self.calibration: np.ndarray | None = None

    def _score(
        self, image: np.ndarray, feature: np.ndarray | None, exclude: int | None = None
    ) -> tuple[int, float, float | None]:
        # 1. Coarse: every training thumbnail against the query over the shift/zoom grid (exact search,
        #    N x grid products), plus the nearest neighbours by classifier features when there are any
        thumb = thumbnails(image[None, None])[0]
        variants, grid = _variants(thumb, self.inner_mean)
        coarse = self.inner @ variants.T  # (N, grid)
        best_coarse = coarse.max(1)
        if exclude is not None:
            best_coarse[exclude] = -np.inf
        candidates = list(np.argsort(-best_coarse)[: self.refine])
        if feature is not None:
            similarity = self.features @ feature
            if exclude is not None:
                similarity[exclude] = -np.inf
            candidates += [int(k) for k in np.argsort(-similarity)[: self.refine] if k not in candidates]
        # 2. Fine: register the query onto each candidate and correlate the fine structure
        scale = image.shape[0] / COARSE
        fine = []
        for k in candidates:
            dy, dx, zoom = grid[int(np.argmax(coarse[k]))]
            fine.append(registered_correlation(image, self.images[k], (dy * scale, dx * scale, zoom)))
        best = int(np.argmax(fine))
        index = int(candidates[best])
        similarity = float(self.features[index] @ feature) if feature is not None else None
        return index, float(fine[best]), similarity

    def calibrate(self, *, quantile: float = 0.999, sample: int | None = 500, seed: int = 0) -> float:
        """Threshold = ``quantile`` of training images' scores against their nearest *other* training image."""
        rng = np.random.default_rng(seed)
        indices = (
            np.arange(len(self.images))
            if sample is None or sample >= len(self.images)
            else rng.choice(len(self.images), sample, replace=False)
        )
        self.calibration = np.array(
            [
                self._score(self.images[i], None if self.features is None else self.features[i], exclude=int(i))[1]
                for i in indices
            ]
        )
        self.threshold = float(np.quantile(self.calibration, quantile))
        return self.threshold

    def screen(self, images: np.ndarray) -> list[Match]:
        """``images`` ``(N, 1, S, S)`` in ``[-1, 1]`` (same size as the training images) -> one :class:`Match` each."""
        if not np.isfinite(self.threshold):
            self.calibrate()
        features = (
            _normalise(self.embed(images))
            if self.embed is not None and self.features is not None
            else [None] * len(images)
        )
        matches = []
        for image, feature in zip(images[:, 0], features):
            index, score, similarity = self._score(image, feature)
            matches.append(
                Match(nearest=index, score=score, feature_similarity=similarity, flagged=score > self.threshold)
            )
        return matches


def plant_copies(images: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Near-copies of ``images`` ``(N, 1, S, S)``: each shifted by up to 4 % of the side, rescaled by 0.95 to
    1.05 and re-noised (sigma 0.03 of the range) -- what a memorising generator could emit."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    side = images.shape[-1]
    for i, image in enumerate(images[:, 0]):
        zoom = rng.uniform(0.95, 1.05)
        dy, dx = rng.uniform(-0.04, 0.04, 2) * side
        moved = _warp(image, dy, dx, zoom)
        out[i, 0] = np.clip(moved + rng.normal(0, 0.06, moved.shape), -1, 1)
    return out


def screen_for_manifest(
    manifest: str, *, size: int = 96, limit: int | None = 2000, calibration: int = 200, seed: int = 0
) -> tuple[PrivacyScreen, list[dict[str, str]]]:
    """A calibrated screen over the training split of a manifest (at most ``limit`` images, ``size`` px),
    and the manifest rows behind its indices (to show a match's nearest training image)."""
    from cxr_studio.evaluation.classifier import load_split

    images, _, _, rows = load_split(manifest, "train", size=size, limit=limit)
    screen = PrivacyScreen(images)
    screen.calibrate(sample=calibration, seed=seed)
    return screen, rows


def screen_pixels(screen: PrivacyScreen, pixels01: np.ndarray) -> list[Match]:
    """Screen display images ``(N, H, W)`` in ``[0, 1]`` of any size (resized to the screen's)."""
    from cxr_studio import imaging

    return screen.screen(imaging.to_batch(pixels01, screen.images.shape[-1]))


def generate_private(
    studio: Any,
    report: str,
    *,
    screen: PrivacyScreen,
    num_images: int = 1,
    seed: int = 0,
    max_rounds: int = 4,
    **options: Any,
) -> tuple[Any, list[int]]:
    """Privacy-enhancing sampling (Packhäuser et al. 2023): generate, screen every image against the
    training set, and replace flagged ones with fresh seeds (up to ``max_rounds`` times).

    Returns the kept images as one ``GenerationResult`` (seeds recorded per image) and the rejected
    seeds. Raises :class:`InputError` when images are still flagged after ``max_rounds``.
    """
    from dataclasses import replace

    kept_pixels, kept_seeds, kept_images, kept_low, rejected = [], [], [], [], []
    result, next_seed = None, seed
    for _ in range(max_rounds):
        missing = num_images - len(kept_seeds)
        result = studio.generate(report, seed=next_seed, num_images=missing, **options)
        next_seed += missing
        for i, match in enumerate(screen_pixels(screen, result.pixels)):
            if match.flagged:
                rejected.append(result.seeds[i])
            else:
                kept_pixels.append(result.pixels[i])
                kept_seeds.append(result.seeds[i])
                kept_images.append(result.images[i])
                kept_low.append(result.low_res[i])
        if len(kept_seeds) == num_images:
            parameters = {
                **result.parameters,
                "layouts": result.parameters["layouts"][:1] * num_images,  # one report: one layout for all
                "privacy_screen": {"threshold": screen.threshold, "rejected_seeds": rejected},
            }
            return replace(
                result,
                images=kept_images,
                low_res=kept_low,
                pixels=np.stack(kept_pixels),
                seeds=kept_seeds,
                parameters=parameters,
            ), rejected
    raise InputError(
        f"{num_images - len(kept_seeds)} image(s) still resembled training images after {max_rounds} rounds; "
        "the model may memorise this report: review it before use."
    )
