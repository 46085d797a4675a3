"""Dataset synthesis: the manifest every loader reads, determinism across processes, kill and resume, filters."""

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
from PIL import Image

from cxr_studio import imaging
from cxr_studio.data.dataset import ManifestDataset
from cxr_studio.data.manifest import CHEXPERT_LABELS, read_manifest, write_manifest
from cxr_studio.data.merge import merge
from cxr_studio.errors import InputError
from cxr_studio.synthesize import Filters, SynthesisSettings, main, read_sources, synthesize

ROOT = Path(__file__).resolve().parents[1]
REPORTS = [
    ("Large left pleural effusion.", "Pleural Effusion", "pleural_effusion:left:large", "train"),
    ("Right pneumothorax.", "Pneumothorax", "pneumothorax:right", "val"),
    ("No acute cardiopulmonary process.", "No Finding", "", "test"),
]


@pytest.fixture(scope="module")
def model(studio, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny"
    studio.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A manifest of reports (its images are never read: synthesis needs reports and labels only)."""
    rows = []
    for i, (report, label, findings, split) in enumerate(REPORTS):
        labels = {name: "0" for name in CHEXPERT_LABELS} | {label: "1"}
        rows.append(
            {
                "path": f"missing/{i}.png",
                "dataset": "source",
                "patient_id": f"p{i}",
                "study_id": f"s{i}",
                "view": "PA",
                "split": split,
                "report": report,
                **labels,
                "findings": findings,
                "devices": "",
            }
        )
    path = tmp_path_factory.mktemp("sources") / "reports.csv"
    write_manifest(path, rows, extra=("findings", "devices"))
    return path


def run_cli(*args: str, env_threads: int = 1, launcher: list[str] | None = None, **popen) -> subprocess.Popen:
    """The command as a user runs it, in its own process (one thread: arithmetic depends on the thread count)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(env_threads), "PYTHONPATH": str(ROOT)}
    argv = (launcher or [sys.executable]) + ["-m", "cxr_studio.synthesize", *args]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def finished(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
    return output.decode(errors="replace")


def files(folder: Path) -> dict[str, bytes]:
    """Every image and the manifest, by name (progress.json holds times and is left out)."""
    out = {p.name: p.read_bytes() for p in (folder / "images").glob("*.png")}
    out["manifest.csv"] = (folder / "manifest.csv").read_bytes()
    return out


def test_a_synthetic_set_is_a_manifest_that_training_evaluation_and_merge_read(model, sources, tmp_path):
    out = tmp_path / "set"
    assert (
        main(["--model", str(model), "--reports", str(sources), "--per-report", "2", "--out", str(out), "--seed", "7"])
        == 0
    )
    rows = read_manifest(out / "manifest.csv")
    source_rows = read_manifest(sources)
    assert [(r["source_row"], r["seed"]) for r in rows] == [(str(i // 2), str(7 + i)) for i in range(6)]
    for row in rows:
        source = source_rows[int(row["source_row"])]
        assert row["dataset"] == "synthetic" and row["split"] == source["split"] and row["report"] == source["report"]
        assert all(row[label] == source[label] for label in CHEXPERT_LABELS) and row["findings"] == source["findings"]
        image = Image.open(out / row["path"])
        assert image.mode == "I;16" and image.size == (64, 64)  # 16 bit, super-resolved 32 -> 64
        parameters = imaging.read_png_parameters(out / row["path"])
        assert parameters["synthetic"] is True and parameters["seed"] == int(row["seed"])
        assert parameters["report"] == row["report"] and parameters["model"] == row["model"]
    # every loader reads it unchanged
    assert len(ManifestDataset(out / "manifest.csv", size=32, splits=("train", "val", "test"))) == 6
    assert merge([sources, out / "manifest.csv"], tmp_path / "merged.csv") == 9
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 6 and summary["dropped"] == 0
    # a rerun finishes nothing new and rewrites nothing but clears what a SIGKILL mid-write leaves (CI saw one);
    # other settings are refused, the set kept
    stamps = {p: p.stat().st_mtime_ns for p in (out / "images").glob("*.png")}
    for leftover in ("progress.json.99999.partial", "images/000001-0000.png.99999.partial"):
        (out / leftover).write_bytes(b"half")
    assert (
        main(["--model", str(model), "--reports", str(sources), "--per-report", "2", "--out", str(out), "--seed", "7"])
        == 0
    )
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and not list(out.rglob("*.partial"))
    assert (
        main(["--model", str(model), "--reports", str(sources), "--per-report", "2", "--out", str(out), "--seed", "8"])
        == 2
    )
    assert len(list((out / "images").glob("*.png"))) == 6


def test_reports_from_a_text_file_and_bad_sources(tmp_path):
    text = tmp_path / "reports.txt"
    text.write_text("Left pneumothorax.\n\n  Cardiomegaly.  \n")
    assert [r["report"] for r in read_sources(text)] == ["Left pneumothorax.", "Cardiomegaly."]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="holds no report"):
        read_sources(tmp_path / "empty.txt")
    with pytest.raises(InputError, match="does not exist"):
        read_sources(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="batch_size"):
        SynthesisSettings(batch_size=0)


def test_the_same_item_gives_the_same_image_in_any_batch_order(studio, sources, tmp_path):
    """(row, copy) -> image depends on nothing else: a set made in one go equals one made from two halves."""
    rows = read_sources(sources)
    settings = SynthesisSettings(per_report=2, batch_size=2)
    whole = synthesize(studio, rows, tmp_path / "whole", settings=settings, progress=False)
    # the second process's share first, then the first's, into one folder: the same files
    for index in (1, 0):
        synthesize(
            studio, rows, tmp_path / "halves", settings=settings, process_index=index, num_processes=2, progress=False
        )
    assert whole["images"] == 6 and files(tmp_path / "whole") == files(tmp_path / "halves")


def test_filters_replace_with_the_next_seed_and_drop_after_the_last_try(studio, sources, tmp_path):
    from cxr_studio.evaluation.privacy import PrivacyScreen
    from cxr_studio.labels import TARGETS
    from cxr_studio.models.classifier import ClassifierConfig, FindingClassifier

    rows = read_sources(sources)
    settings = SynthesisSettings(per_report=2, batch_size=4, max_attempts=3)
    # a screen that flags everything: every item tries 3 seeds and is dropped, and says why
    screen = PrivacyScreen(np.zeros((4, 1, 32, 32), np.float32))
    screen.threshold = -2.0  # correlations are >= -1
    summary = synthesize(
        studio, rows, tmp_path / "private", settings=settings, filters=Filters(privacy=screen), progress=False
    )
    assert summary["images"] == 0 and summary["dropped"] == 6 and summary["drops_by_last_reason"] == {"privacy": 6}
    dropped = json.loads((tmp_path / "private" / "dropped" / "000001-0001.json").read_text())
    assert [t["seed"] for t in dropped["tries"]] == [3, 3 + 6, 3 + 12]  # item 3: seed + i, then n further each try
    # a judge that calls every image an effusion and nothing else: only the effusion report's images are kept
    judge = FindingClassifier(ClassifierConfig(image_size=32, hidden_sizes=(8, 8, 8, 8), embedding_size=8))
    drawn = ("Pleural Effusion", "Pleural effusion, left")
    judge.thresholds = {name: (-np.inf if name in drawn else np.inf) for name in TARGETS}
    summary = synthesize(
        studio, rows, tmp_path / "judged", settings=settings, filters=Filters(judge=judge), progress=False
    )
    kept = read_manifest(tmp_path / "judged" / "manifest.csv")
    assert {r["report"] for r in kept} == {REPORTS[0][0]} and summary["images"] == 2
    assert summary["drops_by_last_reason"] == {
        "quality: Pleural Effusion": 4,  # drawn (the judge says) where the label says absent
        "quality: Pleural effusion, left": 4,
        "quality: Pneumothorax": 2,  # the pneumothorax report's images: its label, never seen
        "quality: Pneumothorax, right": 2,
        "quality: No Finding": 2,
    }


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted_and_two_processes_equal_one(model, sources, tmp_path):
    args = ["--model", str(model), "--reports", str(sources), "--per-report", "8", "--batch-size", "2"]
    args += ["--num-steps", "30"]  # slow enough to be killed mid-set
    finished(run_cli(*args, "--out", str(tmp_path / "whole")))
    expected = files(tmp_path / "whole")
    assert len(expected) == 25
    # SIGKILL as soon as the first images exist, then the same command
    process = run_cli(*args, "--out", str(tmp_path / "killed"))
    deadline = time.time() + 120
    while len(list((tmp_path / "killed" / "images").glob("*.png"))) < 3 and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(list((tmp_path / "killed" / "images").glob("*.png")))
    assert 3 <= written < 24 and not (tmp_path / "killed" / "manifest.csv").exists()
    finished(run_cli(*args, "--out", str(tmp_path / "killed")))
    assert files(tmp_path / "killed") == expected
    assert not list((tmp_path / "killed").rglob("*.partial"))
    # two processes (gloo on CPU; accelerate's multi-process launcher) make the identical set
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    output = finished(run_cli(*args, "--out", str(tmp_path / "two"), launcher=launcher))
    assert files(tmp_path / "two") == expected, output[-2000:]
    settings = json.loads((tmp_path / "two" / "synthesis.json").read_text())
    assert settings["batch_size"] == 2
