"""``python -m cxr_studio.evaluate``: the command that evaluates a model. What it measures and writes is
:mod:`cxr_studio.evaluation.report` (this module only keeps the command's name)."""

from __future__ import annotations

from cxr_studio.evaluation.report import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
