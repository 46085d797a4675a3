"""Training throughput per stage, preset and variant:
``python -m training.benchmark [--presets tiny,demo] [--variants fp32,bf16,channels_last,compile] [--out FILE.json]``.

(Kept beside the trainer: the library's own benchmark never imports training code.)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
from pathlib import Path

VARIANTS = {  # name -> TrainConfig overrides
    "fp32": {},
    "bf16": {"mixed_precision": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": "inductor"},
}


STAGE_BATCHES = {"autoencoder": 8, "latent": 16, "super_res": 8}
MACHEX_IMAGES = 651_471  # Cheff section 4: the MaCheX training set
# Cheff supplement 7.3, in training images seen: AE 3 epochs; report-conditioned SDM 750k steps x 256;
# SR 1M steps x 32 on bicubic pairs + 500k x 32 fine-tuning on D(z)
CHEFF_RECIPE_IMAGES = {"autoencoder": 3 * MACHEX_IMAGES, "latent": 750_000 * 256, "super_res": 1_500_000 * 32}


def projected_days(figures: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Days Cheff's recipe on MaCheX would take at the measured throughput, per stage and variant."""
    return {
        stage: {variant: CHEFF_RECIPE_IMAGES[stage] / row["images_per_s"] / 86400 for variant, row in rows.items()}
        for stage, rows in figures.items()
        if stage in CHEFF_RECIPE_IMAGES
    }


