"""Shared fixtures and markers.

``studio``: the tiny preset with seeded random weights, one per test module (module scope, so a module that
changes its studio does not change another's). ``slow``: tests that start a server, a browser or training
processes; ``python -m pytest -q -m "not slow" tests`` runs the rest in about a minute.
"""

import pytest

from cxr_studio import CXRStudio


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts a server, a browser or training processes (deselect: -m 'not slow')"
    )


@pytest.fixture(scope="module")
def studio() -> CXRStudio:
    return CXRStudio.from_preset("tiny", seed=0)
