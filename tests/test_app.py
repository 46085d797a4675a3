"""The Gradio layer: builds, handlers map widget values, launch settings, and the thin-app rule."""

from __future__ import annotations

import ast
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

import app

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_app_never_imports_torch():
    assert "torch" not in imported_modules(ROOT / "app.py")


def test_library_never_imports_the_ui_or_training():
    for path in (ROOT / "cxr_studio").rglob("*.py"):
        forbidden = imported_modules(path) & {"gradio", "training", "app"}
        assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"


def test_demo_builds():
    assert isinstance(app.build_demo(), gr.Blocks)


def test_phantom_handler_maps_widget_values():
    image, clean, report = app.phantom_case(["pleural_effusion"], "left", "large", "lower", ["pacemaker"], 4)
    assert image.size == clean.size == (512, 512) and image.mode == "L"
    assert "left pleural effusion" in report.lower() and "pacemaker" in report.lower()
    assert not np.array_equal(np.asarray(image), np.asarray(clean))  # the pacemaker is only in the first


def test_phantom_handler_turns_bad_input_into_a_notification():
    with pytest.raises(gr.Error):
        app.phantom_case(["edema"], "right", "enormous", "lower", [], 0)


def test_auth_must_be_user_colon_password(capsys):
    assert app.main(["--auth", "nopassword"]) == 2
    assert "USER:PASS" in capsys.readouterr().err
