"""Short recipe experiments on the latent stage (issue 17's log in assets/demo/MODEL_CARD.md).

``python -m training.recipe_experiments --model DIR --variant coords --steps 800`` fine-tunes DIR's latent
stage in place (tokenizer and report encoder kept) under one variant of its preset, 128 px first because
a run takes minutes there. The 128 px bundle the log starts from is in the repository's history:
``git archive 3e2e3a4 assets/demo | tar -x -C runs/exp && mv runs/exp/assets/demo runs/exp/model``.

Variants: ``eps`` (the folder's own epsilon schedule, more steps: the control), ``vzero`` (v-prediction, zero
terminal SNR, trailing timesteps, no clip), ``coords`` (``vzero`` plus two coordinate channels).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from cxr_studio.config import PRESETS
from training.config import TrainConfig
from training.loop import setup_logging
from training.stages import train

VARIANTS = ("eps", "vzero", "coords")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.recipe_experiments", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model", required=True, help="model folder whose latent stage is fine-tuned (changed in place)"
    )
    parser.add_argument(
        "--variant", choices=VARIANTS, required=True, help="what changes against the folder's latent stage"
    )
    parser.add_argument(
        "--preset", default="demo128", help="the folder's preset; v variants take demo's schedule and clip"
    )
    parser.add_argument("--manifest", default="data/phantom512/manifest.csv", help="training manifest (the demo's)")
    parser.add_argument("--steps", type=int, default=800, help="training steps (batch 16, lr 2e-4, cosine)")
    parser.add_argument("--snr-gamma", type=float, default=0.0, help="min-SNR-gamma loss weighting (0: off)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its newest checkpoint")
    args = parser.parse_args(argv)
    base, target = PRESETS[args.preset], PRESETS["demo"]  # the v variants take demo's schedule and clip
    if args.variant != "eps":
        coordinates = 2 if args.variant == "coords" else 0
        PRESETS[args.preset] = base.replace(
            latent_schedule=target.latent_schedule,
            latent_unet=dataclasses.replace(base.latent_unet, coordinate_channels=coordinates),
            sampling=dataclasses.replace(base.sampling, latent_clip=target.sampling.latent_clip),
        )
    setup_logging()
    train(
        TrainConfig(
            stage="latent",
            manifest=args.manifest,
            out=args.model,
            preset=args.preset,
            seed=0,
            mixed_precision="bf16",
            latent_keep_encoder=True,
            latent_reschedule=args.variant != "eps",
            max_steps=args.steps,
            batch_size=16,
            lr=2e-4,
            warmup_steps=50,
            lr_schedule="cosine",
            validate_every=200,
            sample_every=0,
            checkpoint_every=200,
            snr_gamma=args.snr_gamma,
            resume=args.resume,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
