"""Training runs as background processes: what the app's Train tab calls.

A run trains a cascade into ``out`` (a model folder) with ``python -m training.train_cascade`` in its own
process group; everything about it lives in ``out.runs/``: the launcher record, the console log, and one
folder per stage with ``progress.json``, ``metrics.jsonl``, sample grids and checkpoints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxr_studio import InputError, jobs
from cxr_studio.config import PRESETS
from cxr_studio.forms import PHANTOM_MANIFEST, Field, choice, text, whole
from training.config import CASCADE_STEPS, LR_SCHEDULES


def runs_dir(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    return out.parent / f"{out.name}.runs"


def start_run(
    *,
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str = "demo",
    steps: dict[str, int] | None = None,
    resume: bool = False,
    extra_args: Sequence[str] = (),
) -> int:
    """Start (or resume) training in a separate process; returns its pid. ``steps`` keys: ae, latent, ae_decoder,
    sr, sr_finetune; ``extra_args`` are any other ``train_cascade`` flags (``["--lr-schedule", "cosine"]``)."""
    if jobs.is_running(runs_dir(out)):
        raise InputError(f"a training run is already writing to {out}; stop it first.")
    if not Path(manifest).is_file():
        raise InputError(f"manifest {manifest} does not exist; make a phantom set or ingest a dataset first.")
    args = ["--manifest", str(manifest), "--out", str(out), "--preset", preset]
    for key, value in (steps or {}).items():
        args += [f"--{key.replace('_', '-')}-steps", str(int(value))]
    args += (["--resume"] if resume else []) + list(extra_args)
    return jobs.start(
        "training.train_cascade", args, runs_dir(out), record={"manifest": str(manifest), "preset": preset}
    )


def start_finetune(
    *,
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: str = "",
    method: str = "lora",
    rank: int = 8,
    max_steps: int = 300,
    prior_report: str = "",
    resume: bool = False,
    extra_args: Sequence[str] = (),
) -> int:
    """Start (or resume) few-shot adaptation of ``model`` (empty: the bundled demo) in a separate process
    (``python -m training.finetune``); ``out`` is the adapter folder. Returns its pid."""
    if jobs.is_running(runs_dir(out)):
        raise InputError(f"a run is already writing to {out}; stop it first.")
    if not Path(manifest).is_file():
        raise InputError(f"manifest {manifest} does not exist; make a phantom set or ingest a dataset first.")
    args = ["--manifest", str(manifest), "--out", str(out), "--method", method, "--rank", str(int(rank))]
    args += ["--max-steps", str(int(max_steps)), *(["--model", model] if model else [])]
    args += (["--prior-report", prior_report] if prior_report else []) + (["--resume"] if resume else [])
    return jobs.start(
        "training.finetune", [*args, *extra_args], runs_dir(out), record={"manifest": str(manifest), "model": model}
    )


def is_running(out: str | os.PathLike[str]) -> bool:
    return jobs.is_running(runs_dir(out))


def stop_run(out: str | os.PathLike[str], *, wait_s: float = 60.0) -> bool:
    """SIGTERM the run: the trainer saves a checkpoint after the current step and exits. True once it has."""
    return jobs.stop(runs_dir(out), wait_s=wait_s)


def read_progress(out: str | os.PathLike[str], *, log_lines: int = 20) -> dict[str, Any]:
    """The newest stage's progress, its loss curve, the latest sample grid and the console tail."""
    folder = runs_dir(out)
    stages = []
    for progress in folder.glob("*/progress.json"):
        try:
            stages.append(json.loads(progress.read_text()) | {"run": progress.parent.name})
        except (json.JSONDecodeError, OSError):  # being replaced right now: read it next time
            continue
    current = max(stages, key=lambda s: s.get("updated", 0), default={})
    losses: list[tuple[int, float]] = []
    if current:
        metrics = folder / current["run"] / "metrics.jsonl"
        for line in metrics.read_text().splitlines() if metrics.is_file() else []:
            record = json.loads(line)
            if "loss" in record:
                losses.append((record["step"], record["loss"]))
    tail = jobs.console_tail(folder, lines=log_lines)
    return {
        "running": is_running(out),
        "stage": current.get("run"),
        "status": current.get("status", "not started"),
        "step": current.get("step", 0),
        "max_steps": current.get("max_steps", 0),
        "loss": current.get("loss"),
        "eta_s": current.get("eta_s"),
        "latest_samples": current.get("latest_samples"),
        "losses": losses,
        "stages": {s["run"]: s.get("status") for s in stages},
        "log": tail,
    }


