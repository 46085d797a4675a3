"""Train every stage of the cascade in order and leave a folder that ``CXRStudio.from_pretrained`` loads.

``python -m training.train_cascade --manifest M --preset {tiny,demo,demo128,cheff} --out DIR``

Stages: autoencoder -> report encoder + latent UNet (on cached latents of the trained autoencoder) ->
optionally the decoder alone, fine-tuned with the encoder frozen (``--ae-decoder-steps``; the latents do not
change) -> super-resolution on (downsampled, original) pairs -> super-resolution fine-tuned on autoencoder
reconstructions (Cheff 7.3). Every other setting is a flag applied to all stages (``--batch-size 16``);
``--resume`` skips finished stages and continues the interrupted one from its newest checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence

from cxr_studio import InputError
from cxr_studio.config import CASCADE_STEPS
from training.config import TrainConfig, add_arguments, from_arguments
from training.loop import setup_logging

# (stage, steps flag, overrides); the step counts scale with --steps-scale
STAGE_PLAN = (
    ("autoencoder", "ae_steps", {}),
    ("latent", "latent_steps", {}),
    ("autoencoder", "ae_decoder_steps", {"ae_freeze_encoder": True}),
    ("super_res", "sr_steps", {"sr_low_res": "bicubic"}),
    ("super_res", "sr_finetune_steps", {"sr_low_res": "autoencoder"}),
)


def plan(base: TrainConfig, steps: dict[str, int]) -> list[TrainConfig]:
    """The stage configs of one cascade run; stages with 0 steps are left out."""
    return [
        dataclasses.replace(base, stage=stage, max_steps=steps[flag], **overrides)
        for stage, flag, overrides in STAGE_PLAN
        if steps[flag] > 0
    ]


def finished(config: TrainConfig) -> bool:
    progress = config.run_dir / "progress.json"
    return progress.is_file() and json.loads(progress.read_text()).get("status") == "finished"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, skip=("stage", "max_steps"))
    for stage, default in CASCADE_STEPS.items():
        parser.add_argument(
            f"--{stage.replace('_', '-')}-steps",
            type=int,
            default=default,
            help=f"steps of this stage (default {default}; 0 skips it)",
        )
    args = parser.parse_args(argv)
    if not args.manifest:
        parser.error("--manifest is required")
    setup_logging()
    from training.stages import train

    steps = {
        "ae_steps": args.ae_steps,
        "latent_steps": args.latent_steps,
        "ae_decoder_steps": args.ae_decoder_steps,
        "sr_steps": args.sr_steps,
        "sr_finetune_steps": args.sr_finetune_steps,
    }
    start = time.perf_counter()
    try:
        base = from_arguments(args, stage="autoencoder")
        for config in plan(base, steps):
            if config.resume and finished(config):
                print(f"{config.run_name}: already finished, skipped")
                continue
            resume = config.resume and config.run_dir.joinpath("checkpoints").is_dir()
            train(dataclasses.replace(config, resume=resume))
    except (InputError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"cascade trained in {time.perf_counter() - start:.0f} s: CXRStudio.from_pretrained({args.out!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