def bench_training(
    presets: tuple[str, ...] = ("tiny", "demo"),
    steps: int = 6,
    variants: tuple[str, ...] = ("fp32",),
    stages: tuple[str, ...] = tuple(STAGE_BATCHES),
    batch_size: int | None = None,
    processes: tuple[int, ...] = (1,),
) -> dict[str, object]:
    """Training throughput (images/s) per preset, stage and variant (fp32, bf16 autocast, channels_last,
    torch.compile) on phantom data. The first half of the steps is warm-up (compilation, allocator) and not timed.
    Each run is a process of its own: accelerate fixes the precision once per process, and compiled code
    must not be shared between variants. ``batch_size`` replaces every stage's default batch (the ``cheff``
    preset's latent stage at batch 16 needs more memory than a laptop has; images/s is then a lower bound).
    ``processes`` > 1 runs the variant under ``accelerate launch`` with that many CPU processes (the batch per
    process, the machine's cores shared out), reported as ``<variant>x<N>`` with images/s of all of them."""
    from cxr_studio.config import preset
    from cxr_studio.data.phantom import write_dataset
    from training.config import TrainConfig

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in presets:
            size = preset(name).output_size
            manifest = write_dataset(Path(folder) / f"data-{name}", n=24, size=size, seed=0, quiet=True)
            per_stage: dict[str, object] = {}
            for stage in stages:  # in cascade order: each stage reads the folder the previous one wrote
                batch = batch_size or STAGE_BATCHES[stage]
                for variant, count in ((v, n) for v in variants for n in processes):
                    label = variant if count == 1 else f"{variant}x{count}"
                    out = Path(folder) / f"model-{name}-{label}"
                    config = TrainConfig(
                        stage=stage,
                        manifest=str(manifest),
                        out=str(out),
                        preset=name,
                        max_steps=steps,
                        batch_size=batch,
                        log_every=1,
                        sample_every=0,
                        validate_every=0,
                        checkpoint_every=10**6,
                        sr_crop=min(128, size),
                        **VARIANTS[variant],
                    )
                    try:
                        _train_in_subprocess(config, processes=count)
                    except MemoryError as error:  # the whole training state does not fit: time what does
                        print(
                            f"  train {name}/{stage}/{variant}: {error}; timing forward + backward only",
                            file=sys.stderr,
                            flush=True,
                        )
                        with multiprocessing.get_context("spawn").Pool(1) as pool:  # its memory goes back when it ends
                            row = {**pool.apply(forward_backward, (config,), {"steps": steps}), "training": str(error)}
                    else:
                        lines = [
                            json.loads(l)
                            for l in (config.run_dir / "metrics.jsonl").read_text().splitlines()
                            if '"loss"' in l
                        ]
                        timed = lines[len(lines) // 2 - 1 :]
                        seconds = (timed[-1]["seconds"] - timed[0]["seconds"]) / (len(timed) - 1)
                        row = {
                            "batch": batch,
                            "processes": count,
                            "seconds_per_step": seconds,
                            "images_per_s": batch * count / seconds,
                            "first_step_s": lines[0]["seconds"],
                        }
                    per_stage.setdefault(stage, {})[label] = row
                    print(f"  train {name}/{stage}/{label}: {json.dumps(row)}", file=sys.stderr, flush=True)
            results[name] = {**per_stage, "projected_days_cheff_recipe_on_machex": projected_days(per_stage)}
    return results


def forward_backward(config, *, steps: int) -> dict[str, float | int | str]:
    """Seconds per forward + backward pass of the stage's own loss on one batch, without the AdamW step,
    its two moments and the EMA copy. For stages whose training state outgrows the machine (the ``cheff``
    latent stage: about a billion parameters, times weights, gradients, two moments and EMA, is about 21 GB);
    the images/s it gives is an upper bound on training throughput, so the projected days a lower bound."""
    import time

    import torch

    from cxr_studio.data.dataset import collate_skipping
    from training.loop import make_accelerator
    from training.stages import build_task

    task = build_task(config)
    dataset = task.train_dataset()
    batch = collate_skipping([dataset[i % len(dataset)] for i in range(config.batch_size)])
    generator = torch.Generator().manual_seed(config.seed)
    accelerator = make_accelerator(config)  # the trainer's precision rules, so the variants mean the same here
    times = []
    for step in range(steps):
        began = time.perf_counter()
        with accelerator.autocast():
            loss, _ = task.loss(batch, step=step, generator=generator)
        loss.backward()
        for module in task.modules.values():
            module.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    seconds = sum(times[len(times) // 2 :]) / len(times[len(times) // 2 :])  # the first half is warm-up
    return {
        "batch": config.batch_size,
        "seconds_per_step": seconds,
        "images_per_s": config.batch_size / seconds,
        "first_step_s": times[0],
        "mode": "forward_backward_only",
    }


def _train_in_subprocess(config, *, processes: int = 1) -> None:
    """``python -m training.train_<stage>`` with every field of ``config`` as a flag (under ``accelerate launch``
    with the shipped CPU config when ``processes`` > 1)."""
    import dataclasses
    import os
    import subprocess

    module = {
        "autoencoder": "train_autoencoder",
        "latent": "train_latent_diffusion",
        "super_res": "train_super_resolution",
    }[config.stage]
    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", f"training.{module}"]
    if processes > 1:
        threads = max(1, (os.cpu_count() or 1) // processes)
        launcher = [
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(root / "training/accelerate/cpu_processes.yaml"),
        ]
        launcher += ["--num_processes", str(processes), "--num_cpu_threads_per_process", str(threads), "-m"]
        argv[1:2] = launcher
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "stage" or value == field.default:
            continue
        flag = "--" + field.name.replace("_", "-")
        argv += [flag if value is True else f"--no-{flag[2:]}"] if isinstance(value, bool) else [flag, str(value)]
    done = subprocess.run(argv, check=False, cwd=root, capture_output=True, text=True)
    if done.returncode == -9:  # SIGKILL: on these machines the kernel's out-of-memory killer
        raise MemoryError(f"{module} was killed (out of memory) at batch {config.batch_size}")
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed ({done.returncode}): {done.stderr[-2000:]}")


def bench_recipe_flops(name: str = "cheff", *, gpus: int = 8) -> dict[str, object]:
    """Cheff's recipe (:data:`CHEFF_RECIPE_IMAGES`) in GPU hours, from counted FLOPs: per stage, the trained
    modules' forward GFLOPs for one image (the report encoder at its full token length; super-resolution at the
    full output size, an upper bound where the recipe trains on crops) x 3 (forward and backward), x the images
    the recipe trains on, over ``gpus`` GPUs (:func:`cxr_studio.benchmark.gpu_hours`)."""
    import torch

    from cxr_studio.benchmark import _gflops, gpu_hours
    from cxr_studio.models.latent_unet import predict
    from cxr_studio.models.super_res_unet import predict as predict_super_res
    from cxr_studio.pipeline.studio import CXRStudio

    studio = CXRStudio.from_preset(name)
    c = studio.config
    tokens = torch.ones(1, c.report_encoder.max_tokens, dtype=torch.long)
    mask = torch.ones_like(tokens)
    image = torch.zeros(1, 1, c.image_size, c.image_size)
    latent = torch.randn(1, c.autoencoder.latent_channels, c.latent_size, c.latent_size)
    high = torch.zeros(1, 1, c.output_size, c.output_size)
    with torch.inference_mode():
        embeds = studio.report_encoder(input_ids=tokens, attention_mask=mask).last_hidden_state
        forward = {
            "autoencoder": _gflops(
                lambda: studio.autoencoder.decode(studio.autoencoder.encode(image).latent_dist.mode())
            ),
            "latent": _gflops(lambda: studio.report_encoder(input_ids=tokens, attention_mask=mask))
            + _gflops(lambda: predict(studio.latent_unet, latent, 500, prompt_embeds=embeds, prompt_mask=mask)),
            "super_res": _gflops(
                lambda: predict_super_res(
                    studio.super_res_unet, high, 500, condition=high, noise_level_t=torch.zeros(1, dtype=torch.long)
                )
            ),
        }
    hours = {
        stage: gpu_hours(3 * gflops * 1e9 * CHEFF_RECIPE_IMAGES[stage], gpus=gpus) for stage, gflops in forward.items()
    }
    return {
        "preset": name,
        "gpus": gpus,
        "forward_gflops_per_image": forward,
        "recipe_images": CHEFF_RECIPE_IMAGES,
        "projected_hours": hours,
        "total_hours": {share: sum(h[share] for h in hours.values()) for share in next(iter(hours.values()))},
    }


def bench_latent_cache(images: int = 20_000, *, size: int = 64, latent_shape: tuple[int, ...] = (4, 64, 64)) -> dict:
    """The latent stage's data path at scale: a phantom set of ``images`` (``size`` px), its latent cache built
    in shards (the encoder replaced by a fixed projection to ``latent_shape``, the demo's at 256 px: this
    measures the cache, not the autoencoder) and one epoch read back in batches of 16. Reports throughput per
    thousand images and resident memory along the way: flat, or the cache holds the set in memory."""
    import time

    import torch
    from torch.utils.data import DataLoader

    from cxr_studio.benchmark import _current_rss_mb
    from cxr_studio.data.dataset import ManifestDataset
    from cxr_studio.data.phantom import write_dataset
    from training import latent_cache

    def encode(batch: torch.Tensor) -> torch.Tensor:  # deterministic, the latent's size, no model
        pooled = torch.nn.functional.adaptive_avg_pool2d(batch, latent_shape[1:])
        return pooled.repeat(1, latent_shape[0], 1, 1)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        manifest = write_dataset(Path(folder) / "data", n=images, size=size, seed=0, workers=2, quiet=True)
        written_s = time.perf_counter() - start
        dataset = ManifestDataset(manifest, size=size, splits=("train", "val", "test"))
        start = time.perf_counter()
        latent_cache.build(Path(folder) / "cache", dataset, encode)
        build_s = time.perf_counter() - start
        cache = latent_cache.LatentCache(Path(folder) / "cache")
        curve, seen, start = [], 0, time.perf_counter()
        window = time.perf_counter()
        for latents, _ in DataLoader(cache, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)):
            seen += len(latents)
            if seen // 1000 != (seen - len(latents)) // 1000:
                now = time.perf_counter()
                curve.append({"images": seen, "images_per_s": 1000 / (now - window), "rss_mb": _current_rss_mb()})
                window = now
        read_s = time.perf_counter() - start
    cache_gb = images * int(torch.tensor(latent_shape).prod()) * 4 / 1e9
    return {
        "images": images,
        "phantom_written_s": written_s,
        "cache_build_images_per_s": len(dataset) / build_s,
        "cache_size_gb": cache_gb,
        "epoch_read_images_per_s": seen / read_s,
        "curve": curve,
        "rss_growth_mb_after_first_tenth": curve[-1]["rss_mb"] - curve[len(curve) // 10]["rss_mb"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny,demo", help="comma-separated presets to measure")
    parser.add_argument("--steps", type=int, default=6, help="training steps per run (the second half timed)")
    parser.add_argument("--variants", default="fp32", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--stages", default=",".join(STAGE_BATCHES), help="comma-separated, in cascade order")
    parser.add_argument("--processes", default="1", help="comma-separated process counts (accelerate, CPU processes)")
    parser.add_argument(
        "--batch-size", type=int, help="one batch for every stage (default: autoencoder 8, latent 16, super_res 8)"
    )
    parser.add_argument(
        "--latent-cache-images",
        type=int,
        help="instead: the latent cache's build and read at this many phantom images (memory and throughput)",
    )
    parser.add_argument(
        "--recipe-gpus", type=int, help="instead: Cheff's recipe in GPU hours on this many GPUs, from counted FLOPs"
    )
    parser.add_argument("--out", type=Path, help="write the JSON results here")
    args = parser.parse_args(argv)
    from cxr_studio.benchmark import machine

    if args.recipe_gpus:
        results = {
            "machine": machine(),
            "recipe": bench_recipe_flops(args.presets.split(",")[0], gpus=args.recipe_gpus),
        }
        text = json.dumps(results, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text)
        return 0

    if args.latent_cache_images:
        return _emit({"machine": machine(), "latent_cache": bench_latent_cache(args.latent_cache_images)}, args.out)
    results = {
        "machine": machine(),
        "training": bench_training(
            tuple(args.presets.split(",")),
            steps=args.steps,
            variants=tuple(args.variants.split(",")),
            stages=tuple(args.stages.split(",")),
            batch_size=args.batch_size,
            processes=tuple(int(n) for n in args.processes.split(",")),
        ),
    }
    return _emit(results, args.out)


def _emit(results: dict[str, object], out: Path | None) -> int:
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
