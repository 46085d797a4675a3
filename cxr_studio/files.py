"""Small file helpers shared by model folders and dataset preparation (no heavy imports)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


def bundled(*parts: str) -> Path:
    """A file shipped in ``assets/``: beside the package in a source checkout, else where ``pip install .`` put it
    (``<prefix>/share/cxr-studio/assets``)."""
    source = Path(__file__).resolve().parents[1] / "assets"
    installed = Path(sys.prefix) / "share" / "cxr-studio" / "assets"
    return (source if source.is_dir() else installed).joinpath(*parts)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a file so that ``path`` is, at every moment, absent, the old file or the complete new one: the block
    writes the yielded temporary path beside it, which is then flushed to disk and renamed over ``path`` (a kill
    mid-write leaves no half-written file that looks whole); if the block raises, the temporary file goes."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that a killed :func:`replacing` left under ``folder`` (a SIGKILL skips its
    cleanup); call it only while nothing writes there. Returns what went."""
    leftovers = sorted(Path(folder).rglob("*.partial"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """``data`` written to ``path`` through :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
