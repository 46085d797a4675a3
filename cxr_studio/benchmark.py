"""Speed and memory figures: ``python -m cxr_studio.benchmark [--only phantom] [--out FILE.json]``.

Targets are checked here and reported in notes, never as timed tests. Each section prints one line per
measurement and the whole run is written as JSON with the machine it ran on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    info: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def bench_phantom(size: int = 256, n: int = 200) -> dict[str, float]:
    """Phantom images per second on one core: rendering alone, and rendering plus writing the dataset."""
    from cxr_studio.data.phantom import render_case, write_dataset

    render_case(0, size=size)  # warm-up (imports, allocator)
    start = time.perf_counter()
    for i in range(n):
        render_case(np.random.default_rng([0, i]), size=size)
    render_rate = n / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_dataset(folder, n=n, size=size, seed=0, quiet=True)
        write_rate = n / (time.perf_counter() - start)
    return {"size": size, "images": n, "render_images_per_s": render_rate, "render_and_write_images_per_s": write_rate}


def _timed(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> tuple[float, float]:
    """(median, min) seconds of ``fn`` after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(min(times))


_SDPA_REGISTERED = False  # torch's counter misses CPU flash attention; its formula is registered once


def _gflops(fn: Callable[[], object]) -> float:
    """GFLOPs of one call (2 per multiply-add; CPU attention registered, which torch's counter misses)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

    global _SDPA_REGISTERED
    if not _SDPA_REGISTERED:  # once per process: registering twice raises

        @register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, get_raw=True)
        def _sdpa_cpu(q, k, v, *args, out_val=None, **kwargs):
            return sdpa_flop_count(q.shape, k.shape, v.shape)

        _SDPA_REGISTERED = True
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_preset(name: str, batches: tuple[int, ...]) -> dict[str, object]:
    """One preset's stages for :func:`bench_stages` (its own function, so the timed closures bind this preset)."""
    import torch

    from cxr_studio.models.latent_unet import predict
    from cxr_studio.models.super_res_unet import predict as predict_super_res
    from cxr_studio.pipeline.studio import CXRStudio

    studio = CXRStudio.from_preset(name)
    c = studio.config
    embeds, mask = studio.encode_report(["Large right pleural effusion. No pneumothorax."])
    stages = {}

    def add(stage: str, module: torch.nn.Module, make: Callable[[int], Callable[[], object]]) -> None:
        entry: dict[str, float] = {"params_m": sum(p.numel() for p in module.parameters()) / 1e6}
        with torch.inference_mode():
            entry["gflops_bs1"] = _gflops(make(1))
            for batch in batches:
                if name == "cheff" and batch > 1 and stage in ("super_res_unet", "autoencoder_decode"):
                    continue  # minutes per call on a CPU; batch 1 tells the cost
                median, best = _timed(make(batch), repeats=2 if name == "cheff" else 3)
                entry[f"latency_bs{batch}_s"], entry[f"latency_bs{batch}_min_s"] = median, best
        entry["peak_rss_mb"] = _rss_mb()
        stages[stage] = entry
        print(f"  {name}/{stage}: {json.dumps(entry)}", file=sys.stderr, flush=True)

    tokens = {"input_ids": torch.ones_like(mask), "attention_mask": mask}
    add(
        "report_encoder",
        studio.report_encoder,
        lambda b: (
            lambda: studio.report_encoder(input_ids=tokens["input_ids"].repeat(b, 1), attention_mask=mask.repeat(b, 1))
        ),
    )
    latent = torch.randn(1, c.autoencoder.latent_channels, c.latent_size, c.latent_size)
    add(
        "latent_unet",
        studio.latent_unet,
        lambda b: (
            lambda: predict(
                studio.latent_unet,
                latent.repeat(b, 1, 1, 1),
                500,
                prompt_embeds=embeds.repeat(b, 1, 1),
                prompt_mask=mask.repeat(b, 1),
            )
        ),
    )
    image = torch.zeros(1, 1, c.image_size, c.image_size)
    add(
        "autoencoder_encode",
        studio.autoencoder,
        lambda b: lambda: studio.autoencoder.encode(image.repeat(b, 1, 1, 1)),
    )
    add(
        "autoencoder_decode",
        studio.autoencoder,
        lambda b: lambda: studio.autoencoder.decode(latent.repeat(b, 1, 1, 1)),
    )
    high = torch.zeros(1, 1, c.output_size, c.output_size)
    add(
        "super_res_unet",
        studio.super_res_unet,
        lambda b: (
            lambda: predict_super_res(
                studio.super_res_unet,
                high.repeat(b, 1, 1, 1),
                500,
                condition=high.repeat(b, 1, 1, 1),
                noise_level_t=torch.zeros(b, dtype=torch.long),
            )
        ),
    )
    return {"image_size": c.image_size, "output_size": c.output_size, "stages": stages}


