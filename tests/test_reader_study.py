"""The blinded reader study: balanced, per-reader order, blind images, answers that survive a kill."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_studio import InputError
from cxr_studio.evaluation.reader_study import ReaderStudy, roc_auc


def images(seed: int, count: int, size=(70, 90)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 65535, size, dtype=np.uint16) for _ in range(count)]


@pytest.fixture()
def study(tmp_path) -> ReaderStudy:
    s = ReaderStudy(tmp_path / "study")
    assert s.add_cases(images(0, 4), images(1, 4), size=64) == 8
    return s


def test_sequences_are_balanced_per_reader_and_blind(study):
    order = study.sequence("reader-a")
    truth = dict(study.db.execute("SELECT case_id, truth FROM cases"))
    assert sorted(order) == sorted(truth) and order != study.sequence("reader-b")
    assert all({truth[order[k]], truth[order[k + 1]]} == {"real", "synthetic"} for k in range(0, 8, 2))
    shown = Image.open(study.next_case("reader-a").image_path)
    assert shown.size == (64, 64) and shown.mode == "L" and not shown.text  # nothing but pixels


def test_answers_survive_a_restart_and_a_kill(study, tmp_path):
    case = study.next_case("r1")
    study.record("r1", case.case_id, "synthetic", 4, 3.2)
    reopened = ReaderStudy(study.folder)  # the app restarted
    assert reopened.next_case("r1").position == 2
    script = (
        f"from cxr_studio.evaluation.reader_study import ReaderStudy; s = ReaderStudy({str(study.folder)!r}); "
        "c = s.next_case('r1'); s.record('r1', c.case_id, 'real', 2, 1.0); "
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1], check=False)
    assert ReaderStudy(study.folder).next_case("r1").position == 3


def test_results_statistics(study):
    truth = dict(study.db.execute("SELECT case_id, truth FROM cases"))
    for case_id in study.sequence("perfect"):
        study.record("perfect", case_id, truth[case_id], 5, 1.0)
    results = study.results()
    assert results["accuracy"] == 1.0 and results["sensitivity"] == 1.0 and results["specificity"] == 1.0
    assert results["roc_auc"] == 1.0 and results["p_value_vs_chance"] < 0.01
    csv = study.export_csv().decode()
    assert csv.startswith("reader,position,case_id,truth,answer") and csv.count("\n") == 9
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5


def test_bad_answers(study):
    case = study.next_case("r")
    with pytest.raises(InputError):
        study.record("r", case.case_id, "maybe", 3, 1.0)
    with pytest.raises(InputError):
        study.record("r", case.case_id, "real", 9, 1.0)
    with pytest.raises(InputError, match="reader name"):
        study.next_case(" ")
    with pytest.raises(InputError):
        ReaderStudy(study.folder / "x").add_cases([], images(1, 1))
