"""Background jobs: a ``python -m MODULE ...`` process in its own process group, recorded in a folder.

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