def bench_stages(
    presets: tuple[str, ...] = ("tiny", "demo", "cheff"), batches: tuple[int, ...] = (1, 4)
) -> dict[str, object]:
    """Per preset and stage: parameters, GFLOPs per forward, latency at batch 1 and 4, peak RSS so far."""
    results: dict[str, object] = {}
    for name in presets:
        results[name] = _bench_preset(name, batches)
    return results


def _studio(model: str | None):
    from cxr_studio.model_folders import load_model

    # no fallback to random weights: a benchmark of something other than what was asked is worse than an error
    return load_model(model)


def bench_generate(model: str | None = None) -> dict[str, object]:
    """End-to-end latency of the bundled cascade: the low-res stage alone (also with the live preview), the fast
    preview (:data:`~cxr_studio.config.PREVIEW_SAMPLING`), and the whole cascade."""
    from cxr_studio.config import PREVIEW_SAMPLING

    studio = _studio(model)
    report = "Large right pleural effusion. No pneumothorax."
    studio.generate(report, seed=0, num_steps=2, sr_num_steps=2, upscale=True)  # warm-up
    low = _timed(lambda: studio.generate(report, seed=0, upscale=False), repeats=3, warmup=0)
    watched = _timed(lambda: studio.generate(report, seed=0, upscale=False, preview=lambda *_: None), repeats=3)
    fast = _timed(lambda: studio.generate(report, seed=0, **PREVIEW_SAMPLING), repeats=3)
    full = _timed(lambda: studio.generate(report, seed=0, upscale=True), repeats=2, warmup=0)
    c = studio.config
    return {
        "model": studio.model_id,
        "low_res": {
            "size": c.image_size,
            "steps": c.sampling.num_steps,
            "guidance": c.sampling.guidance_scale,
            "median_s": low[0],
            "min_s": low[1],
            "with_live_preview_median_s": watched[0],  # the app's preview every PREVIEW_EVERY steps
        },
        "fast_preview": {**PREVIEW_SAMPLING, "median_s": fast[0], "min_s": fast[1]},
        "cascade": {
            "size": c.output_size,
            "steps": c.sampling.num_steps,
            "sr_steps": c.sampling.sr_num_steps,
            "median_s": full[0],
            "min_s": full[1],
        },
        "peak_rss_mb": _rss_mb(),
    }


SAMPLER_REPORTS = (
    "Large left pleural effusion.",
    "Large right pneumothorax with a visible pleural line.",
    "Large lobulated mass in the left upper lung zone.",
    "Left chest wall pacemaker with leads in the right atrium and right ventricle.",
    "Moderate pulmonary edema. Cardiomegaly.",
    "Right chest tube with its tip at the apex.",
    "Large consolidation in the right lower zone.",
    "No acute cardiopulmonary abnormality.",
)


def _against_reference(images: Any, reference: Any, *, data_range: float) -> dict[str, float]:
    """Mean and lowest PSNR and mean SSIM of ``images`` against ``reference`` (both ``(B, 1, H, W)``)."""
    from cxr_studio.evaluation.metrics import psnr, ssim

    per_image = psnr(images, reference, data_range=data_range)
    return {
        "psnr_db": float(per_image.mean()),
        "psnr_min_db": float(per_image.min()),
        "ssim": float(ssim(images, reference, data_range=data_range).mean()),
    }


