"""Evaluate a model: reconstruction, realism, faithfulness to the report, utility, device removal, privacy.

``python -m cxr_studio.evaluate --model DIR --manifest M [--num-samples N] --out REPORT_DIR``

Writes ``REPORT_DIR/report.json`` (every figure) and ``REPORT_DIR/index.html`` (self-contained: tables,
metric-against-steps plot, laterality confusion, example grids), which the app's Model tab shows.

Protocols (figures are comparable to the papers' only in kind: the judge here is a classifier the
project trains on the manifest, not an ImageNet Inception or a public CXR model):

- Reconstruction (Cheff table 2, Medfusion): MSE, PSNR, SSIM, MS-SSIM of ``decode(encode(x))`` on the
  test split at model resolution, and of the full path with super-resolution at output resolution.
- Realism (FID, KID, improved precision/recall): generated images for test-split reports against the
  test images, in the feature space of the finding classifier, and also in Inception-v3 space when
  ``--inception FILE`` names a local TorchScript Inception (e.g. clean-fid's ``inception-2015-12-05.pt``);
  diversity as mean pairwise MS-SSIM among samples of one report.
- Faithfulness (Diff-CXR table V): the classifier scores generated images against the labels of the
  report they came from: per-finding AUC and mAUC; device presence; laterality as "named side only" (the
  named side positive and the other negative, at thresholds fitted on real validation images), per
  one-sided finding and sided device: named side only / both sides / wrong side / missed. The judge's own
  figures on real test images come first: below 97 % named-side-only its verdict on samples means nothing.
- Prompt sheet: fixed one-sided and bilateral reports, several seeds each, beside the phantom's own
  rendering of the report (:mod:`cxr_studio.evaluation.prompt_sheet`), judged like the samples.
- Utility (Packhäuser table 1): the classifier trained on synthetic images only vs on as many real
  ones, both tested on the real test split: the mAUC gap in points.
- Device removal: the phantom benchmark of :mod:`cxr_studio.evaluation.device_removal`.
- Privacy: every generated image screened against the training set (:mod:`cxr_studio.evaluation.privacy`);
  the screen's detection rate on planted near-copies and false-alarm rate on unseen test images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxr_studio import imaging
from cxr_studio.config import PREVIEW_HELP
from cxr_studio.errors import InputError
from cxr_studio.evaluation import classifier as judge
from cxr_studio.evaluation.classifier import JUDGE_MIN_NAMED_SIDE_ONLY
from cxr_studio.evaluation.distribution import PR_NEIGHBOURS, PRDC_NEIGHBOURS, fid, kid, prdc, precision_recall
from cxr_studio.evaluation.html import render_html
from cxr_studio.evaluation.metrics import ms_ssim, psnr, ssim
from cxr_studio.labels import CHEXPERT_LABELS, TARGETS
from cxr_studio.models.classifier import ClassifierConfig, FindingClassifier
from cxr_studio.models.super_res_unet import upsample


def _say(message: str) -> None:
    print(f"[evaluate] {message}", file=sys.stderr, flush=True)


@torch.no_grad()
def reconstruction(
    studio: Any, images: np.ndarray, *, high_res: np.ndarray | None = None, perceptual: Any = None
) -> dict[str, Any]:
    """Cheff's table 2 rows. ``images`` ``(N, 1, S, S)`` in ``[-1, 1]`` at the model's resolution through the
    autoencoder; ``high_res`` ``(M, 1, S*f, S*f)``, the same first ``M`` test images at the output resolution,
    through autoencoder + super-resolution and, as the baseline, autoencoder + bicubic upsampling.
    ``perceptual``: an :class:`~cxr_studio.evaluation.perceptual.LPIPS` adds LPIPS to each row."""
    x = torch.from_numpy(images)
    recon = torch.cat(
        [
            studio.decode(studio.family.encode_image(x[i : i + 16].to(studio.device))).cpu()
            for i in range(0, len(x), 16)
        ]
    )
    out: dict[str, Any] = {"autoencoder": _similarity(x, recon, perceptual)}
    if high_res is not None and len(high_res) and studio.output_size > studio.image_size:
        m, sampling = len(high_res), studio.sampling
        high = torch.from_numpy(high_res)
        upscaled = studio.super_resolution(
            recon[:m].to(studio.device),
            seeds=list(range(m)),
            num_steps=sampling.sr_num_steps,
            sampler=sampling.sr_sampler,
            noise_level=sampling.sr_noise_level,
        ).cpu()
        out["autoencoder_plus_super_resolution"] = {
            "size": studio.output_size,
            **_similarity(high, upscaled, perceptual),
        }
        out["autoencoder_plus_bicubic"] = {
            "size": studio.output_size,
            **_similarity(high, upsample(recon[:m], studio.output_size // studio.image_size), perceptual),
        }
    return out


def _similarity(reference: torch.Tensor, output: torch.Tensor, perceptual: Any = None) -> dict[str, Any]:
    """MSE, PSNR, SSIM, MS-SSIM on ``[0, 1]`` (and LPIPS) of ``[-1, 1]`` batches, and the sharpness ratio:
    mean gradient magnitude of the output over the reference's (1 = as sharp; blur < 1; added noise > 1),
    because PSNR alone rewards a blurred upscale over a sharp one."""
    a, b = (reference + 1) / 2, (output + 1) / 2
    row = {
        "images": len(a),
        "mse": float(((a - b) ** 2).mean()),
        "psnr": float(psnr(a, b, data_range=1.0).mean()),
        "ssim": float(ssim(a, b, data_range=1.0).mean()),
        "ms_ssim": float(ms_ssim(a, b, data_range=1.0).mean()),
        "sharpness_ratio": _gradient_energy(b) / max(_gradient_energy(a), 1e-12),
    }
    if perceptual is not None:
        with torch.no_grad():
            row["lpips"] = float(
                torch.cat([perceptual(reference[i : i + 8], output[i : i + 8]) for i in range(0, len(a), 8)]).mean()
            )
    return row


def _gradient_energy(images: torch.Tensor) -> float:
    return float(
        (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
        + (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    )


def generate_pixels(studio: Any, rows: list[dict[str, str]], *, seed: int, num_steps: int | None = None) -> np.ndarray:
    """One image per row's report (seed ``seed + i``) at the model's resolution: ``(N, S, S)`` in ``[0, 1]``."""
    pixels = []
    for i, row in enumerate(rows):
        pixels.append(studio.generate(row["report"], seed=seed + i, num_steps=num_steps, upscale=False).pixels[0])
        if (i + 1) % 16 == 0:
            _say(f"  generated {i + 1}/{len(rows)}")
    return np.stack(pixels)


def generate_for(
    studio: Any, rows: list[dict[str, str]], *, size: int, seed: int, num_steps: int | None = None
) -> np.ndarray:
    """:func:`generate_pixels` as the judge's input ``(N, 1, size, size)`` in ``[-1, 1]``."""
    return imaging.to_batch(generate_pixels(studio, rows, seed=seed, num_steps=num_steps), size)


