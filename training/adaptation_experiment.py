"""Few-shot adaptation measured on the phantom: teach a model a finding it never saw (a hiatal hernia), then check
that it draws it and still draws what it knew.

``python -m training.adaptation_experiment --judge JUDGE_DIR --out runs/adapt [--model DIR] [--images 20,50]``

1. A new phantom set (new patients) where half the cases have a hiatal hernia (``--add-finding``).
2. A hernia detector that is checked first: the judge's network (its weights as the start) with a hernia head,
   fine-tuned on a second phantom set of other patients (``--detector-cases``, seed 78) and scored on the new
   set's real test images (its AUC there says whether its verdict on samples means anything; a logistic probe on
   the judge's pooled features reached only 0.77: a 15 px bubble is lost in a mean over the whole chest).
3. For the base model and for a LoRA trained on ``K`` hernia images (each ``K`` in ``--images``): the detector's AUC
   separating samples of hernia reports from samples of the same reports without it, from the same start noise
   (0.5: the model ignores the words),
   the judge's mAUC over the old findings on samples of the original test reports (regression), and the time.
Writes ``report.json``, ``samples.png`` (rows: 4 real hernia test images, then each model's samples of their
reports, base first, same seeds) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cxr_studio import imaging
from cxr_studio.data import phantom
from cxr_studio.data.manifest import read_manifest, write_manifest
from cxr_studio.errors import InputError
from cxr_studio.evaluation.classifier import augment, load_split, mean_auc, per_target_auc, predict
from cxr_studio.evaluation.metrics import roc_auc
from cxr_studio.model_folders import load_model
from cxr_studio.models.classifier import FindingClassifier, pool
from training.finetune import main as finetune

FINDING = "hiatal_hernia"
NEW_SET_SEED, DETECTOR_SET_SEED = 77, 78  # new patients: the few-shot set, and the detector's (never the same)


class Detector(torch.nn.Module):
    """``images`` ``(B, 1, S, S)`` in ``[-1, 1]`` -> one logit ``(B,)``: the judge's trunk, a head on its mean-
    and max-pooled last stage (the max keeps a small finding that a mean over the chest would dilute)."""

    def __init__(self, judge: FindingClassifier) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(judge.trunk)
        self.head = torch.nn.Linear(2 * judge.config.hidden_sizes[-1], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(pool(self.trunk(pixel_values=images).last_hidden_state))[:, 0]


def fit_detector(
    judge: FindingClassifier, images: np.ndarray, labels: np.ndarray, *, steps: int, seed: int = 0
) -> Detector:
    """Fine-tune a :class:`Detector` (BCE, AdamW, one-cycle) with the judge's augmentations (never flipped)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Detector(judge).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels.astype(np.float32))
    for step in range(steps):
        pick = torch.from_numpy(rng.integers(0, len(images), 32))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(augment(x_all[pick], rng)), y_all[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 100 == 0:
            print(f"detector step {step + 1}/{steps} loss {loss.item():.4f}", file=sys.stderr, flush=True)
    return model.eval()


@torch.no_grad()
def detector_scores(model: Detector, images: np.ndarray) -> np.ndarray:
    return np.concatenate([model(torch.from_numpy(images[i : i + 128])).numpy() for i in range(0, len(images), 128)])


def has_finding(row: dict[str, str]) -> bool:
    return FINDING in row.get("findings", "")


def samples(studio, reports: Sequence[str], *, seed: int, num_steps: int, size: int) -> np.ndarray:
    """One image per report (seed ``seed + i``) at the judge's size, ``(N, 1, S, S)`` in ``[-1, 1]``."""
    out = []
    for i, report in enumerate(reports):
        result = studio.generate(report, seed=seed + i, num_steps=num_steps, upscale=False)
        out.append(imaging.to_batch([result.pixels[0]], size)[0])
    return np.stack(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", required=True, help="a judge folder (python -m cxr_studio.evaluate writes one)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the data, adapters and report.json")
    parser.add_argument("--model", default="", help="base model folder (default: the bundled demo)")
    parser.add_argument("--old-manifest", default="data/phantom512/manifest.csv", help="the base's own phantom set")
    parser.add_argument("--images", default="20,50", help="comma-separated few-shot sizes (hernia images)")
    parser.add_argument("--steps", type=int, default=150, help="LoRA optimizer steps per run")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank")
    parser.add_argument("--batch-size", type=int, default=4, help="images per LoRA step")
    parser.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate")
    parser.add_argument("--samples", type=int, default=20, help="hernia test reports sampled (with and without it)")
    parser.add_argument("--old-reports", type=int, default=32, help="old test reports sampled for the regression mAUC")
    parser.add_argument("--num-steps", type=int, default=15, help="sampling steps")
    parser.add_argument("--cases", type=int, default=400, help="phantom cases in the new set (half with a hernia)")
    parser.add_argument(
        "--detector-cases", type=int, default=1200, help="phantom cases of other patients the detector learns from"
    )
    parser.add_argument("--detector-steps", type=int, default=1500, help="the detector's optimizer steps")
    args = parser.parse_args(argv)
    try:
        report = run(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


def run(args: argparse.Namespace) -> dict:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    judge = FindingClassifier.load(args.judge)
    size = judge.config.image_size
    base = load_model(args.model or None)
    report: dict = {"base_model": base.model_id, "judge": str(args.judge), "settings": vars(args) | {"out": str(out)}}

    def hernia_set(folder: Path, n: int, seed: int) -> Path:
        """New patients, half with a hernia (written once; a rerun reads it)."""
        if not (folder / "manifest.csv").is_file():
            phantom.write_dataset(
                folder, n=n, size=base.image_size, seed=seed, quiet=True, add_finding=FINDING, add_rate=0.5
            )
        return folder / "manifest.csv"

    # 1. The new set
    manifest = hernia_set(out / "data", args.cases, NEW_SET_SEED)
    rows = read_manifest(manifest)
    # 2. The detector, learnt on other patients, checked on the new set's real test images first
    detector_manifest = hernia_set(out / "detector_data", args.detector_cases, DETECTOR_SET_SEED)
    detector_path = out / "detector.safetensors"
    detector = Detector(judge)
    if detector_path.is_file():
        detector.load_state_dict(load_file(str(detector_path)))
    else:
        train_x, _, _, train_rows = load_split(detector_manifest, "train", size=size)
        detector = fit_detector(
            judge, train_x, np.array([has_finding(r) for r in train_rows]), steps=args.detector_steps
        )
        save_file(detector.state_dict(), str(detector_path))
    detector.eval()
    test_x, _, _, test_rows = load_split(manifest, "test", size=size)
    real_labels = np.array([has_finding(r) for r in test_rows])
    report["detector_auc_on_real_test_images"] = roc_auc(detector_scores(detector, test_x), real_labels)
    report["real_test_images"] = {"hernia": int(real_labels.sum()), "none": int((~real_labels).sum())}
    # 3. What each model draws: hernia reports against reports without one; the old findings
    # paired: each hernia report against the same report without the hernia, from the same start noise, so
    # only the words differ (unpaired reports differ in their other findings, which the detector also sees)
    positive_rows = [r for r in test_rows if has_finding(r)][: args.samples]
    positives = [r["report"] for r in positive_rows]
    negatives = [phantom.report_without_added_finding(r, seed=NEW_SET_SEED) for r in positive_rows]
    old_x, old_t, old_k, old_rows = load_split(args.old_manifest, "test", size=size, limit=args.old_reports)
    old_reports = [r["report"] for r in old_rows]
    report["real_old_test_mauc"] = mean_auc(per_target_auc(predict(judge, old_x), old_t, old_k))

    # what to look at: the first hernia test images, then each model's samples of their reports (one row each)
    sheet = [np.concatenate(list(test_x[[test_rows.index(r) for r in positive_rows[:4]], 0]), 1)]

    def measure(studio) -> dict:
        drawn = np.concatenate(
            [
                samples(studio, reports, seed=1000, num_steps=args.num_steps, size=size)
                for reports in (positives, negatives)
            ]
        )
        labels = np.array([True] * len(positives) + [False] * len(negatives))
        old = samples(studio, old_reports, seed=2000, num_steps=args.num_steps, size=size)
        sheet.append(np.concatenate(list(drawn[:4, 0]), 1))
        imaging.save_png(out / "samples.png", imaging.to_unsigned(np.concatenate(sheet, 0)), synthetic=True)
        return {
            "hernia_auc_on_samples": roc_auc(detector_scores(detector, drawn), labels),
            "old_findings_mauc_on_samples": mean_auc(per_target_auc(predict(judge, old), old_t, old_k)),
        }

    report["base"] = measure(base)
    report["adapters"] = {}
    previous = out / "report.json"  # a rerun measures existing adapters again and keeps their training time
    earlier = (
        {int(k): v for k, v in json.loads(previous.read_text()).get("adapters", {}).items()}
        if previous.is_file()
        else {}
    )
    hernia_train = [r for r in rows if r["split"] == "train" and has_finding(r)]
    for k in [int(v) for v in args.images.split(",")]:
        if len(hernia_train) < k:
            raise InputError(f"only {len(hernia_train)} training images have a hernia; raise --cases.")
        few = manifest.parent / f"few{k}.csv"  # beside the images its paths are relative to
        write_manifest(few, hernia_train[:k], extra=phantom.PHANTOM_COLUMNS)
        adapter = out / f"adapter{k}"
        if (adapter / "pytorch_lora_weights.safetensors").is_file() and k in earlier:  # measured again, not retrained
            seconds = earlier[k]["train_seconds"]
        else:
            began = time.perf_counter()
            code = finetune(
                [
                    *(["--model", args.model] if args.model else []),
                    *("--manifest", str(few), "--out", str(adapter), "--rank", str(args.rank)),
                    *("--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr)),
                    *("--warmup-steps", "10", "--sample-every", str(args.steps), "--checkpoint-every", "50"),
                    *("--log-every", "10", "--ema-decay", "0", "--report-dropout", "0.1"),
                    *(["--resume"] if (adapter.parent / f"{adapter.name}.runs").is_dir() else []),
                ]
            )
            if code:
                raise InputError(f"the fine-tuning run for {k} images failed (exit {code}); see its log.")
            seconds = time.perf_counter() - began
        studio = load_model(args.model or None)
        studio.load_adapter(adapter)
        report["adapters"][k] = {"train_seconds": round(seconds, 1), **measure(studio)}
        (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    raise SystemExit(main())
