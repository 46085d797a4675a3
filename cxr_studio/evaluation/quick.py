"""Quick figures for a model card, before the full evaluation suite: autoencoder reconstruction on the test
split, and whether effusions land on the side the report names.

``python -m cxr_studio.evaluation.quick --model DIR --manifest M [--n 64] [--sr-images 4 --sr-sampler ddim
--sr-steps 6]``

``--sr-images N`` adds the super-resolution rows (autoencoder + SR, and + bicubic, against the first N test
images at the output resolution) with the given SR sampler and steps: how the bundle's defaults were chosen.

The laterality check is a geometric heuristic that only holds for PA phantoms: a pleural effusion brightens
the lower zone of its hemithorax, so the brighter lower zone (patient's right = image left) calls the side.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def reconstruction(studio: Any, manifest: str, *, n: int = 64, split: str = "test") -> dict[str, float]:
    """MSE, PSNR, SSIM and MS-SSIM of decode(encode(x)) at the low resolution on ``[0, 1]`` images (Cheff table 2,
    row 2): the evaluation's own reconstruction figures on the first ``n`` images of ``split``."""
    from cxr_studio.evaluation.classifier import load_split
    from cxr_studio.evaluation.report import reconstruction as measure

    return measure(studio, load_split(manifest, split, size=studio.image_size, limit=n)[0])["autoencoder"]


def lower_zone_asymmetry(image01: np.ndarray) -> float:
    """Mean brightness of the image-left lower zone minus the image-right one (positive: patient's right)."""
    h, w = image01.shape
    rows = slice(int(0.55 * h), int(0.8 * h))
    return float(image01[rows, int(0.1 * w) : int(0.4 * w)].mean() - image01[rows, int(0.6 * w) : int(0.9 * w)].mean())


def effusion_laterality(studio: Any, *, n: int = 16, num_steps: int | None = None) -> dict[str, float]:
    """Generate large right and left effusions from the same seeds; the side is right when the asymmetry says so."""
    correct, margins = 0, []
    for seed in range(n):
        right = studio.generate("Large right pleural effusion.", seed=seed, upscale=False, num_steps=num_steps).pixels[
            0
        ]
        left = studio.generate("Large left pleural effusion.", seed=seed, upscale=False, num_steps=num_steps).pixels[0]
        a, b = lower_zone_asymmetry(right), lower_zone_asymmetry(left)
        correct += (a > 0) + (b < 0)
        margins.append(a - b)
    return {"accuracy": correct / (2 * n), "mean_asymmetry_difference": float(np.mean(margins)), "pairs": n}


def super_resolution_rows(
    studio: Any, manifest: str, *, n: int, sampler: str | None = None, steps: int | None = None
) -> dict[str, Any]:
    """The evaluation's AE + SR and AE + bicubic rows on the first ``n`` test images, with this SR sampler and
    steps."""
    from cxr_studio.evaluation.classifier import load_split
    from cxr_studio.evaluation.report import reconstruction as measure

    studio = studio.with_sampling(
        {k: v for k, v in (("sr_sampler", sampler), ("sr_num_steps", steps)) if v is not None}
    )
    low = load_split(manifest, "test", size=studio.image_size, limit=n)[0]
    high = load_split(manifest, "test", size=studio.output_size, limit=n)[0]
    rows = measure(studio, low, high_res=high)
    return {
        "sr_sampler": studio.sampling.sr_sampler,
        "sr_num_steps": studio.sampling.sr_num_steps,
        **{k: v for k, v in rows.items() if k != "autoencoder"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_studio.evaluation.quick", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", help="model folder (default: the bundled demo cascade)")
    parser.add_argument("--manifest", required=True, help="the manifest whose test images are the reference")
    parser.add_argument("--n", type=int, default=64, help="images for the reconstruction figures")
    parser.add_argument("--sr-images", type=int, default=0, help="images for the super-resolution figures (0: skip)")
    parser.add_argument("--sr-sampler", help="super-resolution sampler (default: the model's)")
    parser.add_argument("--sr-steps", type=int, help="super-resolution steps (default: the model's)")
    args = parser.parse_args(argv)
    from cxr_studio.model_folders import load_model

    studio = load_model(args.model)
    figures = {
        "model": studio.model_id,
        "reconstruction": reconstruction(studio, args.manifest, n=args.n),
        "effusion_laterality": effusion_laterality(studio, n=max(4, args.n // 4)),
    }
    if args.sr_images:
        figures["super_resolution"] = super_resolution_rows(
            studio, args.manifest, n=args.sr_images, sampler=args.sr_sampler, steps=args.sr_steps
        )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
