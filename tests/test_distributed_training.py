"""Training under ``accelerate launch`` with two CPU processes (gloo): every stage, one latent cache, one writer,
and a run killed with SIGKILL and resumed that ends with the weights of an uninterrupted two-process run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from cxr_studio import CXRStudio

ROOT = Path(__file__).resolve().parents[1]
# the shipped config for CPU processes (two), as the README gives it
TWO_PROCESSES = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--config_file",
    str(ROOT / "training" / "accelerate" / "cpu_processes.yaml"),
    "--num_cpu_threads_per_process",
    "1",
]
FAST = ["--log-every", "2", "--validate-every", "4", "--sample-every", "4", "--sample-steps", "2"]
FAST += ["--checkpoint-every", "2", "--batch-size", "2", "--warmup-steps", "2"]

pytestmark = pytest.mark.slow  # each launch starts three Python processes


def launch(module: str, *args: str, log: Path) -> subprocess.Popen:
    """Two processes of ``python -m module args``, in a process group of their own (to kill them all)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    handle = open(log, "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [*TWO_PROCESSES, "-m", module, *args],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def finished(process: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    process.wait(timeout=timeout)
    text = log.read_text(errors="replace")
    assert process.returncode == 0, text[-4000:]
    return text


def test_every_stage_trains_in_two_processes_with_one_cache_and_one_writer(manifest, tmp_path):
    out = tmp_path / "model"
    steps = ["--ae-steps", "4", "--latent-steps", "4", "--ae-decoder-steps", "2", "--sr-steps", "2"]
    steps += ["--sr-finetune-steps", "2", "--gan-weight", "0.1", "--gan-start", "2"]  # the discriminator too
    args = ["--manifest", str(manifest), "--out", str(out), "--preset", "tiny", *steps, *FAST]
    log = tmp_path / "console.log"
    text = finished(launch("training.train_cascade", *args, log=log), log)
    assert text.count("cached") == 1 and "cached" in text  # the latent cache: encoded by one process only
    runs = out.parent / "model.runs"
    for stage in ("autoencoder", "latent", "autoencoder_decoder", "super_res", "super_res_finetune"):
        config = json.loads((runs / stage / "config.json").read_text())
        assert config["num_processes"] == 2 and config["effective_batch_size"] == 4  # 2 per process x 2
        assert json.loads((runs / stage / "progress.json").read_text())["status"] == "finished"
        assert all((c / "COMPLETE").is_file() for c in (runs / stage / "checkpoints").iterdir())
        assert not list((runs / stage / "checkpoints").glob(".tmp-*"))
        # one writer: each step's training record is in the log once
        records = [json.loads(line) for line in (runs / stage / "metrics.jsonl").read_text().splitlines()]
        logged = [r["step"] for r in records if "lr" in r]
        assert logged and len(logged) == len(set(logged))
    studio = CXRStudio.from_pretrained(out)
    assert studio.generate("Large right pleural effusion.", seed=0).images[0].size == (64, 64)


def test_two_processes_killed_and_resumed_end_with_the_uninterrupted_weights(manifest, tmp_path):
    def args(out: Path) -> list[str]:
        common = ["--manifest", str(manifest), "--out", str(out), "--preset", "tiny", "--max-steps", "12"]
        return [*common, "--gan-weight", "0.1", "--gan-start", "4", *FAST]

    reference = launch("training.train_autoencoder", *args(tmp_path / "a" / "model"), log=tmp_path / "a.log")
    finished(reference, tmp_path / "a.log")
    run = tmp_path / "b" / "model.runs" / "autoencoder"
    process = launch("training.train_autoencoder", *args(tmp_path / "b" / "model"), log=tmp_path / "b.log")
    deadline = time.time() + 300
    while time.time() < deadline and not list((run / "checkpoints").glob("step-*/COMPLETE")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # every process of the run at once: a crash
    process.wait()
    assert json.loads((run / "progress.json").read_text())["step"] < 12, "the run finished before it was killed"
    resumed = launch(
        "training.train_autoencoder", *args(tmp_path / "b" / "model"), "--resume", log=tmp_path / "b2.log"
    )
    finished(resumed, tmp_path / "b2.log")
    a = load_file(
        max((tmp_path / "a" / "model.runs" / "autoencoder" / "checkpoints").glob("step-*")) / "autoencoder.safetensors"
    )
    b = load_file(max((run / "checkpoints").glob("step-*")) / "autoencoder.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_sharded_optimizer_state_trains_the_same_weights(manifest, tmp_path):
    """ZeRO stage 1 (each process keeps half of AdamW's moments) gives the weights of the unsharded run, and its
    checkpoint holds the whole optimizer state (a resume under any sharding reads it)."""
    import torch

    common = ["--manifest", str(manifest), "--preset", "tiny", "--max-steps", "6", *FAST]
    for name, extra in (("plain", []), ("sharded", ["--shard-optimizer"])):
        args = [*common, "--out", str(tmp_path / name / "model"), *extra]
        finished(
            launch("training.train_latent_diffusion", *args, log=tmp_path / f"{name}.log"), tmp_path / f"{name}.log"
        )
    checkpoints = {
        name: max((tmp_path / name / "model.runs" / "latent" / "checkpoints").glob("step-*"))
        for name in ("plain", "sharded")
    }
    for module in ("latent_unet", "report_encoder"):
        a = load_file(checkpoints["plain"] / f"{module}.safetensors")
        b = load_file(checkpoints["sharded"] / f"{module}.safetensors")
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), module
    state = torch.load(checkpoints["sharded"] / "training_state.pt", weights_only=True)["optimizer"]
    plain = torch.load(checkpoints["plain"] / "training_state.pt", weights_only=True)["optimizer"]
    assert len(state["state"]) == len(plain["state"]) > 0  # every parameter's moments, consolidated