def bench_samplers(
    model: str | None = None,
    *,
    seeds: int = 8,
    steps_grid: tuple[int, ...] = (5, 10, 15, 20, 25, 50),
    reference_steps: int = 150,
    reference_sampler: str = "ddim",
    default_target_db: float = 30.0,
) -> dict[str, object]:
    """Steps against quality for every sampler in the menu: PSNR and SSIM of the low-resolution image against
    DDIM with ``reference_steps`` steps from the same start noise (one report and seed per image, ``seeds``
    images), with wall time per image. The headline: model evaluations of DDIM-150 over those of the fewest
    steps at which the model's default sampler reaches ``default_target_db`` (equal quality).
    ``reference_sampler`` ``dpmpp``: a second-order reference, whose own error at 150 steps is far smaller
    than first-order DDIM's, so the figure measures the solver under test rather than the reference."""
    import torch

    from cxr_studio.config import SAMPLERS

    studio = _studio(model)
    reports = [SAMPLER_REPORTS[k % len(SAMPLER_REPORTS)] for k in range(seeds)]

    def run(sampler: str, steps: int) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        images = [
            torch.from_numpy(studio.generate(r, seed=k, sampler=sampler, num_steps=steps, upscale=False).pixels)
            for k, r in enumerate(reports)
        ]
        return torch.stack(images), (time.perf_counter() - start) / len(reports)

    reference, reference_s = run(reference_sampler, reference_steps)
    rows: dict[str, dict[str, float]] = {}
    for sampler in SAMPLERS:
        for steps in steps_grid:
            images, seconds = run(sampler, steps)
            rows[f"{sampler}-{steps}"] = {
                "sampler": sampler,
                "steps": steps,
                **_against_reference(images, reference, data_range=1.0),
                "seconds_per_image": seconds,
            }
            print(
                f"  samplers/{sampler}-{steps}: {json.dumps(rows[f'{sampler}-{steps}'])}", file=sys.stderr, flush=True
            )
    default = studio.config.sampling.sampler
    reaching = [r["steps"] for r in rows.values() if r["sampler"] == default and r["psnr_db"] >= default_target_db]
    return {
        "model": studio.model_id,
        "schedule": dataclasses.asdict(studio.config.latent_schedule),
        "reference": f"{reference_sampler}-{reference_steps}",
        "reference_seconds_per_image": reference_s,
        "images": seeds,
        "results": rows,
        "default_sampler": default,
        "default_target_db": default_target_db,
        "default_steps_at_target": min(reaching, default=None),
        "evaluations_ratio_vs_reference": reference_steps / min(reaching) if reaching else None,
    }


def bench_sr_samplers(
    model: str | None = None,
    *,
    images: int = 4,
    steps_grid: tuple[int, ...] = (1, 2, 3, 4, 6),
    reference_steps: int = 50,
    judge: str | None = None,
) -> dict[str, object]:
    """Steps against quality for the super-resolution stage: PSNR and SSIM of the upscaled image against DDIM
    with ``reference_steps`` steps from the same noise and the same low-resolution input (the latent stage's
    samples of :data:`SAMPLER_REPORTS`), for every sampler, with wall time per image (one UNet pass per step).
    ``judge`` (an evaluation's ``classifier/``): also the share of the judge's thresholded verdicts (every target)
    on each upscaled image that equal those on its reference."""
    import torch

    from cxr_studio import imaging
    from cxr_studio.config import SAMPLERS

    studio = _studio(model)
    if studio.super_resolution is None:
        raise ValueError(f"{studio.model_id} has no super-resolution stage")
    reports = [SAMPLER_REPORTS[k % len(SAMPLER_REPORTS)] for k in range(images)]
    seeds = list(range(images))
    low_res = torch.from_numpy(
        np.stack([studio.generate(r, seed=k, upscale=False).pixels[0] for k, r in enumerate(reports)])[:, None] * 2 - 1
    )
    level = studio.config.sampling.sr_noise_level
    verdicts = None
    if judge:
        from cxr_studio.evaluation import classifier
        from cxr_studio.labels import TARGETS
        from cxr_studio.models.classifier import FindingClassifier

        judge_model = FindingClassifier.load(judge)
        cut = np.array([judge_model.thresholds.get(t, 0.5) for t in TARGETS])

        def verdicts(batch: torch.Tensor) -> np.ndarray:
            pixels = ((batch[:, 0].numpy() + 1) / 2).clip(0, 1)
            size = judge_model.config.image_size
            return classifier.predict(judge_model, imaging.to_batch(pixels, size)) > cut

    def run(sampler: str, steps: int) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        high = studio.super_resolution(low_res, seeds=seeds, num_steps=steps, sampler=sampler, noise_level=level)
        return high.cpu(), (time.perf_counter() - start) / images

    reference, reference_s = run("ddim", reference_steps)
    reference_verdicts = verdicts(reference) if verdicts else None
    rows: dict[str, dict[str, float]] = {}
    for sampler in SAMPLERS:
        for steps in steps_grid:
            high, seconds = run(sampler, steps)
            row = {
                "sampler": sampler,
                "steps": steps,
                **_against_reference(high, reference, data_range=2.0),
                "seconds_per_image": seconds,
            }
            if verdicts:
                row["judge_agreement"] = float((verdicts(high) == reference_verdicts).mean())
            rows[f"{sampler}-{steps}"] = row
            print(f"  sr_samplers/{sampler}-{steps}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return {
        "model": studio.model_id,
        "schedule": dataclasses.asdict(studio.config.sr_schedule),
        "reference": f"ddim-{reference_steps}",
        "reference_seconds_per_image": reference_s,
        "images": images,
        "output_size": studio.config.output_size,
        "results": rows,
    }


