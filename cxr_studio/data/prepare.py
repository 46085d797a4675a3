"""Write the training copy of a manifest: shortest edge resized, centre crop, PNG, and a new manifest.

``python -m cxr_studio.data.prepare MANIFEST --size 1024 --out DIR [--workers N] [--bit-depth 8|16]``

Built for hundreds of thousands of images: parallel processes, resumable (each output is written to a
temporary name and renamed, so an existing file is always complete and is not redone), unreadable images
skipped and logged, exact duplicates (same file content) dropped after the first.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Sequence
from pathlib import Path

from cxr_studio import imaging
from cxr_studio.data.manifest import COLUMNS, read_manifest, write_manifest
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


def prepare(manifest: str | os.PathLike[str], out: str | os.PathLike[str], *, size: int, bit_depth: int = 8, workers: int = 1) -> dict[str, float]:
    """Prepare every row; returns counts and the speed. The new manifest is ``out/manifest.csv``."""
    if not 32 <= size <= 4096:
        raise InputError(f"--size {size}; 32 to 4096 accepted.")
    if bit_depth not in (8, 16):
        raise InputError(f"--bit-depth {bit_depth}; 8 or 16 accepted.")
    manifest, out = Path(manifest), Path(out)
    rows = read_manifest(manifest)
    (out / "images").mkdir(parents=True, exist_ok=True)
    jobs = []
    for row in rows:
        source = (manifest.parent / row["path"]).resolve()
        # the name comes from the source path, so a re-run finds the same target (resume)
        name = hashlib.sha1(str(source).encode()).hexdigest()[:20] + ".png"
        jobs.append((str(source), str(out / "images" / name), size, bit_depth))
    start = time.perf_counter()
    results = {}
    done_before = sum(Path(job[1]).is_file() for job in jobs)
    with ProcessPoolExecutor(max(1, workers)) as pool:
        for number, (source, content, error) in enumerate(pool.map(_prepare_one, jobs, chunksize=16), start=1):
            results[source] = (content, error)
            if error:
                log.warning("skipped %s: %s", source, error)
            if number % 500 == 0:
                print(f"\r{number}/{len(jobs)}", end="", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    seen: set[str] = set()
    kept, unreadable, duplicates = [], 0, 0
    for row, job in zip(rows, jobs):
        content, error = results[job[0]]
        if error:
            unreadable += 1
            continue
        if content in seen:
            duplicates += 1
            continue
        seen.add(content)
        kept.append({**row, "path": os.path.relpath(job[1], out)})
    extra = tuple(k for k in rows[0] if k not in COLUMNS)
    write_manifest(out / "manifest.csv", kept, extra=extra)
    new = len(jobs) - done_before
    return {"rows": len(rows), "written": len(kept), "unreadable": unreadable, "duplicates": duplicates,
            "already_done": done_before, "seconds": elapsed, "images_per_s": new / elapsed if elapsed else 0.0,
            "images_per_s_per_worker": new / elapsed / max(1, workers) if elapsed else 0.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bit-depth", type=int, default=8, choices=(8, 16))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        stats = prepare(args.manifest, args.out, size=args.size, bit_depth=args.bit_depth, workers=args.workers)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"\nprepared {stats['written']} of {stats['rows']} images ({stats['unreadable']} unreadable, {stats['duplicates']} duplicates, "
        f"{stats['already_done']} already done) at {stats['images_per_s']:.1f} images/s "
        f"({stats['images_per_s_per_worker']:.1f} per worker); manifest {args.out / 'manifest.csv'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
