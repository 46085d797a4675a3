"""Speed and memory figures: ``python -m cxr_studio.benchmark [--only phantom] [--out FILE.json]``.

Targets are checked here and reported in notes, never as timed tests. Each section prints one line per
measurement and the whole run is written as JSON with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    info: dict[str, object] = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def bench_phantom(size: int = 256, n: int = 200) -> dict[str, float]:
    """Phantom images per second on one core: rendering alone, and rendering plus writing the dataset."""
    from cxr_studio.data.phantom import render_case, write_dataset

    render_case(0, size=size)  # warm-up (imports, allocator)
    start = time.perf_counter()
    for i in range(n):
        render_case(np.random.default_rng([0, i]), size=size)
    render_rate = n / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_dataset(folder, n=n, size=size, seed=0, quiet=True)
        write_rate = n / (time.perf_counter() - start)
    return {"size": size, "images": n, "render_images_per_s": render_rate, "render_and_write_images_per_s": write_rate}


SECTIONS: dict[str, Callable[[], dict[str, float]]] = {"phantom": bench_phantom}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--out", type=Path, help="write the JSON results here")
    parser.add_argument("--all-cores", action="store_true", help="do not pin the process to one CPU core")
    args = parser.parse_args(argv)
    one_core = not args.all_cores and hasattr(os, "sched_setaffinity")
    if one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results: dict[str, object] = {"machine": machine(), "one_core": one_core}
    for name in args.only or sorted(SECTIONS):
        results[name] = SECTIONS[name]()
        print(name, json.dumps(results[name], default=float), flush=True)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = json.dumps(results, indent=2, default=float)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
