"""Re-identification privacy (Packhäuser et al. 2022; CheXGenBench's privacy metric): train the Siamese
:class:`~cxr_studio.models.reid.ReIdNetwork` on patients imaged at several studies, calibrate its threshold on
held-out pairs at a stated false-positive rate, and score generated images against a training set.

Pairs: the same patient at two studies or the same image twice (positive), two different patients (negative),
half of each per batch. The images are augmented as the judge's are (shift, gamma, noise; never flipped) and
zoomed by up to 8 %, so the network learns the anatomy, not the exposure or the framing; the same-image pairs teach
it that a moved, rescaled, re-noised copy is the same patient (without them it flagged no near-copy at all).

``python -m cxr_studio.evaluation.reid --out DIR`` measures it on the multi-study phantom beside the registration
screen: planted copies, near-copies, other studies of training patients and unseen patients, both at 1 % false
alarms (the note's table).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cxr_studio.errors import InputError
from cxr_studio.evaluation.classifier import augment
from cxr_studio.models.reid import ReIdConfig, ReIdNetwork


def pairs(patient_ids: Sequence[str], n: int, rng: np.random.Generator, *, copies: float = 0.0) -> np.ndarray:
    """``n`` index pairs ``(i, j, same)``: half the same patient (a ``copies`` share of those one image twice,
    ``i == j``, the rest two studies), half two patients."""
    by_patient = defaultdict(list)
    for index, patient in enumerate(patient_ids):
        by_patient[patient].append(index)
    repeated = [indices for indices in by_patient.values() if len(indices) > 1]
    if not repeated or len(by_patient) < 2:
        raise InputError(
            "re-identification needs patients imaged more than once and at least two patients: make the set with "
            "python -m cxr_studio.data.phantom --studies-per-patient 3 (or a dataset with repeat studies)."
        )
    out = np.empty((n, 3), np.int64)
    patients = list(by_patient)
    for k in range(n):
        if k % 2 == 0 and rng.random() < copies:
            i = rng.integers(len(patient_ids))
            out[k] = (i, i, 1)
        elif k % 2 == 0:
            indices = repeated[rng.integers(len(repeated))]
            i, j = rng.choice(indices, 2, replace=False)
            out[k] = (i, j, 1)
        else:
            a, b = rng.choice(len(patients), 2, replace=False)
            out[k] = (rng.choice(by_patient[patients[a]]), rng.choice(by_patient[patients[b]]), 0)
    return out


def rescale(images: torch.Tensor, rng: np.random.Generator, *, most: float = 0.08) -> torch.Tensor:
    """Each image of ``(B, 1, S, S)`` zoomed about its centre by a factor in ``[1 - most, 1 + most]``."""
    zoom = torch.from_numpy(rng.uniform(1 - most, 1 + most, len(images)).astype(np.float32))
    theta = torch.zeros(len(images), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, padding_mode="border", align_corners=False)


def fit_reid(
    images: np.ndarray,
    patient_ids: Sequence[str],
    *,
    config: ReIdConfig | None = None,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 1e-3,
    copies: float = 1 / 3,
    seed: int = 0,
) -> ReIdNetwork:
    """Train on ``images`` ``(N, 1, S, S)`` in ``[-1, 1]`` with their patients (binary cross-entropy on pairs;
    ``copies``: the share of positive pairs that are one image twice, augmented independently)."""
    config = config or ReIdConfig(image_size=images.shape[-1])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ReIdNetwork(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    x_all = torch.from_numpy(images)
    for _ in range(steps):
        batch = torch.from_numpy(pairs(patient_ids, batch_size, rng, copies=copies))
        a, b = (rescale(augment(x_all[batch[:, k]], rng), rng) for k in (0, 1))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(a, b), batch[:, 2].float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def embed(model: ReIdNetwork, images: np.ndarray, *, batch_size: int = 128) -> torch.Tensor:
    return torch.cat(
        [model.embed(torch.from_numpy(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def pair_scores(model: ReIdNetwork, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Same-patient probability of ``a[i]`` and ``b[i]`` for every ``i``."""
    return torch.sigmoid(model.compare(embed(model, a), embed(model, b))).double().numpy()