# ----------------------------------------------------------------------------------------------------
# The Train tab's actions: the form's values in, the text it shows out
# ----------------------------------------------------------------------------------------------------


def start_training(
    *,
    manifest: str,
    out: str,
    preset: str,
    lr_schedule: str,
    resume: bool = False,
    ae: int,
    latent: int,
    sr: int,
    sr_finetune: int,
    ae_decoder: int,
) -> str:
    steps = {"ae": ae, "latent": latent, "ae_decoder": ae_decoder, "sr": sr, "sr_finetune": sr_finetune}
    start_run(
        manifest=manifest,
        out=out,
        preset=preset,
        steps=steps,
        resume=resume,
        extra_args=["--lr-schedule", lr_schedule],
    )
    return f"{'Resumed' if resume else 'Started'} training into `{out}`."


def start_adaptation(
    *, manifest: str, out: str, model: str, method: str, rank: int, max_steps: int, prior_report: str
) -> str:
    start_finetune(
        manifest=manifest,
        out=out,
        model=model,
        method=method,
        rank=rank,
        max_steps=max_steps,
        prior_report=prior_report,
    )
    return f"Started adapting `{model or 'the bundled demo'}` into `{out}`."


def progress_view(out: str) -> tuple[str, Any, str, str | None]:
    """(status line, the loss curve as a DataFrame of step and loss, console tail, latest sample grid) of the run
    writing into ``out``: what the Train tab shows every two seconds."""
    import pandas as pd  # the app's plots take a DataFrame (pandas comes with gradio)

    p = read_progress(out)
    eta = f", ETA {p['eta_s'] / 60:.0f} min" if p.get("eta_s") else ""
    status = f"**{p['stage'] or '—'}**: {p['status']}, step {p['step']}/{p['max_steps']}{eta}; stages {p['stages']}"
    return status, pd.DataFrame(p["losses"], columns=["step", "loss"]), "\n".join(p["log"]), p["latest_samples"]


def stop_view(out: str) -> str:
    # wait_s=0: SIGTERM and return at once; False means "signalled, still finishing its step"
    return "No run is active." if stop_run(out, wait_s=0) else "Stopping after this step (a checkpoint is saved)."


def train_form() -> tuple[Field, ...]:
    """The Train tab's form (:func:`start_training`'s keywords) at the training defaults."""
    stages = {"ae": "Autoencoder", "latent": "Latent", "sr": "SR", "sr_finetune": "SR fine-tune"}
    stages["ae_decoder"] = "Decoder fine-tune (encoder frozen)"
    return (
        text("manifest", "Manifest", PHANTOM_MANIFEST),
        text("out", "Model folder", "runs/my-cascade/model"),
        choice("preset", "Preset", PRESETS, "demo"),
        *(whole(k, f"{label} steps", CASCADE_STEPS[k], row="steps") for k, label in stages.items()),
        choice("lr_schedule", "Learning-rate schedule", LR_SCHEDULES, LR_SCHEDULES[0]),
    )


ADAPT_FORM = (  # start_adaptation's keywords besides the Train form's manifest and out
    text("model", "Base model folder (empty: the bundled demo)"),
    choice("method", "Method", ("lora", "full"), "lora", kind="radio", row="adapt"),
    whole("rank", "LoRA rank", 8, low=1, high=256, row="adapt"),
    whole("max_steps", "Steps", 300, low=1, row="adapt"),
    text("prior_report", "Prior-preservation report (optional)", placeholder="Normal chest radiograph."),
)
