"""Small file helpers shared by model folders and dataset preparation (no heavy imports)."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that ``path`` is, at every moment, absent, the old file or the complete new one:
    a temporary file beside it, flushed to disk, then renamed over it (a kill mid-write leaves no
    half-written export)."""
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.partial"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