def calibrate(
    model: ReIdNetwork,
    images: np.ndarray,
    patient_ids: Sequence[str],
    *,
    false_positive_rate: float = 0.01,
    n: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Set ``model.threshold`` so that ``false_positive_rate`` of held-out different-patient pairs score above it;
    returns the threshold, the achieved false-positive rate and the true-positive rate on same-patient pairs."""
    picked = pairs(patient_ids, n, np.random.default_rng(seed))
    scores = pair_scores(model, images[picked[:, 0]], images[picked[:, 1]])
    same = picked[:, 2] == 1
    model.threshold = float(np.quantile(scores[~same], 1 - false_positive_rate, method="higher"))
    model.false_positive_rate = false_positive_rate
    return {
        "threshold": model.threshold,
        "false_positive_rate": float((scores[~same] > model.threshold).mean()),
        "true_positive_rate": float((scores[same] > model.threshold).mean()),
        "pairs": int(n),
    }


def calibrate_screen(
    model: ReIdNetwork, unseen: np.ndarray, training: np.ndarray, *, false_positive_rate: float = 0.01
) -> dict[str, float]:
    """Set ``model.threshold`` for :func:`screen`: the ``1 - false_positive_rate`` quantile of the best score that
    images of patients *not* in ``training`` reach against it. Why not :func:`calibrate`'s pair threshold: the
    screen takes each image's maximum over the whole training set, and a 1 % per-pair false-positive rate over
    300 training images flagged 90 % of unseen patients on the phantom."""
    model.threshold = 0.0  # any value: screen needs one, the scores do not depend on it
    best = screen(model, unseen, training)["scores"]
    model.threshold = float(np.quantile(best, 1 - false_positive_rate, method="higher"))  # at most the rate above
    model.false_positive_rate = false_positive_rate
    return {"threshold": model.threshold, "false_positive_rate": false_positive_rate, "unseen_images": len(unseen)}


@torch.no_grad()
def screen(model: ReIdNetwork, generated: np.ndarray, training: np.ndarray, *, chunk: int = 256) -> dict[str, Any]:
    """Every generated image against every training image: per generated image its highest same-patient score
    and nearest training image; overall the mean and max of those and how many exceed the threshold."""
    if model.threshold is None:
        raise InputError("the re-identification network has no threshold yet: calibrate it on held-out pairs first.")
    g, t = embed(model, generated), embed(model, training)
    best, nearest = [], []
    for start in range(0, len(g), chunk):
        block = g[start : start + chunk]
        scores = torch.sigmoid(
            model.compare(block[:, None].expand(-1, len(t), -1), t[None].expand(len(block), -1, -1))
        )
        value, index = scores.max(1)
        best.append(value.double().numpy())
        nearest.append(index.numpy())
    best_scores = np.concatenate(best)
    return {
        "mean_score": float(best_scores.mean()),
        "max_score": float(best_scores.max()),
        "over_threshold": int((best_scores > model.threshold).sum()),
        "threshold": model.threshold,
        "false_positive_rate": model.false_positive_rate,
        "scores": best_scores,
        "nearest": np.concatenate(nearest),
    }


def privacy_report(
    model: ReIdNetwork,
    generated: np.ndarray,
    training: np.ndarray,
    unseen: np.ndarray,
    *,
    false_positive_rate: float = 0.01,
    planted: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """CheXGenBench's re-identification figures for ``generated`` against ``training`` (each ``(N, 1, S, S)`` in
    ``[-1, 1]`` at any size; resized to the network's): mean and max of each image's best score and the count over
    a threshold set on half of ``unseen`` (real images of other patients) at ``false_positive_rate``; the other
    half gives the measured false alarms, and planted exact and near-copies of training images the detection."""
    from cxr_studio import imaging
    from cxr_studio.evaluation.privacy import plant_copies

    def sized(x: np.ndarray) -> np.ndarray:
        return imaging.to_batch(list((x[:, 0] + 1) / 2), model.config.image_size)

    training, unseen = sized(training), sized(unseen)
    half = len(unseen) // 2
    calibration = calibrate_screen(model, unseen[:half], training, false_positive_rate=false_positive_rate)
    picked = np.random.default_rng(seed).choice(len(training), min(planted, len(training)), replace=False)
    samples = screen(model, sized(generated), training)
    return {
        "threshold": calibration["threshold"],
        "calibrated_on_unseen_images": half,
        "mean_score": samples["mean_score"],
        "max_score": samples["max_score"],
        "samples_over_threshold": samples["over_threshold"],
        "samples": len(generated),
        "false_alarm_rate_on_other_unseen_images": screen(model, unseen[half:], training)["over_threshold"]
        / max(1, len(unseen) - half),
        "planted_exact_copies_detected": screen(model, training[picked], training)["over_threshold"] / len(picked),
        "planted_near_copies_detected": screen(model, plant_copies(training[picked], seed=seed), training)[
            "over_threshold"
        ]
        / len(picked),
    }


def compare_with_registration(
    out: str,
    *,
    patients: int = 400,
    studies: int = 3,
    size: int = 64,
    steps: int = 1500,
    planted: int = 100,
    false_positive_rate: float = 0.01,
    seed: int = 0,
) -> dict[str, Any]:
    """Train on the training patients of a multi-study phantom set, take the first study of each as the "model's
    training set", and report the share of planted cases each screen flags at ``false_positive_rate``."""
    from pathlib import Path

    from cxr_studio.data.phantom import write_dataset
    from cxr_studio.evaluation.classifier import load_split
    from cxr_studio.evaluation.privacy import PrivacyScreen, plant_copies

    folder = Path(out) / "phantoms"
    manifest = write_dataset(
        folder, n=patients * studies, size=size, seed=seed, quiet=True, studies=studies, workers=2
    )
    images, _, _, rows = load_split(manifest, "train", size=size)
    held_out, _, _, held_rows = load_split(manifest, "test", size=size)
    patient_ids = [row["patient_id"] for row in rows]
    model = fit_reid(images, patient_ids, config=ReIdConfig(image_size=size), steps=steps, seed=seed)
    report: dict[str, Any] = {
        "pairs": calibrate(
            model, held_out, [r["patient_id"] for r in held_rows], false_positive_rate=false_positive_rate
        )
    }
    first = sorted({p: i for i, p in reversed(list(enumerate(patient_ids)))}.values())  # each patient's first study
    training = images[first]
    others = np.array([i for i in range(len(images)) if i not in set(first)])[:planted]
    half = len(held_out) // 2  # held-out patients: calibration, then false alarms
    report["screen"] = calibrate_screen(model, held_out[:half], training, false_positive_rate=false_positive_rate)
    registration = PrivacyScreen(training.astype(np.float32))
    registration.calibrate(quantile=1 - false_positive_rate, sample=200, seed=seed)
    cases = {
        "exact copies": training[:planted],
        "near-copies": plant_copies(training[:planted], seed=seed + 1),
        "another study of a training patient": images[others],
        "unseen patients (false alarms)": held_out[half:],
    }
    for name, case in cases.items():
        report[name] = {
            "reid_flagged": screen(model, case, training)["over_threshold"] / len(case),
            "registration_flagged": float(np.mean([m.flagged for m in registration.screen(case.astype(np.float32))])),
            "images": len(case),
        }
    model.save(Path(out) / "reid")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m cxr_studio.evaluation.reid", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", required=True, type=Path, help="folder for the phantom set, the network and report.json"
    )
    parser.add_argument("--patients", type=int, default=400, help="phantom patients (default 400)")
    parser.add_argument("--studies", type=int, default=3, help="studies per patient (default 3)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps, batch 32 (default 1500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the set, the network and the planted cases")
    args = parser.parse_args(argv)
    report = compare_with_registration(
        str(args.out), patients=args.patients, studies=args.studies, size=args.size, steps=args.steps, seed=args.seed
    )
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
