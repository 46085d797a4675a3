"""Training on the tiny preset: the whole cascade, exact resume after a kill, bad images, NaN losses, runs API."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cxr_studio import CXRStudio, InputError, jobs
from cxr_studio.config import PRESETS
from training.config import TrainConfig
from training.loop import Trainer, learning_rate_schedule
from training.stages import build_task, train
from training.train_cascade import main as train_cascade

ROOT = Path(__file__).resolve().parents[1]
FAST = {
    "log_every": 2,
    "validate_every": 4,
    "sample_every": 4,
    "checkpoint_every": 2,
    "sample_steps": 2,
    "batch_size": 4,
    "warmup_steps": 2,
}


def config(manifest: Path, out: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{"manifest": str(manifest), "out": str(out), "preset": "tiny", **FAST, **overrides})


def test_cascade_trains_end_to_end_and_loads(manifest, tmp_path):
    out = tmp_path / "model"
    argv = [
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--ae-steps",
        "4",
        "--latent-steps",
        "4",
        "--ae-decoder-steps",
        "2",
        "--sr-steps",
        "2",
        "--sr-finetune-steps",
        "2",
        "--batch-size",
        "4",
        "--sample-every",
        "4",
        "--sample-steps",
        "2",
    ]
    assert train_cascade(argv) == 0
    studio = CXRStudio.from_pretrained(out)
    assert studio.generate("Large right pleural effusion.", seed=0).images[0].size == (64, 64)
    for stage in ("autoencoder", "latent", "autoencoder_decoder", "super_res", "super_res_finetune"):
        run = out.parent / "model.runs" / stage
        assert json.loads((run / "progress.json").read_text())["status"] == "finished"
        assert list((run / "samples").glob("*.png")), f"{stage} wrote no sample grid"
        assert (run / "metrics.jsonl").read_text().strip()
        assert all((c / "COMPLETE").is_file() for c in (run / "checkpoints").iterdir())
    saved = json.loads((run / "config.json").read_text())
    assert saved["sr_low_res"] == "autoencoder" and saved["max_steps"] == 2  # the full config travels with the run
    # the latent stage learned its vocabulary from the training reports
    assert "effusion" in studio.tokenizer.get_vocab()
    assert studio.config.autoencoder.scaling_factor != 1.0  # set from the latents' spread


def final_weights(run_dir: Path) -> dict:
    newest = max((run_dir / "checkpoints").glob("step-*"))
    return load_file(newest / "autoencoder.safetensors")


@pytest.mark.slow
def test_killed_then_resumed_run_matches_an_uninterrupted_run(manifest, tmp_path):
    steps = 30
    reference = config(manifest, tmp_path / "a" / "model", stage="autoencoder", max_steps=steps)
    train(reference)
    resumed = config(manifest, tmp_path / "b" / "model", stage="autoencoder", max_steps=steps)
    argv = [
        sys.executable,
        "-m",
        "training.train_autoencoder",
        "--manifest",
        str(manifest),
        "--out",
        resumed.out,
        "--preset",
        "tiny",
        "--max-steps",
        str(steps),
    ] + [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = resumed.run_dir / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (checkpoints.is_dir() and any(checkpoints.glob("step-*/COMPLETE"))):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # a crash, not a polite stop: no chance to save anything more
    process.wait()
    done = json.loads((resumed.run_dir / "progress.json").read_text())["step"]
    assert done < steps, "the run finished before it could be killed"
    train(TrainConfig(**{**resumed.__dict__, "resume": True}))
    a, b = final_weights(reference.run_dir), final_weights(resumed.run_dir)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_learning_rate_schedules_warm_up_then_hold_or_decay_and_survive_a_longer_resume():
    def lrs(schedule: str, max_steps: int, *, state: dict | None = None, steps: int) -> tuple[list[float], dict]:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        scheduler = learning_rate_schedule(
            optimizer, TrainConfig(lr_schedule=schedule, max_steps=max_steps, warmup_steps=10)
        )
        if state is not None:
            scheduler.load_state_dict(state)
        seen = []
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
            seen.append(scheduler.get_last_lr()[0])
        return seen, scheduler.state_dict()

    constant, _ = lrs("constant", 100, steps=100)
    assert constant[0] < constant[4] < constant[20] == constant[-1] == pytest.approx(1e-3)
    cosine, state = lrs("cosine", 100, steps=50)
    assert max(cosine) == pytest.approx(1e-3, rel=0.02) and all(a >= b for a, b in itertools.pairwise(cosine[10:]))
    assert cosine[-1] == pytest.approx(0.5e-3 * (1 + np.cos(np.pi * 40 / 90)))  # 40 of the 90 decay steps done
    resumed, _ = lrs(
        "cosine", 200, state=state, steps=150
    )  # resumed with --max-steps 200: the longer curve from step 50
    assert resumed[0] > cosine[-1] and resumed[-1] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def component_weights(folder: Path, name: str) -> dict:
    return load_file(next((folder / name).glob("*.safetensors")))


def test_decoder_only_fine_tuning_keeps_the_encoder_and_its_latents(manifest, tmp_path):
    first, out = tmp_path / "a" / "model", tmp_path / "b" / "model"
    train(config(manifest, first, stage="autoencoder", max_steps=2))
    # fine-tune a trained folder in a run of its own, at twice the size (the demo's move to 256 px)
    CXRStudio.from_pretrained(first).with_resolution(image_size=64).save_pretrained(out)
    train(config(manifest, out, stage="autoencoder", max_steps=4, ae_freeze_encoder=True, lr=1e-2, warmup_steps=1))
    before, after = component_weights(first, "autoencoder"), component_weights(out, "autoencoder")
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    scaling = [
        json.loads((f / "studio_config.json").read_text())["autoencoder"]["scaling_factor"] for f in (first, out)
    ]
    assert scaling[0] == scaling[1]  # same encoder, same scale: the latent stage stays valid (at any size)


def test_super_resolution_can_restart_with_another_prediction_type(manifest, tmp_path, monkeypatch):
    out = tmp_path / "model"
    train(config(manifest, out, stage="super_res", max_steps=2))
    before = {name: component_weights(out, name) for name in ("autoencoder", "super_res_unet")}
    tiny = PRESETS["tiny"]
    monkeypatch.setitem(
        PRESETS,
        "tiny",
        tiny.replace(sr_schedule=dataclasses.replace(tiny.sr_schedule, prediction_type="v_prediction")),
    )
    train(config(manifest, out, stage="super_res", max_steps=2, sr_reinit=True, sr_low_res="autoencoder"))
    studio = CXRStudio.from_pretrained(out)
    assert studio.config.sr_schedule.prediction_type == "v_prediction"
    assert studio.config.latent_schedule == tiny.latent_schedule  # only the SR stage's settings changed
    after = {name: component_weights(out, name) for name in before}
    assert all(torch.equal(before["autoencoder"][k], after["autoencoder"][k]) for k in before["autoencoder"])
    assert any(
        not torch.equal(before["super_res_unet"][k], after["super_res_unet"][k]) for k in before["super_res_unet"]
    )
    assert studio.upscale(np.full((32, 32), 0.5, np.float32), seed=0, num_steps=2).size == (64, 64)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops(manifest, tmp_path):
    out = tmp_path / "model"
    argv = [
        sys.executable,
        "-m",
        "training.train_autoencoder",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--max-steps",
        "100000",
        "--checkpoint-every",
        "100000",
        "--sample-every",
        "100000",
        "--validate-every",
        "100000",
    ]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = out.parent / "model.runs" / "autoencoder" / "progress.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (progress.is_file() and json.loads(progress.read_text())["step"] >= 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    state = json.loads(progress.read_text())
    assert state["status"] == "stopped"
    assert list((progress.parent / "checkpoints").glob("step-*/COMPLETE"))


def test_unreadable_image_is_skipped_and_logged(manifest, tmp_path, caplog):
    copy = tmp_path / "data"
    copy.mkdir()
    rows = manifest.read_text().splitlines()
    for name in ("images", "clean", "masks"):
        os.symlink(manifest.parent / name, copy / name)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    first_path = rows[1].split(",")[0]
    (copy / "manifest.csv").write_text("\n".join([rows[0], rows[1].replace(first_path, str(bad)), *rows[2:]]) + "\n")
    with caplog.at_level(logging.WARNING):
        train(config(copy / "manifest.csv", tmp_path / "model", stage="autoencoder", max_steps=4, batch_size=20))
    assert "skipping unreadable image" in caplog.text
    assert "not really" not in caplog.text


def test_nan_losses_skip_steps_then_abort_with_a_clear_message(manifest, tmp_path):
    cfg = config(manifest, tmp_path / "model", stage="autoencoder", max_steps=20, max_bad_steps=3)
    task = build_task(cfg)
    real_loss = task.loss
    calls = {"n": 0}

    def sometimes_nan(batch, *, step, generator):
        calls["n"] += 1
        loss, logs = real_loss(batch, step=step, generator=generator)
        return (loss * float("nan"), logs) if step >= 2 else (loss, logs)

    task.loss = sometimes_nan
    with pytest.raises(FloatingPointError, match="NaN or infinite 3 steps in a row"):
        Trainer(cfg, task).run()
    assert json.loads((cfg.run_dir / "progress.json").read_text())["status"] == "failed"


def test_existing_run_without_resume_is_refused(manifest, tmp_path):
    cfg = config(manifest, tmp_path / "model", stage="autoencoder", max_steps=2)
    train(cfg)
    from cxr_studio import InputError

    with pytest.raises(InputError, match="--resume"):
        train(cfg)


@pytest.mark.slow
def test_runs_api_starts_reports_stops_and_resumes(manifest, tmp_path):
    out = tmp_path / "model"
    steps = {"ae": 100000, "latent": 0, "sr": 0, "sr_finetune": 0}
    jobs.start_run(
        manifest=manifest,
        out=out,
        preset="tiny",
        steps=steps,
        extra_args=["--log-every", "1", "--checkpoint-every", "100000", "--lr-schedule", "cosine"],
    )
    deadline = time.time() + 120
    while time.time() < deadline and jobs.read_progress(out)["step"] < 3:
        time.sleep(0.1)
    progress = jobs.read_progress(out)
    assert progress["running"] and progress["stage"] == "autoencoder" and progress["losses"]
    assert (
        json.loads((out.parent / "model.runs" / "autoencoder" / "config.json").read_text())["lr_schedule"] == "cosine"
    )
    assert jobs.stop_run(out)
    assert jobs.read_progress(out)["status"] == "stopped"
    stopped_at = jobs.read_progress(out)["step"]
    jobs.start_run(manifest=manifest, out=out, preset="tiny", steps={**steps, "ae": stopped_at + 2}, resume=True)
    deadline = time.time() + 120
    while time.time() < deadline and jobs.run_is_running(out):
        time.sleep(0.1)
    final = jobs.read_progress(out)
    assert final["status"] == "finished" and final["step"] == stopped_at + 2
    assert CXRStudio.from_pretrained(out).config.name == "tiny"


def test_perceptual_term_needs_a_local_backbone_and_trains_with_one(manifest, tmp_path):
    from safetensors.torch import save_file

    from cxr_studio import InputError
    from cxr_studio.evaluation.perceptual import vgg16_features

    with pytest.raises(InputError, match="perceptual-backbone"):
        config(manifest, tmp_path / "model", stage="autoencoder", perceptual_weight=0.1)
    backbone = tmp_path / "vgg16.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in vgg16_features().state_dict().items()}, str(backbone))
    run = train(
        config(
            manifest,
            tmp_path / "model",
            stage="autoencoder",
            max_steps=2,
            perceptual_weight=0.1,
            perceptual_backbone=str(backbone),
        )
    )
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(row.get("lpips", 0) > 0 for row in logged)


@pytest.mark.slow
def test_speed_variants_train_the_same_model_and_the_benchmark_reports_them(manifest, tmp_path, monkeypatch):
    from training.benchmark import bench_training

    # in this process: the precision accelerate was first given (fp32 on a CPU)
    run = train(
        config(manifest, tmp_path / "model", stage="super_res", max_steps=2, channels_last=True, compile="eager")
    )
    assert json.loads((run / "config.json").read_text())["compile"] == "eager"
    weights = component_weights(tmp_path / "model", "super_res_unet")
    assert all(torch.isfinite(v).all() for v in weights.values())
    with pytest.raises(Exception, match="mixed_precision 'fp8'"):
        config(manifest, tmp_path / "x", mixed_precision="fp8")
    # the benchmark runs each variant as a process of its own, bf16 autocast included
    figures = bench_training(("tiny",), steps=4, variants=("fp32", "bf16"), stages=("super_res",), batch_size=3)
    for variant in ("fp32", "bf16"):
        row = figures["tiny"]["super_res"][variant]
        assert (
            row["batch"] == 3
            and row["images_per_s"] > 0
            and row["seconds_per_step"] * row["images_per_s"] == pytest.approx(row["batch"])
        )
        days = figures["tiny"]["projected_days_cheff_recipe_on_machex"]["super_res"][variant]
        assert days == pytest.approx(1_500_000 * 32 / row["images_per_s"] / 86400)
    # a stage whose training state does not fit (the cheff latent stage on 24 GB) is timed forward + backward
    import training.benchmark as bench

    def killed(config, *, processes=1):
        raise MemoryError("train_latent_diffusion was killed (out of memory) at batch 2")

    monkeypatch.setattr(bench, "_train_in_subprocess", killed)
    row = bench.bench_training(("tiny",), steps=2, stages=("latent",), batch_size=2)["tiny"]["latent"]["fp32"]
    assert row["mode"] == "forward_backward_only" and "out of memory" in row["training"]
    assert row["batch"] == 2 and row["images_per_s"] == pytest.approx(2 / row["seconds_per_step"])


def test_export_writes_a_half_precision_bundle_with_its_sampling_defaults(tmp_path):
    from training.export import main as export

    source, bundle = tmp_path / "model", tmp_path / "bundle"
    CXRStudio.from_preset("tiny").save_pretrained(source)
    assert (
        export(
            [
                "--model",
                str(source),
                "--out",
                str(bundle),
                "--fp16",
                "--sampler",
                "ddim",
                "--steps",
                "7",
                "--sr-sampler",
                "unipc",
                "--sr-steps",
                "3",
                "--no-upscale",
            ]
        )
        == 0
    )
    studio = CXRStudio.from_pretrained(bundle)
    sampling = studio.config.sampling
    assert (sampling.sampler, sampling.num_steps, sampling.sr_sampler, sampling.sr_num_steps, sampling.upscale) == (
        "ddim",
        7,
        "unipc",
        3,
        False,
    )
    stored = component_weights(bundle, "super_res_unet")
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    assert next(studio.super_res_unet.parameters()).dtype == torch.float32  # loads as float32
    original = component_weights(source, "super_res_unet")
    assert all(torch.allclose(original[k], stored[k].float(), atol=1e-3, rtol=1e-3) for k in original)


def test_export_moves_a_cascade_to_another_size_with_the_same_weights(tmp_path):
    from training.export import main as export

    source, moved = tmp_path / "model", tmp_path / "moved"
    CXRStudio.from_preset("tiny").save_pretrained(source)
    assert (
        export(
            ["--model", str(source), "--out", str(moved), "--image-size", "64", "--sr-factor", "4", "--name", "tiny64"]
        )
        == 0
    )
    studio = CXRStudio.from_pretrained(moved)
    assert (studio.config.image_size, studio.config.super_res.factor, studio.config.output_size) == (64, 4, 256)
    assert studio.config.name == "tiny64" and studio.model_id.startswith("tiny64@")
    assert studio.latent_unet.config.sample_size == 16 and studio.super_res_unet.config.sample_size == 256
    for name in ("autoencoder", "latent_unet", "super_res_unet", "report_encoder"):
        before, after = component_weights(source, name), component_weights(moved, name)
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    result = studio.generate("Large right pleural effusion.", seed=0, num_steps=2, sr_num_steps=2)
    assert result.low_res[0].size == (64, 64) and result.images[0].size == (256, 256)
    assert (
        export(["--model", str(source), "--out", str(tmp_path / "bad"), "--image-size", "36"]) == 2
    )  # not a multiple of 8
    assert not (tmp_path / "bad").exists()
    with pytest.raises(InputError, match="sr_factor"):
        studio.with_resolution(image_size=64, sr_factor=0)


def test_latent_fine_tuning_keeps_the_folders_tokenizer_and_report_encoder(manifest, tmp_path):
    trained, kept, fresh = (tmp_path / name / "model" for name in "abc")
    train(config(manifest, trained, stage="latent", max_steps=2))
    for out in (kept, fresh):
        shutil.copytree(trained, out)
    encoder = component_weights(trained, "report_encoder")
    new = build_task(config(manifest, fresh, stage="latent", max_steps=2)).modules["report_encoder"].state_dict()
    assert not all(torch.equal(encoder[k], new[k]) for k in encoder)  # Cheff's first run: a new encoder from scratch
    task = build_task(config(manifest, kept, stage="latent", max_steps=2, latent_keep_encoder=True))
    start = task.modules["report_encoder"].state_dict()
    assert all(torch.equal(encoder[k], start[k]) for k in encoder)
    train(config(manifest, kept, stage="latent", max_steps=2, latent_keep_encoder=True))
    vocab = CXRStudio.from_pretrained(trained).tokenizer.get_vocab()
    assert CXRStudio.from_pretrained(kept).tokenizer.get_vocab() == vocab


def test_latent_reschedule_fine_tunes_into_v_prediction_with_zero_terminal_snr(manifest, tmp_path, monkeypatch):
    """--latent-reschedule keeps the folder's latent weights as the start (coordinate channels added with zero
    weights: the same predictions) and trains and exports them under the preset's schedule; every sampler then
    draws finite images from the zero-SNR schedule."""
    from cxr_studio.models.latent_unet import predict

    out = tmp_path / "model"
    train(config(manifest, out, stage="autoencoder", max_steps=2))
    train(config(manifest, out, stage="latent", max_steps=2))
    before = CXRStudio.from_pretrained(out)
    assert before.config.latent_schedule.prediction_type == "epsilon"
    zero_snr = dataclasses.replace(
        PRESETS["tiny"].latent_schedule, prediction_type="v_prediction", rescale_betas_zero_snr=True
    )
    with_coordinates = dataclasses.replace(PRESETS["tiny"].latent_unet, coordinate_channels=2)
    no_clip = dataclasses.replace(PRESETS["tiny"].sampling, latent_clip=0.0)
    monkeypatch.setitem(
        PRESETS,
        "tiny",
        PRESETS["tiny"].replace(latent_schedule=zero_snr, latent_unet=with_coordinates, sampling=no_clip),
    )
    task = build_task(
        config(
            manifest, out, stage="latent", max_steps=4, latent_reschedule=True, latent_keep_encoder=True, snr_gamma=5.0
        )
    )
    unet = task.modules["latent_unet"]
    assert unet.config.in_channels == before.latent_unet.config.in_channels + 2
    x, embeds = (
        torch.randn(2, unet.config.out_channels, 8, 8),
        torch.randn(2, 5, before.report_encoder.config.hidden_size),
    )
    mask = torch.ones(2, 5, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(
            predict(unet.eval(), x, 10, prompt_embeds=embeds, prompt_mask=mask),
            predict(before.latent_unet, x, 10, prompt_embeds=embeds, prompt_mask=mask),
        )
    unet.train()
    start = {k: v.clone() for k, v in unet.state_dict().items()}
    Trainer(task.config, task).run()
    after = CXRStudio.from_pretrained(out)
    assert after.config.latent_schedule == zero_snr and after.config.latent_unet.coordinate_channels == 2
    assert (
        after.config.sampling.latent_clip == 0.0
    )  # the clip was epsilon's crutch: the preset's sampling default comes along
    assert not all(torch.equal(start[k], v) for k, v in after.latent_unet.state_dict().items())
    assert after.latent_unet.conv_in.weight[:, -2:].abs().sum() > 0  # the coordinates are used now
    for sampler in ("ddim", "dpmpp", "unipc"):
        pixels = after.generate(
            "Large left pleural effusion.", seed=0, sampler=sampler, num_steps=3, upscale=False
        ).pixels
        assert np.isfinite(pixels).all() and 0 <= pixels.min() and pixels.max() <= 1


def test_bf16_never_falls_on_a_cpu_without_native_bf16(manifest, tmp_path, monkeypatch, caplog):
    """An AVX2-only CPU ran the demo UNet 38x slower under bf16 autocast: there, bf16 becomes float32 with a
    warning."""
    from cxr_studio import environment
    from training.loop import mixed_precision

    avx2_only = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
    sapphire = "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert not environment.cpu_has_native_bf16(avx2_only) and environment.cpu_has_native_bf16(sapphire)
    if torch.cuda.is_available():
        pytest.skip("the CPU rule applies to CPU training")
    monkeypatch.setattr(environment, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    with caplog.at_level(logging.WARNING, logger="training"):
        assert mixed_precision(config(manifest, tmp_path / "m", mixed_precision="bf16")) == "no"
    assert "no native bf16" in caplog.text
    assert mixed_precision(config(manifest, tmp_path / "m", mixed_precision="auto")) == "no"
    monkeypatch.setattr(environment, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    assert mixed_precision(config(manifest, tmp_path / "m", mixed_precision="bf16")) == "bf16"
    assert (
        mixed_precision(config(manifest, tmp_path / "m", mixed_precision="auto")) == "no"
    )  # opt-in even where native


def test_latent_cache_shards_stream_and_resume(manifest, tmp_path):
    """The cache equals encoding every image at once, reads one row at a time, and a build cut off after some
    shards finishes into the same files."""
    from cxr_studio.data.dataset import ManifestDataset
    from training import latent_cache

    studio = CXRStudio.from_preset("tiny", seed=0)
    images = ManifestDataset(manifest, size=32, splits=("train",))
    encode = studio.codec.encode
    latent_cache.build(tmp_path / "whole", images, encode, shard_size=5)
    cache = latent_cache.LatentCache(tmp_path / "whole")
    assert len(cache) == len(images) and len(list((tmp_path / "whole").glob("shard-*"))) == -(-len(images) // 5)
    with torch.no_grad():
        direct = encode(torch.stack([images[i]["image"] for i in range(len(images))]))
    for position in (0, 4, 5, len(cache) - 1):  # both sides of a shard boundary
        latents, index = cache[position]
        assert index == position and torch.allclose(latents, direct[position], atol=1e-5)
    with pytest.raises(IndexError):
        cache[len(cache)]
    # cut off: the index and the last shard never written
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    (tmp_path / "cut" / latent_cache.INDEX).unlink()
    max((tmp_path / "cut").glob("shard-*")).unlink()
    assert not latent_cache.is_complete(tmp_path / "cut")
    latent_cache.build(tmp_path / "cut", images, encode, shard_size=5)
    for path in (tmp_path / "whole").iterdir():
        assert (tmp_path / "cut" / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_tokenizer_is_the_same_in_every_process(manifest):
    """tokenizers' trainer made its continuing pieces in hash order, so each process learnt another vocabulary
    from the same reports (huggingface/tokenizers#1794): two runs of one recipe were two different models."""
    code = (
        "import json, sys; from cxr_studio.data.manifest import read_manifest; "
        "from cxr_studio.models.report_encoder import train_tokenizer; "
        f"rows = read_manifest({str(manifest)!r}); "
        "print(json.dumps(sorted(train_tokenizer([r['report'] for r in rows], vocab_size=512, max_tokens=64)"
        ".get_vocab().items())))"
    )
    vocabularies = {
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        for _ in range(3)
    }
    assert len(vocabularies) == 1


def test_shipped_accelerate_configs_load_and_say_what_they_launch():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {"one_machine_gpus": (8, 1), "two_machines_gpus": (16, 2), "cpu_processes": (2, 1)}
    for name, (processes, machines) in expected.items():
        config = load_config_from_file(str(ROOT / "training" / "accelerate" / f"{name}.yaml"))
        assert (config.num_processes, config.num_machines) == (processes, machines), name
        assert config.distributed_type == "MULTI_GPU"  # the multi-process launcher; CPU processes join over gloo


def test_balanced_sides_draw_each_sided_item_as_often_on_the_right_as_on_the_left():
    """A pacemaker on the left in 9 of 10 rows: the weighted plan draws right and left about equally, rows
    without a sided item keep weight 1, and batch b is the same whether the plan starts at 0 or resumes at b."""
    from cxr_studio.labels import side_balance_weights
    from training.loop import BatchPlan

    rows = [{"findings": "", "devices": "pacemaker:left"}] * 90 + [{"findings": "", "devices": "pacemaker:right"}] * 10
    rows += [{"findings": "nodule:both", "devices": ""}] * 20 + [{"findings": "", "devices": ""}] * 30
    weights = side_balance_weights(rows)
    assert weights[:90].tolist() == [1.0] * 90 and weights[90:100].tolist() == [8.0] * 10  # 9x, capped at 8
    assert weights[100:].tolist() == [1.0] * 50
    assert side_balance_weights(rows, cap=100)[95] == 9.0
    plan = BatchPlan(len(rows), 10, seed=3, start=0, stop=200, weights=side_balance_weights(rows, cap=100))
    drawn = np.concatenate(list(plan))
    left, right = np.sum(drawn < 90), np.sum((drawn >= 90) & (drawn < 100))
    assert 0.8 < right / left < 1.25, (left, right)  # unweighted: 1 to 9
    resumed = BatchPlan(len(rows), 10, seed=3, start=57, stop=60, weights=side_balance_weights(rows, cap=100))
    assert list(resumed) == list(plan)[57:60]
    assert list(BatchPlan(len(rows), 10, seed=3, start=0, stop=5)) != list(plan)[:5]  # plain epochs differ
    with pytest.raises(ValueError):
        BatchPlan(len(rows), 10, seed=3, start=0, stop=1, weights=np.ones(3))


def test_the_latent_task_weighs_each_cached_latent_by_its_own_row(manifest, tmp_path):
    """--balance-sides: the weights follow the cache's index (not the manifest's order), and only the latent
    stage accepts the option."""
    from cxr_studio.data.dataset import ManifestDataset
    from cxr_studio.labels import side_balance_weights
    from training import latent_cache

    out = tmp_path / "model"
    train(config(manifest, out, stage="latent", max_steps=2, balance_sides=True))
    task = build_task(config(manifest, out, stage="latent", max_steps=2, balance_sides=True))
    task.train_dataset()
    weights = task.sample_weights()
    cache = latent_cache.LatentCache(task.config.run_dir / "latents-train")
    rows = ManifestDataset(manifest, size=8, splits=("train",)).rows
    expected = side_balance_weights(rows)
    assert weights.shape == (len(cache),)
    assert [weights[p] for p in range(len(cache))] == [expected[cache[p][1]] for p in range(len(cache))]
    assert build_task(config(manifest, out, stage="latent", max_steps=2)).sample_weights() is None
    with pytest.raises(InputError, match="latent stage only"):
        config(manifest, out, stage="super_res", balance_sides=True)


def test_layout_channels_start_as_the_folder_train_resume_and_steer_the_unet(manifest, tmp_path):
    """--layout adds layout channels to a trained folder's latent UNet with zero weights (the cascade draws what it
    drew before), trains on the manifest's boxes and the rule's layouts, resumes after a kill to the same weights,
    and exports a folder whose config says so; the trained UNet's output then depends on the layout."""
    from cxr_studio.layout import LAYOUT_GROUPS, layout_from_report, rasterize
    from cxr_studio.models.latent_unet import layout_channels, predict

    out = tmp_path / "model"
    first = config(manifest, out, stage="latent", max_steps=2)
    train(first)
    shutil.rmtree(first.run_dir)  # the fine-tuning below is a run of its own in the same folder
    before = CXRStudio.from_pretrained(out)
    options = {"stage": "latent", "latent_keep_encoder": True, "layout": True}
    task = build_task(config(manifest, out, max_steps=4, **options))
    report = "Left chest wall pacemaker. Small right pleural effusion."
    drawn = {
        name: studio.generate(report, seed=0, num_steps=3, upscale=False).pixels
        for name, studio in (("before", before), ("added", task._studio()))
    }
    np.testing.assert_allclose(drawn["added"], drawn["before"], atol=1e-4)
    assert layout_channels(task.modules["latent_unet"]) == len(LAYOUT_GROUPS)
    # every cached latent carries its own row's boxes and the rule's layout of its own report
    data = task.train_dataset()
    for position in range(len(data)):
        item, index = data[position], data.cache[position][1]
        truth = data.truth[index]
        assert item["has_truth"] == (truth is not None) and truth is not None  # the phantom writes boxes for all
        np.testing.assert_array_equal(item["layout_truth"].numpy(), rasterize(truth, 8))
        np.testing.assert_array_equal(item["layout_rule"].numpy(), rasterize(layout_from_report(item["report"]), 8))
    shutil.copytree(out, tmp_path / "unexported")
    train(config(manifest, out, max_steps=4, **options))
    straight = load_file(out / "latent_unet" / "diffusion_pytorch_model.safetensors")
    shutil.rmtree(out)  # killed after two steps, before exporting: the folder as it was, checkpoints beside it
    shutil.copytree(tmp_path / "unexported", out)
    shutil.rmtree(task.config.run_dir)
    train(config(manifest, out, max_steps=2, **options))
    shutil.rmtree(out)
    shutil.copytree(tmp_path / "unexported", out)
    train(config(manifest, out, max_steps=4, resume=True, **options))  # the channels added again, then the checkpoint
    resumed = load_file(out / "latent_unet" / "diffusion_pytorch_model.safetensors")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    after = CXRStudio.from_pretrained(out)
    assert (
        after.config.latent_unet.layout_channels == len(LAYOUT_GROUPS)
        and not before.config.latent_unet.layout_channels
    )
    assert after.latent_unet.conv_in.weight[:, -len(LAYOUT_GROUPS) :].abs().sum() > 0  # trained
    embeds, mask = after.text_to_image.encode_reports([report])
    x, t = torch.randn(1, *after.text_to_image.latent_shape), torch.tensor([500])
    maps = after.text_to_image.layout_maps([layout_from_report(report)])
    with torch.no_grad():
        with_layout = predict(after.latent_unet, x, t, prompt_embeds=embeds, prompt_mask=mask, layout=maps)
        without = predict(after.latent_unet, x, t, prompt_embeds=embeds, prompt_mask=mask)
    assert not torch.allclose(with_layout, without)
    with pytest.raises(InputError, match="latent stage only"):
        config(manifest, out, stage="super_res", layout=True)


def test_a_layout_is_dropped_with_its_report_and_validation_takes_the_rules(manifest, tmp_path):
    """Classifier-free guidance's unconditional half has neither report nor layout; --layout-dropout drops a layout
    on its own; --layout-truth 1 takes the manifest's boxes, 0 the rule's; validation (step < 0) the rule's."""
    out = tmp_path / "model"
    train(config(manifest, out, stage="latent", max_steps=2, layout=True))
    batch_of = lambda task: torch.utils.data.default_collate([task.train_dataset()[p] for p in range(4)])
    reports = ["Left pleural effusion.", "", "Right chest tube.", ""]
    for truth, dropout in ((1.0, 0.0), (0.0, 0.0), (0.0, 1.0)):
        task = build_task(
            config(manifest, out, stage="latent", layout=True, layout_truth=truth, layout_dropout=dropout)
        )
        batch = batch_of(task)
        maps = task._layout(batch, reports, step=0, generator=torch.Generator().manual_seed(0))
        expected = (batch["layout_truth"] if truth else batch["layout_rule"]) * (1 - dropout)
        expected[[1, 3]] = 0  # dropped reports: no layout
        torch.testing.assert_close(maps, expected)
        torch.testing.assert_close(task._layout(batch, reports, step=-1, generator=None), batch["layout_rule"])


def test_an_old_folder_with_retired_settings_off_loads_and_one_with_them_on_is_refused(tmp_path):
    """Folders written with side tokens or a findings embedding (options this version no longer has) load where
    the setting is off; where it is on the folder is refused with a message that says why."""
    from cxr_studio.files import sha256_file

    studio_folder = tmp_path / "tiny"
    CXRStudio.from_preset("tiny", seed=0).save_pretrained(studio_folder)
    for part, name, on in (("report_encoder", "side_tokens", False), ("latent_unet", "findings_embedding", False),
                           ("latent_unet", "findings_embedding", True)):  # fmt: skip
        folder = tmp_path / f"{name}-{on}"
        shutil.copytree(studio_folder, folder)
        studio_config = json.loads((folder / "studio_config.json").read_text())
        studio_config[part][name] = on
        (folder / "studio_config.json").write_text(json.dumps(studio_config))
        sums = json.loads((folder / "sha256sums.json").read_text())
        sums["studio_config.json"] = sha256_file(folder / "studio_config.json")  # consistent, not damaged
        (folder / "sha256sums.json").write_text(json.dumps(sums))
        if on:
            with pytest.raises(InputError, match=f"{part}.{name} is on"):
                CXRStudio.from_pretrained(folder)
        else:
            assert np.isfinite(CXRStudio.from_pretrained(folder).generate("", seed=0, upscale=False).pixels).all()
