"""Device-removal benchmark on phantoms: we know each patient without devices, so removal can be scored.

``python -m cxr_studio.evaluation.device_removal [--model DIR] [--n 24] [--size 256] [--seed K] [--strength S]
[--report R] [--out FILE.json]``

For every phantom case with a device: mask = the device mask grown by ``grow_px``; the cascade inpaints
it ("remove device"); inside the mask the result is compared with the same patient rendered without
devices (PSNR, SSIM) and the device signal left is measured (the share of the device's brightness that
remains). scikit-image's biharmonic inpainting on the same masks is the classical baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import inpaint_biharmonic

from cxr_studio.data.phantom import Device, render_case
from cxr_studio.editing.masks import grow
from cxr_studio.labels import SIDED_DEVICE_NAMES

# Every sided device on its usual side (generators left, lines and tubes right), then two unsided ones
DEVICE_CHOICES = (
    *((name, "left" if name in ("pacemaker", "icd") else "right") for name in SIDED_DEVICE_NAMES),
    ("ecg_leads", None),
    ("sternotomy_wires", None),
)


def score(result: np.ndarray, clean: np.ndarray, with_device: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM inside the mask's bounding box against the device-free truth; device signal left."""
    rows, cols = np.nonzero(mask)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    region = mask[box]
    a, b = result[box], clean[box]
    psnr = peak_signal_noise_ratio(b[region], a[region], data_range=1.0)
    window = max(3, min(7, min(a.shape) - (1 - min(a.shape) % 2)))
    ssim_map = structural_similarity(b, a, data_range=1.0, win_size=window | 1, full=True)[1]
    device = np.clip(with_device - clean, 0, None)[mask].sum()
    left = np.clip(result - clean, 0, None)[mask].sum()
    return {
        "psnr": float(psnr),
        "ssim": float(ssim_map[region].mean()),
        "device_signal_left": float(left / max(device, 1e-9)),
    }


def run(
    studio: Any,
    *,
    n: int = 24,
    size: int = 256,
    grow_px: int = 3,
    seed: int = 0,
    num_steps: int | None = None,
    strength: float | None = None,
    report: str = "",
) -> dict[str, Any]:
    """Both methods on ``n`` cases; ``strength`` and ``report`` override the "remove device" preset's."""
    cases, ours, classic = [], [], []
    start = time.perf_counter()
    for k in range(n):
        name, side = DEVICE_CHOICES[k % len(DEVICE_CHOICES)]
        case = render_case(
            np.random.default_rng([seed, 5000 + k]), size=size, findings=None, devices=[Device(name, side)]
        )
        if not case.device_mask.any():
            continue
        mask = grow(case.device_mask, grow_px)
        edited = studio.inpaint(
            case.image,
            mask,
            preset="remove device",
            grow_px=0,
            seed=k,
            num_steps=num_steps,
            strength=strength,
            report=report,
        )
        baseline = inpaint_biharmonic(case.image.astype(np.float64), mask)
        ours.append(score(edited.display, case.clean, case.image, mask))
        classic.append(score(baseline.astype(np.float32), case.clean, case.image, mask))
        cases.append(name)
    mean = lambda rows, key: float(np.mean([r[key] for r in rows]))
    summary = {
        method: {key: mean(rows, key) for key in ("psnr", "ssim", "device_signal_left")}
        for method, rows in (("cascade", ours), ("biharmonic", classic))
    }
    return {
        "model": studio.model_id,
        "cases": len(cases),
        "size": size,
        "grow_px": grow_px,
        "seconds": time.perf_counter() - start,
        "summary": summary,
        "per_device": {
            d: {
                "cascade": mean([r for r, c in zip(ours, cases) if c == d], "psnr"),
                "biharmonic": mean([r for r, c in zip(classic, cases) if c == d], "psnr"),
            }
            for d in sorted(set(cases))
        },
        "cascade_beats_baseline_psnr": summary["cascade"]["psnr"] > summary["biharmonic"]["psnr"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_studio.evaluation.device_removal", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", help="model folder (default: the bundled demo cascade)")
    parser.add_argument("--n", type=int, default=24, help="phantom cases with devices to remove")
    parser.add_argument("--size", type=int, default=256, help="image side of the cases in pixels")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--strength", type=float, help="override the preset's strength (0.4)")
    parser.add_argument(
        "--report", default="", help="report for the region (default: the preset's, 'No support devices.')"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the cases (0: the benchmark's; others to validate)"
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    from cxr_studio.model_folders import load_model

    studio = load_model(args.model)
    results = run(
        studio,
        n=args.n,
        size=args.size,
        seed=args.seed,
        num_steps=args.steps,
        strength=args.strength,
        report=args.report,
    )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
