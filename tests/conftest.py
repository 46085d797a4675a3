"""Shared fixtures and markers.

``studio``: the tiny preset with seeded random weights, one per test module (module scope, so a module that
changes its studio does not change another's). ``manifest``: a 20-image phantom set at 64 px, made once per
session and only read (training writes into its own folders). ``slow``: tests that start a server, a browser or
training
processes; ``python -m pytest -q -m "not slow" tests`` runs the rest in about a minute.
"""

from pathlib import Path

import pytest

from cxr_studio import CXRStudio


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts a server, a browser or training processes (deselect: -m 'not slow')"
    )


@pytest.fixture(scope="module")
def studio() -> CXRStudio:
    return CXRStudio.from_preset("tiny", seed=0)


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    from cxr_studio.data import phantom

    return phantom.write_dataset(tmp_path_factory.mktemp("phantoms"), n=20, size=64, seed=0, quiet=True)
