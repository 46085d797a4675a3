"""The prompt sheet: fixed one-sided and bilateral reports, several seeds each, beside the phantom's own
rendering of the same report, so that a person can check the judge's laterality figures by eye.

Every one-sided finding and sided device of the judge (:data:`~cxr_studio.models.classifier.SIDED_ITEMS`)
appears once on each side, at its most visible severity, plus three reports without a side. The report
text is the phantom's own (the real image's report), so sample and real image share their prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cxr_studio import imaging
from cxr_studio.data.phantom import Device, Finding, render_case


@dataclass(frozen=True)
class SheetRow:
    """One report of the sheet: what the phantom draws (its report is the prompt)."""

    label: str
    findings: tuple[Finding, ...] = ()
    devices: tuple[Device, ...] = ()


def _sided_rows() -> list[SheetRow]:
    rows = []
    for side in ("left", "right"):
        rows += [
            SheetRow(f"pleural effusion, {side}", (Finding("pleural_effusion", side, "large"),)),
            SheetRow(f"pneumothorax, {side}", (Finding("pneumothorax", side, "large"),)),
            SheetRow(f"consolidation, {side}", (Finding("consolidation", side, "large", "lower"),)),
            SheetRow(f"atelectasis, {side}", (Finding("atelectasis", side, "large"),)),
            SheetRow(f"nodule, {side}", (Finding("nodule", side, "large", "upper"),)),
            SheetRow(f"mass, {side}", (Finding("mass", side, "large", "upper"),)),
            SheetRow(f"pacemaker, {side}", devices=(Device("pacemaker", side),)),
            SheetRow(f"chest tube, {side}", devices=(Device("chest_tube", side),)),
        ]
    return rows


SHEET: tuple[SheetRow, ...] = (
    *_sided_rows(),
    SheetRow("edema (bilateral)", (Finding("edema", None, "moderate"),)),
    SheetRow("cardiomegaly (no side)", (Finding("cardiomegaly", None, "large"),)),
    SheetRow("no finding", ()),
)


def render(
    studio: Any, *, seeds: int, judge_size: int, seed: int = 0, rows: tuple[SheetRow, ...] = SHEET
) -> dict[str, Any]:
    """Real phantoms (``seeds`` patients per row) and ``seeds`` samples of the first one's report.

    Returns ``{"rows": [{label, report}], "real": (R * seeds, 1, s, s), "synthetic": (R * seeds,
    1, s, s), "manifest_rows": [...]}``, images in ``[-1, 1]`` at ``judge_size``; row ``r``'s images are
    ``[r * seeds, (r + 1) * seeds)``.
    """
    size = max(studio.config.image_size, 64)
    real, fake, meta, manifest_rows = [], [], [], []
    for index, row in enumerate(rows):
        cases = [
            render_case(np.random.default_rng([seed, index, k]), size=size, findings=row.findings, devices=row.devices)
            for k in range(seeds)
        ]
        report = cases[0].report
        real += [c.image for c in cases]
        fake += list(studio.generate(report, seed=seed, num_images=seeds, upscale=False).pixels)
        first = cases[0].manifest_columns()
        meta.append({"label": row.label, "report": report})
        manifest_rows += [first] * seeds
    return {
        "rows": meta,
        "real": imaging.to_batch(np.stack(real), judge_size),
        "synthetic": imaging.to_batch(np.stack(fake), judge_size),
        "manifest_rows": manifest_rows,
    }
