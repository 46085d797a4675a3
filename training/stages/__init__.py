"""The three stages of the cascade as tasks for the generic loop (Cheff 7.3; Medfusion for the autoencoder loss):
one module per stage, the model surgery that changes a trained cascade's architecture in :mod:`.surgery`.

Each task reads the model folder ``config.out`` (or starts from ``config.preset``), trains its part and writes the
whole cascade back with :meth:`CXRStudio.save_pretrained`, so after every stage the folder loads with
``CXRStudio.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxr_studio import InputError
from training.config import TrainConfig
from training.loop import run
from training.stages.autoencoder import AutoencoderTask
from training.stages.common import load_or_create
from training.stages.latent import LatentTask
from training.stages.super_res import SuperResTask

TASKS = {"autoencoder": AutoencoderTask, "latent": LatentTask, "super_res": SuperResTask}


def build_task(config: TrainConfig) -> Any:
    """The cascade stage ``config.stage`` on the folder ``config.out`` (or a new one of ``config.preset``);
    fine-tuning's task is :func:`training.finetune.build`."""
    if config.stage not in TASKS:
        raise InputError(f"stage {config.stage!r} is not a cascade stage; accepted: {', '.join(TASKS)}.")
    return TASKS[config.stage](config, load_or_create(config))


def train(config: TrainConfig) -> Path:
    """Run one cascade stage to completion (or until stopped); returns its run folder."""
    return run(config, build_task)
