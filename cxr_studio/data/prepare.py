"""Write the training copy of a manifest: shortest edge resized, centre crop, PNG, and a new manifest.

``python -m cxr_studio.data.prepare MANIFEST --size 1024 --out DIR [--workers N] [--bit-depth 8|16]``

Built for hundreds of thousands of images: parallel processes, resumable (each output is written to a
temporary name and renamed, so an existing file is always complete and is not redone), unreadable images
skipped and logged, exact duplicates (same file content) dropped after the first.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cxr_studio import imaging
from cxr_studio.data.manifest import COLUMNS, iter_manifest, manifest_columns, write_manifest
from cxr_studio.errors import InputError
from cxr_studio.files import sha256_file

log = logging.getLogger(__name__)


def _prepare_one(job: tuple[str, str, int, int]) -> tuple[str, str | None, str | None]:
    """(source, target, size, bit depth) -> (source, content hash or None, error or None)."""
    source, target, size, bit_depth = job
    try:
        content = sha256_file(source)
        if not Path(target).is_file():
            image = imaging.resize_center_crop(imaging.read_radiograph(source, name=Path(source).name).display, size)
            imaging.save_png(target, image, bit_depth=bit_depth)  # atomic: a kill leaves no half file
        return source, content, None
    except (InputError, OSError) as err:
        return source, None, str(err)


BLOCK = 4096  # rows in flight at a time: memory stays flat over any manifest length


def prepare(
    manifest: str | os.PathLike[str], out: str | os.PathLike[str], *, size: int, bit_depth: int = 8, workers: int = 1
) -> dict[str, float]:
    """Prepare every row; returns counts and the speed. The new manifest is ``out/manifest.csv``.

    Rows stream through in blocks of :data:`BLOCK` and the new manifest is written as they come, so memory does
    not grow with the manifest; the one thing that does is the duplicate check's 16 bytes per image."""
    if not 32 <= size <= 4096:
        raise InputError(f"--size {size}; 32 to 4096 accepted.")
    if bit_depth not in (8, 16):
        raise InputError(f"--bit-depth {bit_depth}; 8 or 16 accepted.")
    manifest, out = Path(manifest), Path(out)
    extra = tuple(k for k in manifest_columns(manifest) if k not in COLUMNS)
    (out / "images").mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(("rows", "written", "unreadable", "duplicates", "already_done"), 0)
    seen: set[bytes] = set()

    def job_for(row: dict[str, str]) -> tuple[str, str, int, int]:
        source = (manifest.parent / row["path"]).resolve()
        # the name comes from the source path, so a re-run finds the same target (resume)
        name = hashlib.sha1(str(source).encode()).hexdigest()[:20] + ".png"
        return str(source), str(out / "images" / name), size, bit_depth

    def kept(pool: ProcessPoolExecutor) -> Iterator[dict[str, str]]:
        rows = iter_manifest(manifest)
        while block := list(itertools.islice(rows, BLOCK)):
            jobs = [job_for(row) for row in block]
            counts["already_done"] += sum(Path(job[1]).is_file() for job in jobs)
            for row, job, (source, content, error) in zip(block, jobs, pool.map(_prepare_one, jobs, chunksize=16)):
                counts["rows"] += 1
                if error:
                    counts["unreadable"] += 1
                    log.warning("skipped %s: %s", source, error)
                    continue
                digest = bytes.fromhex(content)[:16]
                if digest in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(digest)
                counts["written"] += 1
                yield {**row, "path": os.path.relpath(job[1], out)}
            print(f"\r{counts['rows']} rows", end="", file=sys.stderr, flush=True)

    start = time.perf_counter()
    with ProcessPoolExecutor(max(1, workers)) as pool:
        write_manifest(out / "manifest.csv", kept(pool), extra=extra)
    elapsed = time.perf_counter() - start
    new = counts["rows"] - counts["already_done"]
    return {
        **counts,
        "seconds": elapsed,
        "images_per_s": new / elapsed if elapsed else 0.0,
        "images_per_s_per_worker": new / elapsed / max(1, workers) if elapsed else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="the manifest to prepare")
    parser.add_argument(
        "--size", type=int, default=1024, help="side of the square training copies, 32 to 4096 (default 1024)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for images/ and the new manifest.csv")
    parser.add_argument("--bit-depth", type=int, default=8, choices=(8, 16), help="PNG bit depth of the copies")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="parallel processes (default: every core)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        stats = prepare(args.manifest, args.out, size=args.size, bit_depth=args.bit_depth, workers=args.workers)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"\nprepared {stats['written']} of {stats['rows']} images ({stats['unreadable']} unreadable, "
        f"{stats['duplicates']} duplicates, "
        f"{stats['already_done']} already done) at {stats['images_per_s']:.1f} images/s "
        f"({stats['images_per_s_per_worker']:.1f} per worker); manifest {args.out / 'manifest.csv'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