def _diversity(studio: Any, report: str, *, n: int, seed: int) -> float:
    """Mean pairwise MS-SSIM among ``n`` samples of one report (lower = more diverse)."""
    pixels = torch.from_numpy(studio.generate(report, seed=seed, num_images=n, upscale=False).pixels[:, None])
    i, j = np.triu_indices(n, 1)
    return float(ms_ssim(pixels[i], pixels[j], data_range=1.0).mean())


def _real_diversity(images: np.ndarray, *, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    pick = torch.from_numpy((images[rng.choice(len(images), min(n, len(images)), replace=False)] + 1) / 2)
    i, j = np.triu_indices(len(pick), 1)
    return float(ms_ssim(pick[i], pick[j], data_range=1.0).mean())


def per_finding(
    real_f: np.ndarray,
    real_rows: Sequence[dict[str, str]],
    fake_f: np.ndarray,
    fake_rows: Sequence[dict[str, str]],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """CheXGenBench's "conditional" figures: for each CheXpert label, FID, KID and PRDC between the real images
    positive for it and the samples whose report has it. A label with fewer than k + 1 = 6 images on either side
    is listed with its counts only (the k-NN figures are undefined there, FID meaningless)."""
    need = PRDC_NEIGHBOURS + 1
    out: dict[str, Any] = {}
    for label in CHEXPERT_LABELS:
        real_i = [i for i, row in enumerate(real_rows) if row.get(label) == "1"]
        fake_i = [i for i, row in enumerate(fake_rows) if row.get(label) == "1"]
        entry: dict[str, Any] = {"real": len(real_i), "samples": len(fake_i)}
        if min(len(real_i), len(fake_i)) >= need:
            a, b = real_f[real_i], fake_f[fake_i]
            entry |= {"fid": fid(a, b), "kid": kid(a, b, subsets=50, subset_size=min(len(a), len(b)), seed=seed)[0]}
            entry |= prdc(a, b)
        out[label] = entry
    return out


def _same_size_floor(
    model: FindingClassifier, manifest: str | Path, real_f: np.ndarray, *, n: int, size: int, fallback: np.ndarray
) -> dict[str, Any]:
    """FID's floor at the samples' count: ``n`` real images outside the test split (validation, else training)
    against the test images in the judge's features. FID is biased upward for small sets (64 real phantoms score
    about 4 against the 410 test images, where two halves of the test split score 2), so a sample FID reads
    against this figure, not against 0."""
    try:
        others, source = judge.load_split(manifest, "val", size=size, limit=n)[0], "val split"
    except InputError:
        others, source = fallback[:n], "train split (the manifest has no val split)"
    return {
        "fid_real_same_size_reference": fid(real_f, judge.embed(model, others)),
        "fid_real_same_size_images": f"{len(others)} real images ({source}) against the test images",
    }


def realism_in(
    extractor: Any,
    real: np.ndarray,
    fake: np.ndarray,
    *,
    seed: int = 0,
    real_rows: Sequence[dict[str, str]] = (),
    fake_rows: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """FID, KID (subset size: the smaller set, as CheXGenBench) and precision, recall, density and coverage
    (k = 5) of ``fake`` against ``real`` (``(N, 1, S, S)`` in ``[-1, 1]``) in ``extractor``'s feature space,
    with the extractor's name and weights hash; per finding too when the rows are given."""
    real_f, fake_f = extractor(real), extractor(fake)
    kid_mean, kid_std = kid(real_f, fake_f, subsets=50, subset_size=min(len(real_f), len(fake_f)), seed=seed)
    return {
        "features": extractor.name,
        "features_sha256": extractor.sha256,
        "fid": fid(real_f, fake_f),
        "kid": kid_mean,
        "kid_std": kid_std,
        **prdc(real_f, fake_f),
        "per_finding": per_finding(real_f, real_rows, fake_f, fake_rows, seed=seed) if real_rows else {},
    }


@dataclass
class _Real:
    """The manifest's real images at the judge's size (``(N, 1, s, s)`` in ``[-1, 1]``), their targets, known-masks
    and rows: the training split (the judge learns), the test split (the reference for every sample figure)."""

    train_x: np.ndarray
    train_t: np.ndarray
    train_k: np.ndarray
    train_rows: list[dict[str, str]]
    test_x: np.ndarray
    test_t: np.ndarray
    test_k: np.ndarray
    test_rows: list[dict[str, str]]


@dataclass
class _Samples:
    """The samples for the test reports: their rows, pixels in ``[0, 1]``, the judge's input, targets and known."""

    rows: list[dict[str, str]]
    pixels: np.ndarray
    x: np.ndarray
    t: np.ndarray
    k: np.ndarray


def load_real(manifest: str | Path, *, judge_size: int, max_train: int, num_samples: int) -> _Real:
    """The real splits; a test split too small for the realism figures is an :class:`InputError` saying so."""
    _say("loading the manifest")
    train = judge.load_split(manifest, "train", size=judge_size, limit=max_train)
    test = judge.load_split(manifest, "test", size=judge_size)
    needed = PR_NEIGHBOURS + 1
    if len(test[0]) < needed or min(num_samples, len(test[3])) < needed:
        raise InputError(
            f"{Path(manifest).name}: {len(test[0])} test images and {min(num_samples, len(test[3]))} samples; "
            "the realism "
            f"figures (precision/recall with k={PR_NEIGHBOURS}) need at least {needed} of each: use a larger manifest "
            f"(a few hundred phantoms: python -m cxr_studio.data.phantom --n 400) and --num-samples {needed} or more."
        )
    return _Real(*train, *test)


def trained_judge(
    real: _Real,
    manifest: str | Path,
    *,
    classifier_dir: str | Path | None,
    judge_size: int,
    max_train: int,
    steps: int,
    seed: int,
) -> tuple[FindingClassifier, dict[str, Any]]:
    """The judge (loaded from ``classifier_dir`` or trained on the real training split, thresholds fitted on the
    validation split) and its own figures on the real test images, which say whether its verdicts count."""
    figures: dict[str, Any] = {}
    if classifier_dir and (Path(classifier_dir) / "model.safetensors").is_file():
        model = FindingClassifier.load(classifier_dir)
    else:
        _say(f"training the finding classifier ({steps} steps at {judge_size} px)")
        config = ClassifierConfig(image_size=judge_size)
        model = judge.fit_classifier(real.train_x, real.train_t, real.train_k, config=config, steps=steps, seed=seed)
    if not model.thresholds:
        try:
            val_x, val_t, val_k, _ = judge.load_split(manifest, "val", size=judge_size, limit=max_train)
            figures["judge_thresholds_from"] = "val split"
        except InputError:  # no validation split: the training images (optimistic thresholds, said so in the report)
            val_x, val_t, val_k = real.train_x, real.train_t, real.train_k
            figures["judge_thresholds_from"] = "train split (the manifest has no val split)"
        model.thresholds = judge.fit_thresholds(judge.predict(model, val_x), val_t, val_k)
    if classifier_dir:
        model.save(classifier_dir)
    test_p = judge.predict(model, real.test_x)
    real_auc = judge.per_target_auc(test_p, real.test_t, real.test_k)
    real_sides = judge.side_verdicts(test_p, real.test_rows, model.thresholds)
    figures["classifier_on_real_test"] = {
        "auc": {k: v for k, v in real_auc.items() if k in CHEXPERT_LABELS},
        "mauc": judge.mean_auc(real_auc),
        "laterality": real_sides,
        "valid": real_sides["rate"] is None or real_sides["rate"] >= JUDGE_MIN_NAMED_SIDE_ONLY,
    }
    return model, figures


def samples_for_test_reports(studio: Any, real: _Real, *, num_samples: int, judge_size: int, seed: int) -> _Samples:
    """One sample per test report (the first ``num_samples``), seed ``seed + i``."""
    rows = real.test_rows[:num_samples]
    _say(f"generating {len(rows)} samples for test-split reports")
    pixels = generate_pixels(studio, rows, seed=seed)
    targets = [judge.targets_for(r) for r in rows]
    return _Samples(
        rows,
        pixels,
        imaging.to_batch(pixels, judge_size),
        np.stack([t for t, _ in targets]),
        np.stack([k for _, k in targets]),
    )


def realism(
    model: FindingClassifier,
    manifest: str | Path,
    real: _Real,
    real_f: np.ndarray,
    fake_f: np.ndarray,
    *,
    judge_size: int,
    seed: int,
) -> dict[str, Any]:
    """FID (beside its floor at the samples' count), KID, precision/recall and PRDC in the judge's features of the
    real test images (``real_f``) and the samples (``fake_f``)."""
    precision, recall = precision_recall(real_f, fake_f)
    kid_mean, kid_std = kid(real_f, fake_f, subsets=50, subset_size=min(len(real_f), len(fake_f), 1000), seed=seed)
    return {
        "features": f"finding classifier (pooled, {real_f.shape[1]}-d)",
        "fid": fid(real_f, fake_f),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "fid_real_vs_real_reference": fid(real_f[: len(real_f) // 2], real_f[len(real_f) // 2 :]),
        **_same_size_floor(model, manifest, real_f, n=len(fake_f), size=judge_size, fallback=real.train_x),
        "prdc_k5": prdc(real_f, fake_f),
    }


def faithfulness(model: FindingClassifier, samples: _Samples) -> dict[str, Any]:
    """The judge on the samples against their own reports' labels: per-finding AUC, mAUC, laterality, devices."""
    fake_p = judge.predict(model, samples.x)
    auc = judge.per_target_auc(fake_p, samples.t, samples.k, min_positives=2)
    devices = TARGETS.index("Support Devices")
    return {
        "auc": {k: v for k, v in auc.items() if k in CHEXPERT_LABELS},
        "mauc": judge.mean_auc(auc),
        "laterality": judge.side_verdicts(fake_p, samples.rows, model.thresholds),
        "device_presence_auc": auc.get("Support Devices"),
        "device_presence_accuracy": float(((fake_p[:, devices] > 0.5) == (samples.t[:, devices] > 0.5)).mean()),
    }


def against_steps(
    studio: Any,
    model: FindingClassifier,
    real_f: np.ndarray,
    samples: _Samples,
    *,
    steps_sweep: Sequence[int],
    sweep_samples: int,
    judge_size: int,
    seed: int,
) -> list[dict[str, Any]]:
    """KID, mAUC and named-side-only at each number of sampling steps, on the first ``sweep_samples`` reports."""
    rows = samples.rows[:sweep_samples]
    sweep = []
    for steps in steps_sweep:
        sub = generate_for(studio, rows, size=judge_size, seed=seed + 10_000, num_steps=steps)
        p = judge.predict(model, sub)
        a = judge.per_target_auc(p, samples.t[:sweep_samples], samples.k[:sweep_samples], min_positives=1)
        subset = min(len(sub), len(real_f))
        sweep.append(
            {
                "steps": steps,
                "kid": kid(real_f, judge.embed(model, sub), subsets=20, subset_size=subset, seed=seed)[0],
                "mauc": judge.mean_auc(a),
                "laterality": judge.side_verdicts(p, rows, model.thresholds)["rate"],
            }
        )
    return sweep


def utility(
    studio: Any, model: FindingClassifier, real: _Real, *, images: int, steps: int, judge_size: int, seed: int
) -> dict[str, Any]:
    """A classifier trained on ``images`` synthetic images only against one on as many real ones, both tested on
    the real test split: the mAUC gap in points (Packhäuser et al.)."""
    _say(f"utility: generating {images} synthetic training images")
    synth_rows = real.train_rows[:images]
    synth_x = generate_for(studio, synth_rows, size=judge_size, seed=seed + 20_000)
    synth_t = np.stack([judge.targets_for(r)[0] for r in synth_rows])
    synth_k = np.stack([judge.targets_for(r)[1] for r in synth_rows])
    on_synth = judge.fit_classifier(synth_x, synth_t, synth_k, steps=steps, seed=seed)
    on_real = judge.fit_classifier(
        real.train_x[:images], real.train_t[:images], real.train_k[:images], steps=steps, seed=seed
    )
    m_synth = judge.mean_auc(judge.per_target_auc(judge.predict(on_synth, real.test_x), real.test_t, real.test_k))
    m_real = judge.mean_auc(judge.per_target_auc(judge.predict(on_real, real.test_x), real.test_t, real.test_k))
    return {
        "training_images": images,
        "mauc_real_only": m_real,
        "mauc_synthetic_only": m_synth,
        "gap_points": None if m_real is None or m_synth is None else 100 * (m_real - m_synth),
    }


def privacy(
    model: FindingClassifier, real: _Real, samples: _Samples, *, calibration: int, seed: int
) -> dict[str, Any]:
    """The registration screen on the samples, with its detection rate on planted near-copies and its false-alarm
    rate on unseen test images."""
    from cxr_studio.evaluation.privacy import PrivacyScreen, plant_copies

    _say("privacy screen")
    screen = PrivacyScreen(real.train_x, embed=lambda x: judge.embed(model, x))
    threshold = screen.calibrate(sample=calibration, seed=seed)
    flagged = [m for m in screen.screen(samples.x) if m.flagged]
    planted_from = np.random.default_rng(seed).choice(len(real.train_x), min(50, len(real.train_x)), replace=False)
    planted = screen.screen(plant_copies(real.train_x[planted_from], seed=seed))
    fresh = screen.screen(real.test_x[: min(100, len(real.test_x))])
    return {
        "threshold": threshold,
        "calibration_quantile": 0.999,
        "samples_flagged": len(flagged),
        "samples": len(samples.x),
        "planted_copies_detected": float(np.mean([m.flagged for m in planted])),
        "planted_copies_traced_to_source": float(
            np.mean([m.nearest == int(i) for m, i in zip(planted, planted_from)])
        ),
        "false_alarm_rate_on_test_images": float(np.mean([m.flagged for m in fresh])),
    }


def example_images(real: _Real, samples: _Samples, sheet: dict[str, Any]) -> dict[str, Any]:
    """The page's grids: the prompt sheet, real test images, the first samples, and samples per finding."""
    examples: dict[str, Any] = {"prompt sheet": sheet} if sheet else {}
    examples |= {"real test images": real.test_x[:8, 0], "SYNTHETIC: the first 8 samples": samples.x[:8, 0]}
    for j, name in enumerate(CHEXPERT_LABELS):  # example grids per finding, from reports that name it
        with_finding = np.nonzero(samples.t[:, j] > 0.5)[0][:6]
        if len(with_finding):
            examples[f"SYNTHETIC: {name}"] = samples.x[with_finding, 0]
    return examples


def evaluate(
    studio: Any,
    manifest: str | Path,
    *,
    num_samples: int = 64,
    judge_size: int = 128,
    max_train: int = 8000,
    classifier_steps: int = 4000,
    sheet_seeds: int = 8,
    classifier_dir: str | Path | None = None,
    utility_samples: int = 128,
    utility_steps: int = 300,
    steps_sweep: Sequence[int] = (10, 25, 50),
    sweep_samples: int = 16,
    device_cases: int = 12,
    sr_images: int = 4,
    privacy_calibration: int = 200,
    seed: int = 0,
    inception: str | Path | None = None,
    raddino: str | Path | None = None,
    reid: str | Path | None = None,
    vgg16: str | Path | None = None,
    export_chexgenbench: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every figure of the module docstring, one protocol after the other; returns ``(report, example images)``."""
    started = time.perf_counter()
    report: dict[str, Any] = {"model": studio.model_id, "manifest": Path(manifest).name, "judge_size": judge_size}
    report["seed"] = seed
    # 1. Real data at the judge's resolution
    real = load_real(manifest, judge_size=judge_size, max_train=max_train, num_samples=num_samples)
    report["images"] = {"train": len(real.train_x), "test": len(real.test_x)}
    # 2. The judge, validated on the real test images before it judges anything
    model, judged = trained_judge(
        real, manifest, classifier_dir=classifier_dir, judge_size=judge_size, max_train=max_train,
        steps=classifier_steps, seed=seed,
    )  # fmt: skip
    report |= judged
    # 3. Reconstruction at the model's resolution (and through super-resolution)
    _say("reconstruction")
    model_res = judge.load_split(manifest, "test", size=studio.image_size, limit=64)[0]
    high_res = judge.load_split(manifest, "test", size=studio.output_size, limit=sr_images)[0] if sr_images else None
    perceptual = None
    if vgg16:
        from cxr_studio.evaluation.perceptual import LPIPS

        perceptual = LPIPS(vgg16)
    report["reconstruction"] = reconstruction(studio, model_res, high_res=high_res, perceptual=perceptual)
    # 4. Samples for the test reports
    samples = samples_for_test_reports(studio, real, num_samples=num_samples, judge_size=judge_size, seed=seed)
    if export_chexgenbench:
        from cxr_studio.evaluation import chexgenbench

        report["chexgenbench_export"] = str(
            chexgenbench.export(
                export_chexgenbench, images01=samples.pixels, rows=samples.rows, real_manifest=manifest
            )
        )
    # 5. Realism and diversity: in the judge's features, then in any other space given
    real_f, fake_f = judge.embed(model, real.test_x), judge.embed(model, samples.x)
    report["realism"] = realism(model, manifest, real, real_f, fake_f, judge_size=judge_size, seed=seed)
    report["realism_per_finding"] = per_finding(real_f, real.test_rows, fake_f, samples.rows, seed=seed)
    extractors = []
    if inception:
        from cxr_studio.evaluation.features import TorchScriptFeatures

        extractors.append(("realism_inception", TorchScriptFeatures(inception)))
    if raddino:
        from cxr_studio.evaluation.features import RadDinoFeatures

        extractors.append(("realism_raddino", RadDinoFeatures(raddino)))
    for key, extractor in extractors:
        _say(f"realism in {extractor.name}'s features")
        report[key] = realism_in(
            extractor, real.test_x, samples.x, seed=seed, real_rows=real.test_rows, fake_rows=samples.rows
        )
    report["diversity"] = {
        "ms_ssim_among_samples_of_one_report": _diversity(studio, samples.rows[0]["report"], n=4, seed=seed),
        "ms_ssim_among_real_images": _real_diversity(model_res, n=8, seed=seed),
    }
    # 6. Faithfulness to the report
    report["faithfulness"] = faithfulness(model, samples)
    # 7. The same against sampling steps
    report["against_steps"] = against_steps(
        studio, model, real_f, samples, steps_sweep=steps_sweep, sweep_samples=sweep_samples, judge_size=judge_size,
        seed=seed,
    )  # fmt: skip
    # 8. The prompt sheet: fixed one-sided and bilateral reports, real phantom and samples judged alike
    sheet: dict[str, Any] = {}
    if sheet_seeds:
        from cxr_studio.evaluation import prompt_sheet

        _say(f"prompt sheet: {len(prompt_sheet.SHEET)} reports x {sheet_seeds} seeds")
        sheet = prompt_sheet.render(studio, seeds=sheet_seeds, judge_size=judge_size, seed=seed)
        report["prompt_sheet"] = {"seeds": sheet_seeds, "reports": sheet["rows"], **prompt_sheet.judged(sheet, model)}
    # 9. Utility: synthetic-only vs real-only training, tested on the real test split
    if utility_samples:
        report["utility"] = utility(
            studio, model, real, images=utility_samples, steps=utility_steps, judge_size=judge_size, seed=seed
        )
    # 10. Device removal (phantom ground truth)
    if device_cases:
        from cxr_studio.evaluation.device_removal import run as device_removal

        _say(f"device removal on {device_cases} phantom cases")
        result = device_removal(studio, n=device_cases, size=max(64, 2 * studio.image_size))
        report["device_removal"] = {k: result[k] for k in ("cases", "size", "summary", "cascade_beats_baseline_psnr")}
    # 11. Privacy: the registration screen, and re-identification where a network is given
    if privacy_calibration:
        report["privacy"] = privacy(model, real, samples, calibration=privacy_calibration, seed=seed)
    if reid:  # CheXGenBench's re-identification privacy, beside the registration screen
        from cxr_studio.evaluation.reid import privacy_report
        from cxr_studio.models.reid import ReIdNetwork

        _say("re-identification privacy")
        network = ReIdNetwork.load(reid)
        report["privacy_reid"] = {"network": str(reid), "image_size": network.config.image_size}
        report["privacy_reid"] |= privacy_report(network, samples.x, real.train_x, real.test_x, seed=seed)
    report["seconds"] = time.perf_counter() - started
    return report, example_images(real, samples, sheet)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the bundled demo cascade)")
    parser.add_argument("--manifest", required=True, help="manifest.csv with train, val and test splits")
    parser.add_argument("--out", required=True, type=Path, help="report folder (report.json, index.html, classifier/)")
    parser.add_argument("--num-samples", type=int, default=64, help="samples for test-split reports (at least 4)")
    parser.add_argument("--judge-size", type=int, default=128, help="the judge's image size in pixels")
    parser.add_argument("--max-train", type=int, default=8000, help="training images for the judge")
    parser.add_argument("--classifier-steps", type=int, default=4000, help="the judge's training steps (batch 32)")
    parser.add_argument(
        "--sheet-seeds", type=int, default=8, help="samples per prompt-sheet report (0 skips the sheet)"
    )
    parser.add_argument("--utility-samples", type=int, default=128, help="0 skips the utility experiment")
    parser.add_argument(
        "--utility-steps",
        type=int,
        default=300,
        help="training steps of the two utility classifiers (128 images each: the judge's 4,000 would memorise them)",
    )
    parser.add_argument("--steps-sweep", default="10,25,50", help="sampling steps for the metric-against-steps plot")
    parser.add_argument("--device-cases", type=int, default=12, help="0 skips the device-removal benchmark")
    parser.add_argument(
        "--sr-images", type=int, default=4, help="images through autoencoder + super-resolution (0 skips)"
    )
    parser.add_argument(
        "--privacy-calibration", type=int, default=200, help="training images for the threshold (0 skips)"
    )
    parser.add_argument(
        "--inception", help="a local TorchScript Inception-v3 (.pt) for FID/KID in Inception space too"
    )
    parser.add_argument(
        "--export-chexgenbench",
        type=Path,
        help="also write the test-report samples and the real test split in CheXGenBench's layout into this folder",
    )
    parser.add_argument(
        "--raddino",
        help="a local RadDINO folder (transformers, safetensors; CheXGenBench's space) for FID/KID/PRDC there too",
    )
    parser.add_argument(
        "--reid",
        help="a re-identification network folder (python -m cxr_studio.evaluation.reid --out D writes D/reid) for "
        "CheXGenBench's re-identification privacy beside the registration screen",
    )
    parser.add_argument(
        "--vgg16",
        help="a local VGG16 state dict (torchvision's, .safetensors or .pth) for LPIPS in the reconstruction rows",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the judge, the samples and every subset")
    parser.add_argument("--preview", action="store_true", help=PREVIEW_HELP)
    args = parser.parse_args(argv)
    from cxr_studio.model_folders import load_model

    try:
        studio = load_model(args.model)
        if args.preview:
            studio = studio.as_preview()
        steps = [int(s) for s in args.steps_sweep.split(",") if s.strip()]
        report, examples = evaluate(
            studio,
            args.manifest,
            num_samples=args.num_samples,
            judge_size=args.judge_size,
            max_train=args.max_train,
            classifier_steps=args.classifier_steps,
            classifier_dir=args.out / "classifier",
            sheet_seeds=args.sheet_seeds,
            utility_samples=args.utility_samples,
            utility_steps=args.utility_steps,
            steps_sweep=steps,
            device_cases=args.device_cases,
            sr_images=args.sr_images,
            privacy_calibration=args.privacy_calibration,
            seed=args.seed,
            inception=args.inception,
            raddino=args.raddino,
            reid=args.reid,
            export_chexgenbench=args.export_chexgenbench,
            vgg16=args.vgg16,
        )
    except (InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    (args.out / "index.html").write_text(render_html(report, examples))
    print(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
