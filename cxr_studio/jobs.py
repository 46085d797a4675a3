"""Background jobs: a ``python -m MODULE ...`` process in its own process group, recorded in a folder; the one API
through which the app starts, polls and stops training runs, adaptations and dataset synthesis.

What the app's long tasks (training, dataset synthesis) share: the job's folder holds ``launcher.json``
(pid, command, start time) and ``console.log``; Stop sends SIGTERM to the group, and each task's own code
saves its state and exits after the current step or batch. A job outlives the app that started it; a new
app finds it through its folder.
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

from cxr_studio.errors import InputError
from cxr_studio.files import write_atomic

LAUNCHER = "launcher.json"
CONSOLE = "console.log"
ROOT = Path(__file__).resolve().parents[1]  # jobs run from the repository root, as the README's commands do


def start(
    module: str, args: Sequence[str], folder: str | os.PathLike[str], *, record: dict[str, Any] | None = None
) -> int:
    """Start ``python -m module args...`` recording into ``folder``; returns its pid. One job per folder."""
    if is_running(folder):
        raise InputError(f"a job is already running for {folder}; stop it first.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", module, *map(str, args)]
    with open(folder / CONSOLE, "a") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    launcher = {"pid": process.pid, "argv": argv, "started": time.time(), **(record or {})}
    write_atomic(folder / LAUNCHER, json.dumps(launcher, indent=2).encode())
    return process.pid


def _pid(folder: str | os.PathLike[str]) -> int | None:
    launcher = Path(folder) / LAUNCHER
    return json.loads(launcher.read_text())["pid"] if launcher.is_file() else None


def is_running(folder: str | os.PathLike[str]) -> bool:
    pid = _pid(folder)
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


def stop(folder: str | os.PathLike[str], *, wait_s: float = 60.0) -> bool:
    """SIGTERM the job's process group; True once it has exited (``wait_s=0``: signal and return at once)."""
    pid = _pid(folder)
    if pid is None or not is_running(folder):
        return True
    os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if not is_running(folder):
            return True
        time.sleep(0.2)
    return not is_running(folder)


def console_tail(folder: str | os.PathLike[str], *, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of the job's console (progress bars' carriage returns as line breaks)."""
    console = Path(folder) / CONSOLE
    if not console.is_file():
        return []
    with open(console, "rb") as handle:  # the tail only: a long job's console grows without bound
        handle.seek(max(0, console.stat().st_size - 64_000))
        text = handle.read().decode(errors="replace")
    return text.replace("\r", "\n").splitlines()[-lines:]


# --- training runs and adaptations (python -m training.train_cascade / training.finetune) --------------------------


def runs_dir(out: str | os.PathLike[str]) -> Path:
    """Where a training run into the model folder ``out`` keeps its launcher, console and stage folders."""
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
    if is_running(runs_dir(out)):
        raise InputError(f"a training run is already writing to {out}; stop it first.")
    if not Path(manifest).is_file():
        raise InputError(f"manifest {manifest} does not exist; make a phantom set or ingest a dataset first.")
    args = ["--manifest", str(manifest), "--out", str(out), "--preset", preset]
    for key, value in (steps or {}).items():
        args += [f"--{key.replace('_', '-')}-steps", str(int(value))]
    args += (["--resume"] if resume else []) + list(extra_args)
    return start("training.train_cascade", args, runs_dir(out), record={"manifest": str(manifest), "preset": preset})


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
    if is_running(runs_dir(out)):
        raise InputError(f"a run is already writing to {out}; stop it first.")
    if not Path(manifest).is_file():
        raise InputError(f"manifest {manifest} does not exist; make a phantom set or ingest a dataset first.")
    args = ["--manifest", str(manifest), "--out", str(out), "--method", method, "--rank", str(int(rank))]
    args += ["--max-steps", str(int(max_steps)), *(["--model", model] if model else [])]
    args += (["--prior-report", prior_report] if prior_report else []) + (["--resume"] if resume else [])
    record = {"manifest": str(manifest), "model": model}
    return start("training.finetune", [*args, *extra_args], runs_dir(out), record=record)


def run_is_running(out: str | os.PathLike[str]) -> bool:
    """Whether a training or adaptation run is writing into the model folder ``out``."""
    return is_running(runs_dir(out))


def stop_run(out: str | os.PathLike[str], *, wait_s: float = 60.0) -> bool:
    """SIGTERM the run: the trainer saves a checkpoint after the current step and exits. True once it has."""
    return stop(runs_dir(out), wait_s=wait_s)


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
    tail = console_tail(folder, lines=log_lines)
    return {
        "running": run_is_running(out),
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
