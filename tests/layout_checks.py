"""What the layout tests measure on two images of one report and seed whose layouts differ: where they differ."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def change_in_boxes(before: np.ndarray, after: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[float]:
    """Mean absolute change between two ``(H, W)`` images inside each normalised box, then outside all of them."""
    change = np.abs(np.asarray(after, np.float64) - np.asarray(before, np.float64))
    h, w = change.shape
    covered = np.zeros(change.shape, bool)
    means = []
    for x0, y0, x1, y1 in boxes:
        region = np.zeros(change.shape, bool)
        region[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = True
        means.append(float(change[region].mean()))
        covered |= region
    return [*means, float(change[~covered].mean())]
