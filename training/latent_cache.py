"""The latent stage's cache: every image encoded once by the frozen autoencoder, kept on disk in shards.

A folder per split: ``shard-00000.safetensors`` ... (``latents`` ``(n, C, h, w)`` float32 and ``index``
``(n,)``, the images' positions in the split's :class:`~cxr_studio.data.dataset.ManifestDataset`), then
``index.json`` (the shards' sizes), written last, which marks the cache complete. Shards are written atomically
and a rerun skips the finished ones, so encoding MaCheX-sized sets (650k images, hours) resumes after a crash.
Reading memory-maps one row at a time: memory stays flat whatever the set's size (42 GB of latents for 650k
images at 256 px would not fit in RAM).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from cxr_studio.data.dataset import ManifestDataset, collate_skipping
from cxr_studio.files import replacing, write_atomic

log = logging.getLogger("training")
SHARD_SIZE = 4096  # 256 MB of float32 latents at 256 px (4 x 64 x 64)
INDEX = "index.json"
ENCODE_BATCH = 16


def is_complete(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / INDEX).is_file()


@torch.no_grad()
def build(
    folder: str | os.PathLike[str],
    images: ManifestDataset,
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    shard_size: int = SHARD_SIZE,
) -> None:
    """Encode ``images`` (``encode``: ``(B, 1, S, S)`` in ``[-1, 1]`` -> latents) into shards; unreadable images are
    skipped (the dataset logs them). Finished shards are kept, so an interrupted build continues."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = []
    for shard, first in enumerate(range(0, len(images), shard_size)):
        path = folder / f"shard-{shard:05d}.safetensors"
        if not path.is_file():
            latents, kept = [], []
            for start in range(first, min(first + shard_size, len(images)), ENCODE_BATCH):
                batch = collate_skipping(
                    [images[i] for i in range(start, min(start + ENCODE_BATCH, first + shard_size, len(images)))]
                )
                if batch is not None:
                    latents.append(encode(batch["image"]).float().cpu())
                    kept.append(batch["index"].long())
            tensors = {
                "latents": torch.cat(latents).contiguous() if latents else torch.empty(0),
                "index": torch.cat(kept) if kept else torch.empty(0, dtype=torch.long),
            }
            with replacing(path) as tmp:  # a kill mid-write never leaves a shard that looks whole
                save_file(tensors, str(tmp))
            log.info("encoded %d of %d images into %s", min(first + shard_size, len(images)), len(images), folder)
        with safe_open(str(path), framework="pt") as handle:
            sizes.append(int(handle.get_slice("index").get_shape()[0]))
    write_atomic(folder / INDEX, json.dumps({"shards": sizes, "count": sum(sizes)}).encode())
    log.info("cached %d latents in %s (%d shards)", sum(sizes), folder, len(sizes))


class LatentCache(Dataset):
    """``(latents (C, h, w), index)`` per cached image, read from the shards on demand (memory-mapped)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        sizes = json.loads((self.folder / INDEX).read_text())["shards"]
        self.starts = [sum(sizes[:k]) for k in range(len(sizes))]
        self.count = sum(sizes)
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return self.count

    def _handle(self, shard: int):
        if shard not in self._handles:
            if len(self._handles) >= 8:  # a few open maps at a time, whatever the number of shards
                self._handles.pop(next(iter(self._handles)))
            self._handles[shard] = safe_open(str(self.folder / f"shard-{shard:05d}.safetensors"), framework="pt")
        return self._handles[shard]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        if not 0 <= position < self.count:
            raise IndexError(position)
        shard = bisect.bisect_right(self.starts, position) - 1
        row = position - self.starts[shard]
        handle = self._handle(shard)
        return handle.get_slice("latents")[row : row + 1][0], int(handle.get_slice("index")[row : row + 1][0])

    def indices(self) -> np.ndarray:
        """The source dataset's index of every cached position, ``(len(self),)`` int64."""
        return np.concatenate(
            [self._handle(k).get_tensor("index").numpy().astype(np.int64) for k in range(len(self.starts))]
        )

    def __getstate__(self) -> dict:  # open maps do not pickle (DataLoader workers open their own)
        return {**self.__dict__, "_handles": {}}
