"""Torch datasets over a manifest: the one way training and evaluation read images, whatever their source.

Items are dicts: ``image`` ``(1, S, S)`` float32 in ``[-1, 1]`` (Cheff's shortest-edge resize and centre
crop), ``report`` (str), ``labels`` ``(14,)`` float32 (CheXpert order; 1, 0, -1, NaN for blank) and
``index``. Unreadable images are skipped and counted, never fatal: the item is ``None`` and
:func:`collate_skipping` drops it from the batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from cxr_studio import imaging
from cxr_studio.data.manifest import read_manifest
from cxr_studio.errors import InputError
from cxr_studio.labels import chexpert_vector
from cxr_studio.layout import Layout, center_square, parse_layout

log = logging.getLogger(__name__)


class EmptySplit(InputError):
    """The manifest is readable but has no images in the asked split(s): a validation split is optional."""


class ManifestDataset(Dataset):
    """Images, reports and labels of one split of a manifest, at ``size`` px."""

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        *,
        size: int,
        splits: Sequence[str] = ("train",),
        views: Sequence[str] = ("PA", "AP"),
    ) -> None:
        self.root = Path(manifest).parent
        self.rows = [r for r in read_manifest(manifest) if r["split"] in splits and r["view"] in views]
        if not self.rows:
            raise EmptySplit(
                f"manifest {Path(manifest).name} has no {'/'.join(views)} images in split(s) {list(splits)}."
            )
        self.size = size
        self.skipped: list[str] = []  # paths of unreadable images (relative to the manifest)

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int, size: int) -> np.ndarray | None:
        """The display image of row ``index`` at ``size`` px in ``[0, 1]``, or None when unreadable."""
        row = self.rows[index]
        try:
            display = imaging.read_radiograph(self.root / row["path"], name=f"manifest row {index}").display
        except InputError as err:
            if row["path"] not in self.skipped:
                self.skipped.append(row["path"])
                log.warning("skipping unreadable image %s: %s", row["path"], err)
            return None
        return imaging.resize_center_crop(display, size)

    def layout(self, index: int) -> Layout | None:
        """Row ``index``'s ``boxes`` column as a layout in the coordinates of its training image (the centred
        square that :func:`~cxr_studio.imaging.resize_center_crop` keeps); None where the column is empty or
        missing (unknown), ``()`` where it lists nothing (known to show no item)."""
        boxes = self.rows[index].get("boxes", "")
        if not boxes.strip():
            return None
        layout = parse_layout(boxes)
        if not layout:
            return layout
        width, height = self._shape(index)
        return center_square(layout, width=width, height=height)

    def _shape(self, index: int) -> tuple[int, int]:
        """(width, height) of row ``index``'s image from its header (PNG, JPEG, TIFF or DICOM)."""
        path = self.root / self.rows[index]["path"]
        try:
            with Image.open(path) as image:
                return image.size
        except (OSError, ValueError):
            header = pydicom.dcmread(path, stop_before_pixels=True)
            return int(header.Columns), int(header.Rows)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        image = self.load(index, self.size)
        if image is None:
            return None
        row = self.rows[index]
        return {
            "image": imaging.to_tensor(image)[0],
            "report": row["report"],
            "labels": torch.from_numpy(chexpert_vector(row)),
            "index": index,
        }


class SuperResPairs(ManifestDataset):
    """``(high, low)`` pairs for super-resolution: a random ``crop`` px window of the ``size`` px image and the
    same window downsampled by ``factor`` (bicubic, antialiased). ``high`` ``(1, crop, crop)``, ``low``
    ``(1, crop/factor, crop/factor)``, both in ``[-1, 1]``. ``full_low``: also ``low_full`` (the whole
    downsampled image) and ``low_box`` ``(top, left, side)`` of ``low`` in it, so that a model with global
    statistics (the autoencoder's GroupNorm) can process the image whole and the crop be cut afterwards.
    """

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        *,
        size: int,
        factor: int,
        crop: int,
        seed: int = 0,
        splits: Sequence[str] = ("train",),
        full_low: bool = False,
    ) -> None:
        super().__init__(manifest, size=size, splits=splits)
        if crop % factor or crop > size:
            raise InputError(f"crop {crop} must be a multiple of the factor {factor} and at most the size {size}.")
        self.factor, self.crop, self.seed, self.full_low = factor, crop, seed, full_low

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        image = self.load(index, self.size)
        if image is None:
            return None
        low_full = imaging.resize(image, (self.size // self.factor, self.size // self.factor))
        # crop position from (seed, index, epoch-free): deterministic, so resumed runs see the same data
        rng = np.random.default_rng([self.seed, index])
        cells = (self.size - self.crop) // self.factor
        top, left = (int(v) * self.factor for v in rng.integers(0, cells + 1, 2))
        high = image[top : top + self.crop, left : left + self.crop]
        small = self.crop // self.factor
        low = low_full[
            top // self.factor : top // self.factor + small, left // self.factor : left // self.factor + small
        ]
        item = {
            "high": imaging.to_tensor(high)[0],
            "low": imaging.to_tensor(low)[0],
            "report": self.rows[index]["report"],
            "index": index,
        }
        if self.full_low:  # the whole low-resolution image and where the crop lies in it (for processing it whole)
            item["low_full"] = imaging.to_tensor(low_full)[0]
            item["low_box"] = torch.tensor([top // self.factor, left // self.factor, small])
        return item


def collate_skipping(items: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """``default_collate`` without the unreadable (None) items; None when the whole batch was unreadable."""
    kept = [item for item in items if item is not None]
    return default_collate(kept) if kept else None
