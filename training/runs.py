"""Training runs as background processes: what the app's Train tab calls.

A run trains a cascade into ``out`` (a model folder) with ``python -m training.train_cascade`` in its own
process group; everything about it lives in ``out.runs/``: the launcher record, the console log, and one
folder per stage with ``progress.json``, ``metrics.jsonl``, sample grids and checkpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxr_studio import InputError

LAUNCHER = "launcher.json"
CONSOLE = "console.log"


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
    """Start (or resume) training in a separate process; returns its pid. ``steps`` keys: ae, latent, ae_decoder, sr, sr_finetune;
    ``extra_args`` are any other ``train_cascade`` flags (``["--lr-schedule", "cosine"]``)."""
    if is_running(out):
        raise InputError(f"a training run is already writing to {out}; stop it first.")
    if not Path(manifest).is_file():
        raise InputError(f"manifest {manifest} does not exist; make a phantom set or ingest a dataset first.")
    folder = runs_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "training.train_cascade",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--preset",
        preset,
    ]
    for key, value in (steps or {}).items():
        argv += [f"--{key.replace('_', '-')}-steps", str(int(value))]
    argv += (["--resume"] if resume else []) + list(extra_args)
    root = Path(__file__).resolve().parents[1]
    with open(folder / CONSOLE, "a") as log:
        process = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    record = {"pid": process.pid, "argv": argv, "started": time.time(), "manifest": str(manifest), "preset": preset}
    (folder / LAUNCHER).write_text(json.dumps(record, indent=2))
    return process.pid


def _pid(out: str | os.PathLike[str]) -> int | None:
    launcher = runs_dir(out) / LAUNCHER
    return json.loads(launcher.read_text())["pid"] if launcher.is_file() else None


def is_running(out: str | os.PathLike[str]) -> bool:
    pid = _pid(out)
    if pid is None:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it was our child and has exited
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_run(out: str | os.PathLike[str], *, wait_s: float = 60.0) -> bool:
    """SIGTERM the run: the trainer saves a checkpoint after the current step and exits. True once it has."""
    pid = _pid(out)
    if pid is None or not is_running(out):
        return True
    os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if not is_running(out):
            return True
        time.sleep(0.2)
    return False


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
    console = folder / CONSOLE
    tail = (
        console.read_text(errors="replace").replace("\r", "\n").splitlines()[-log_lines:] if console.is_file() else []
    )
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
