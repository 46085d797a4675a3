"""Copy a trained cascade into a bundle: ``python -m training.export --model DIR --out assets/demo [--fp16]``.

Half-precision weights halve the folder (the demo must stay small); they load as float32. With
``--image-size`` (and ``--sr-factor``) the copy is the same weights at another size, to be fine-tuned
there stage by stage (see ``CXRStudio.with_resolution`` and ``training/train_demo.sh``, step 3).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import torch

from cxr_studio import CXRStudio, InputError


class _Parser(argparse.ArgumentParser):
    """The options, with the rule between them checked as part of parsing (so a recipe's check sees it too)."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        if (parsed.sr_factor is not None or parsed.name is not None) and parsed.image_size is None:
            self.error("--sr-factor and --name need --image-size")
        return parsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the trained model folder")
    parser.add_argument("--out", required=True, help="the bundle folder to write")
    parser.add_argument("--fp16", action="store_true", help="store half-precision weights (they load as float32)")
    parser.add_argument("--sampler", help="default sampler of the bundle (ddim, dpmpp, unipc)")
    parser.add_argument("--steps", type=int, help="default latent steps of the bundle")
    parser.add_argument("--guidance", type=float, help="default guidance scale of the bundle")
    parser.add_argument(
        "--guidance-max-timestep",
        type=int,
        help="guide only at timesteps t <= this (default: every step); noisier steps run the conditional model alone",
    )
    parser.add_argument(
        "--layout-min-timestep",
        type=int,
        help="give the layout only at timesteps t >= this (default: every step); the last steps draw from the report",
    )
    parser.add_argument(
        "--side-contrast",
        action=argparse.BooleanOptionalAction,
        help="guide a report that names a side away from its mirror image when no negative report is given",
    )
    parser.add_argument("--sr-sampler", help="default super-resolution sampler of the bundle")
    parser.add_argument("--sr-steps", type=int, help="default super-resolution steps of the bundle")
    parser.add_argument("--image-size", type=int, help="move the cascade to this first-stage size (then fine-tune it)")
    parser.add_argument("--sr-factor", type=int, help="with --image-size: the new super-resolution factor")
    parser.add_argument(
        "--name", help="with --image-size: the configuration's new name (e.g. demo, once at the demo preset's size)"
    )
    parser.add_argument(
        "--no-upscale", action="store_true", help="super-resolution off by default (an SR stage not trained enough)"
    )
    args = parser.parse_args(argv)
    try:
        studio = CXRStudio.from_pretrained(args.model)
        if not isinstance(studio, CXRStudio):
            raise InputError(f"{args.model} is a {studio.family_name} folder; export copies CXR Studio cascades only.")
        if args.image_size is not None:
            studio = studio.with_resolution(image_size=args.image_size, sr_factor=args.sr_factor, name=args.name)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    changes = {
        k: v
        for k, v in (
            ("sampler", args.sampler),
            ("num_steps", args.steps),
            ("guidance_scale", args.guidance),
            ("guidance_max_timestep", args.guidance_max_timestep),
            ("layout_min_timestep", args.layout_min_timestep),
            ("side_contrast", args.side_contrast),
            ("sr_sampler", args.sr_sampler),
            ("sr_num_steps", args.sr_steps),
        )
        if v is not None
    }
    if args.no_upscale:
        changes["upscale"] = False
    if changes:  # the bundle's sampling defaults: what the app's sliders start from
        studio = studio.with_sampling(changes)
    model_hash = studio.save_pretrained(args.out, dtype=torch.float16 if args.fp16 else None)
    print(f"wrote {args.out} ({studio.config.name}@{model_hash[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
