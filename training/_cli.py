"""Shared command line of the single-stage entry points."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cxr_studio import InputError
from training.config import TrainConfig, add_arguments, from_arguments
from training.loop import Task, run, setup_logging


def main_for_stage(
    stage: str,
    description: str,
    argv: Sequence[str] | None = None,
    *,
    build: Callable[[TrainConfig], Task],
    **fixed: object,
) -> int:
    """The entry point of one stage: its flags (every :class:`TrainConfig` field), then :func:`training.loop.run`
    with the entry point's own task ``build``."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser, skip=("stage", *fixed))
    args = parser.parse_args(argv)
    setup_logging()
    try:
        config = from_arguments(args, stage=stage, **fixed)
        if not config.manifest:
            parser.error("--manifest is required")
        run_dir = run(config, build)
    except (InputError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{stage}: run folder {run_dir}; model folder {config.out}")
    return 0