def bench_scaling(
    model: str | None = None,
    *,
    steps_grid: tuple[int, ...] = (10, 25, 50),
    batches: tuple[int, ...] = (1, 2, 4, 8),
    sizes: tuple[int, ...] = (64, 128, 256, 512),
) -> dict[str, object]:
    """How cost grows: low-res generation against denoising steps and batch size (throughput), and the
    autoencoder decoder against output resolution (it is convolutional, so any latent size runs)."""
    import torch

    studio = _studio(model)
    report = "Large right pleural effusion."
    studio.generate(report, seed=0, num_steps=2, upscale=False)  # warm-up
    steps = {
        n: _timed(lambda n=n: studio.generate(report, seed=0, num_steps=n, upscale=False), repeats=2, warmup=0)[0]
        for n in steps_grid
    }
    batch = {}
    for b in batches:
        seconds = _timed(
            lambda b=b: studio.generate(report, seed=0, num_images=b, upscale=False), repeats=2, warmup=0
        )[0]
        batch[b] = {"seconds": seconds, "images_per_s": b / seconds}
    decode = {}
    channels = studio.config.autoencoder.latent_channels
    for size in sizes:
        latents = torch.randn(1, channels, size // 4, size // 4, device=studio.device)
        with torch.no_grad():
            decode[size] = _timed(lambda latents=latents: studio.decode(latents), repeats=2, warmup=1)[0]
    return {
        "model": studio.model_id,
        "device": str(studio.device),
        "seconds_vs_steps": steps,
        "batch": batch,
        "decode_seconds_vs_size": decode,
        "peak_rss_mb": _rss_mb(),
    }


def write_plots(results: dict[str, object], folder: Path) -> list[Path]:
    """SVG plots of the scaling and sampler sections into ``folder``."""
    from cxr_studio.evaluation.plots import line_plot

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    scaling = results.get("scaling")
    if isinstance(scaling, dict):
        plots = {
            "seconds_vs_steps": (
                [int(k) for k in scaling["seconds_vs_steps"]],
                {"seconds per image": list(scaling["seconds_vs_steps"].values())},
            ),
            "throughput_vs_batch": (
                [int(k) for k in scaling["batch"]],
                {"images/s": [v["images_per_s"] for v in scaling["batch"].values()]},
            ),
            "decode_vs_resolution": (
                [int(k) for k in scaling["decode_seconds_vs_size"]],
                {"decode seconds": list(scaling["decode_seconds_vs_size"].values())},
            ),
        }
        for name, (xs, series) in plots.items():
            written.append(folder / f"{name}.svg")
            written[-1].write_text(line_plot(xs, series))
    samplers = results.get("samplers")
    if isinstance(samplers, dict):
        rows = list(samplers["results"].values())
        steps = sorted({r["steps"] for r in rows})
        series = {
            s: [next((r["psnr_db"] for r in rows if r["sampler"] == s and r["steps"] == n), None) for n in steps]
            for s in dict.fromkeys(r["sampler"] for r in rows)
        }
        written.append(folder / "psnr_vs_steps.svg")
        written[-1].write_text(line_plot(steps, series))
    return written


# An H100's dense bf16 peak is ~990 TFLOP/s; small convolutional UNets at batch 8 reach a fraction of it. The
# projection states the fraction it assumes rather than hiding it in one number.
GPU_PEAK_TFLOPS = 990.0
GPU_UTILISATION = (0.1, 0.3)


def gpu_hours(flops: float, *, gpus: int = 1) -> dict[str, float]:
    """Hours that ``flops`` take on ``gpus`` H100s at each of :data:`GPU_UTILISATION` of :data:`GPU_PEAK_TFLOPS`."""
    return {f"{round(u * 100)}%": flops / (gpus * GPU_PEAK_TFLOPS * 1e12 * u) / 3600 for u in GPU_UTILISATION}


def _current_rss_mb() -> float:
    """Resident memory now (the peak from getrusage cannot show memory that grows and then flattens)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_synthesis(
    model: str | None = None, *, batches: tuple[int, ...] = (1, 4, 8), images: int = 8, memory_images: int = 2000
) -> dict[str, object]:
    """Dataset synthesis: images per second per process at each batch size (the model's default settings,
    cascade included), GFLOPs per image and the projected GPU hours for 75,000 images; and resident memory over
    ``memory_images`` images of the tiny preset (flat, or the command leaks)."""
    from cxr_studio.pipeline.studio import CXRStudio
    from cxr_studio.synthesize import SynthesisSettings, synthesize

    studio = _studio(model)
    sources = [{"report": report, "split": "train", "view": "PA"} for report in SAMPLER_REPORTS]
    studio.generate_batch(sources[0]["report"], seeds=[0], num_steps=2, sr_num_steps=2)  # warm-up
    result: dict[str, object] = {"model": studio.model_id, "size": studio.config.output_size}
    with tempfile.TemporaryDirectory() as folder:
        for batch in batches:
            settings = SynthesisSettings(per_report=max(1, images // len(sources)), batch_size=batch)
            count = len(sources) * settings.per_report
            start = time.perf_counter()
            synthesize(studio, sources, Path(folder) / f"bs{batch}", settings=settings, progress=False)
            result[f"images_per_s_bs{batch}"] = count / (time.perf_counter() - start)
            print(f"  synthesis batch {batch}: {result[f'images_per_s_bs{batch}']:.3f} images/s", file=sys.stderr)
    gflops = _gflops(lambda: studio.generate_batch(sources[0]["report"], seeds=[0]))
    result["gflops_per_image"] = gflops
    result["projected_gpu_hours_75k"] = gpu_hours(75_000 * gflops * 1e9)  # keys: share of the bf16 peak
    # memory over a long run: the tiny preset (random weights; speed is not the point here)
    tiny = CXRStudio.from_preset("tiny")
    rss: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        many = [{"report": r, "split": "train", "view": "PA"} for r in SAMPLER_REPORTS] * (memory_images // 80)
        settings = SynthesisSettings(per_report=10, batch_size=8)

        def record() -> bool:  # polled before every batch: the place to read memory
            done = sum(1 for _ in os.scandir(Path(folder) / "set" / "images"))
            rss.append((done, _current_rss_mb()))
            return False

        synthesize(tiny, many, Path(folder) / "set", settings=settings, progress=False, should_stop=record)
    result["tiny_rss_mb_by_images"] = rss[:: max(1, len(rss) // 20)] + [rss[-1]]
    result["tiny_rss_growth_mb_after_first_tenth"] = rss[-1][1] - rss[len(rss) // 10][1]
    return result


def bench_manifests(rows: tuple[int, ...] = (65_000, 650_000)) -> dict[str, object]:
    """Memory of ``ingest`` and ``prepare`` over generated manifests of MaCheX's size (650k rows): resident
    memory sampled every 50 ms while each runs, for each row count. Flat across row counts = constant memory.
    Every row of the prepare manifest points to one of 8 real phantom PNGs (so it does real work per row: a
    content hash; the 8 images are resized once and the rest are dropped as duplicates)."""
    import csv
    import threading

    from cxr_studio.data.ingest import ingest
    from cxr_studio.data.phantom import write_dataset
    from cxr_studio.data.prepare import prepare
    from cxr_studio.labels import CHEXPERT_LABELS

    def peak_while(fn: Callable[[], object]) -> tuple[float, float]:
        peak, done = [_current_rss_mb()], threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak.append(_current_rss_mb())

        thread = threading.Thread(target=sample)
        thread.start()
        start = time.perf_counter()
        try:
            fn()
        finally:
            done.set()
            thread.join()
        return max(peak) - peak[0], time.perf_counter() - start

    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        phantoms = write_dataset(root / "phantoms", n=8, size=64, seed=0, quiet=True)
        for n in rows:
            chexpert = root / f"chexpert-{n}" / "CheXpert-v1.0-small"
            chexpert.mkdir(parents=True)
            with open(chexpert / "train.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS])
                for i in range(n):
                    path = f"CheXpert-v1.0-small/train/patient{i // 3:05d}/study{i % 3 + 1}/view1_frontal.jpg"
                    writer.writerow([path, "Female", 60, "Frontal", "PA", *(["1.0"] + [""] * 13)])
            ingest_rss, ingest_s = peak_while(lambda c=chexpert, n=n: ingest("chexpert", c, root / f"m-{n}.csv"))
            source = root / f"prepare-{n}.csv"
            with open(phantoms) as src, open(source, "w", newline="") as dst:
                reader = csv.DictReader(src)
                base = list(reader)
                writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
                writer.writeheader()
                for i in range(n):
                    row = dict(base[i % 8])
                    row["path"] = str(phantoms.parent / row["path"])
                    writer.writerow(row)
            prepare_rss, prepare_s = peak_while(
                lambda s=source, n=n: prepare(s, root / f"prepared-{n}", size=32, workers=2)
            )
            result[str(n)] = {
                "ingest_rss_growth_mb": ingest_rss,
                "ingest_rows_per_s": n / ingest_s,
                "prepare_rss_growth_mb": prepare_rss,
                "prepare_rows_per_s": n / prepare_s,
            }
            print(f"  manifests {n}: {json.dumps(result[str(n)])}", file=sys.stderr, flush=True)
    return result


SECTIONS: dict[str, Callable[[], dict[str, object]]] = {
    "phantom": bench_phantom,
    "stages": bench_stages,
    "generate": bench_generate,
    "samplers": bench_samplers,
    "sr_samplers": bench_sr_samplers,
    "scaling": bench_scaling,
    "synthesis": bench_synthesis,
    "manifests": bench_manifests,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--out", type=Path, help="write the JSON results here")
    parser.add_argument(
        "--model", help="model folder for the generate and samplers sections (default: the bundled demo)"
    )
    parser.add_argument("--presets", default="tiny,demo,cheff", help="presets for the stages section")
    parser.add_argument(
        "--all-cores", action="store_true", help="use every core (the default pins phantom timing to one core)"
    )
    parser.add_argument("--plots", type=Path, help="write SVG plots (scaling, samplers) into this folder")
    parser.add_argument(
        "--sampler-seeds", type=int, default=8, help="images (one report and seed each) in the samplers section"
    )
    parser.add_argument(
        "--sampler-steps", default="5,10,15,20,25,50", help="step counts the samplers section measures"
    )
    parser.add_argument(
        "--sampler-reference", default="ddim", help="sampler of the 150-step reference (ddim, or dpmpp: second order)"
    )
    parser.add_argument("--sr-images", type=int, default=4, help="upscaled images in the sr_samplers section")
    parser.add_argument("--sr-steps", default="1,2,3,4,6", help="step counts the sr_samplers section measures")
    parser.add_argument(
        "--judge", help="an evaluation's classifier/ folder: the sr_samplers section also compares its verdicts"
    )
    parser.add_argument(
        "--synthesis-images", type=int, default=8, help="images per batch size in the synthesis section"
    )
    parser.add_argument("--memory-images", type=int, default=2000, help="tiny-preset images of the memory curve")
    parser.add_argument("--manifest-rows", default="65000,650000", help="row counts of the manifests section")
    args = parser.parse_args(argv)
    import torch

    results: dict[str, object] = {
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    for name in args.only or list(SECTIONS):
        everything = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if name == "phantom" and not args.all_cores and everything:  # the phantom target is per core
            os.sched_setaffinity(0, {min(everything)})
        with_model = ("generate", "samplers", "sr_samplers", "scaling", "synthesis")
        options = {"model": args.model} if name in with_model else {}
        if name == "stages":
            options = {"presets": tuple(args.presets.split(","))}
        if name == "synthesis":
            options |= {"images": args.synthesis_images, "memory_images": args.memory_images}
        if name == "manifests":
            options = {"rows": tuple(int(n) for n in args.manifest_rows.split(","))}
        if name == "samplers":
            options |= {
                "seeds": args.sampler_seeds,
                "steps_grid": tuple(int(n) for n in args.sampler_steps.split(",")),
                "reference_sampler": args.sampler_reference,
            }
        if name == "sr_samplers":
            options |= {
                "images": args.sr_images,
                "steps_grid": tuple(int(n) for n in args.sr_steps.split(",")),
                "judge": args.judge,
            }
        results[name] = SECTIONS[name](**options)
        print(name, json.dumps(results[name], default=float), flush=True)
        if everything:
            os.sched_setaffinity(0, everything)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = json.dumps(results, indent=2, default=float)
    if args.plots:
        for path in write_plots(results, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
