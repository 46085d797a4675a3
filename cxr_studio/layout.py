"""Where each finding goes: a layout, its one storage format, the rule that reads one from a report, and the
model's input made from it.

A layout is a tuple of :class:`LayoutItem`: an item name (a :data:`~cxr_studio.labels.SIDED_ITEMS` key such as
``"Nodule"``, or another finding or device name, which is stored but drawn by no channel), an optional patient side
and a box ``(x0, y0, x1, y1)`` in normalised image coordinates: ``x`` from 0 at the image's left (the patient's
right, PA convention) to 1 at its right, ``y`` from 0 at the top to 1 at the bottom.

Storage: the manifest's ``boxes`` column holds a layout as JSON, ``[{"label": item, "side": side or null, "box":
[x0, y0, x1, y1]}, ...]`` in those normalised coordinates (the phantom writes the extent of everything it drew,
VinDr-CXR's importer the radiologists' boxes); :func:`layout_to_json` and :func:`parse_layout` read and write it,
and every generated image's parameters carry the same JSON.

The model's input (:func:`rasterize`): one channel per item group (:data:`LAYOUT_GROUPS`), each cell the fraction of
it covered by that group's boxes, at latent resolution.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cxr_studio.errors import InputError
from cxr_studio.labels import PATIENT_SIDES, SIDED_ITEMS, sides_in_report

# The item groups, one model input channel each, in this order.
LAYOUT_GROUPS: tuple[str, ...] = tuple(SIDED_ITEMS)
# Other names a source uses for a group (the phantom's manifest names, VinDr-CXR's class names).
_ALIASES: dict[str, str] = {
    **{name: item for item, names in SIDED_ITEMS.items() for name in names},
    "Pleural effusion": "Pleural effusion",
    "Nodule/Mass": "Nodule",
    "Pacemaker": "Pacemaker/ICD generator",
    "ICD": "Pacemaker/ICD generator",
}
LAYOUT_MODES = ("auto", "none")


def canonical_item(name: str) -> str:
    """A source's name for an item -> its :data:`LAYOUT_GROUPS` name (``"pleural_effusion"`` -> ``"Pleural
    effusion"``, ``"Nodule/Mass"`` -> ``"Nodule"``); names of no group come back as they are."""
    return _ALIASES.get(name, name)  # besides an explicit layout: the rule's layout from the report, or none


@dataclass(frozen=True)
class LayoutItem:
    """One item of a layout: ``item`` (a :data:`LAYOUT_GROUPS` name, or any other label, stored but not drawn),
    ``box`` ``(x0, y0, x1, y1)`` normalised to ``[0, 1]`` (x0 < x1, y0 < y1; the patient's right is x < 0.5) and an
    optional patient ``side``."""

    item: str
    box: tuple[float, float, float, float]
    side: str | None = None

    def __post_init__(self) -> None:
        # plain floats at 4 decimals (a tenth of a pixel at 1,000 px), so an item survives its JSON exactly
        object.__setattr__(self, "box", tuple(round(float(v), 4) for v in self.box))
        x0, y0, x1, y1 = self.box
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            raise InputError(
                f"layout box {list(self.box)} for {self.item!r}: [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1 and "
                "0 <= y0 < y1 <= 1 (normalised image coordinates) is accepted."
            )
        if self.side is not None and self.side not in PATIENT_SIDES:
            raise InputError(f"layout side {self.side!r} for {self.item!r}: 'left', 'right' or none is accepted.")

    @property
    def group(self) -> str | None:
        """The :data:`LAYOUT_GROUPS` channel that draws this item, or None."""
        name = canonical_item(self.item)
        return name if name in LAYOUT_GROUPS else None

    def to_dict(self) -> dict[str, object]:
        return {"label": self.item, "side": self.side, "box": list(self.box)}


Layout = tuple[LayoutItem, ...]


def parse_layout(value: str | Sequence[Mapping[str, object] | LayoutItem] | None) -> Layout:
    """A layout from its JSON (the ``boxes`` column, an image's parameters), a list of dicts (``label`` or
    ``item``, ``box``, optional ``side``) or of :class:`LayoutItem`; ``""`` and None give the empty layout.
    Raises :class:`InputError` naming what is wrong."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise InputError(
                f"layout is not JSON ({error.msg}); a list of {{label, side, box}} is accepted."
            ) from None
    if not isinstance(value, (list, tuple)):
        raise InputError(f"layout of type {type(value).__name__}; a list of {{label, side, box}} is accepted.")
    items = []
    for entry in value:
        if isinstance(entry, LayoutItem):
            items.append(entry)
            continue
        if not isinstance(entry, Mapping) or "box" not in entry or not ({"label", "item"} & entry.keys()):
            raise InputError(f"layout entry {entry!r}; a mapping with 'label' and 'box' (and 'side') is accepted.")
        box = entry["box"]
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise InputError(f"layout box {box!r}: four numbers [x0, y0, x1, y1] are accepted.")
        try:
            coords = tuple(float(v) for v in box)
        except (TypeError, ValueError):
            raise InputError(f"layout box {box!r}: four numbers [x0, y0, x1, y1] are accepted.") from None
        side = entry.get("side")
        items.append(LayoutItem(str(entry.get("label", entry.get("item"))), coords, str(side) if side else None))
    return tuple(items)


def layout_to_dicts(layout: Layout) -> list[dict[str, object]]:
    """The layout as plain data (``[{"label", "side", "box"}, ...]``), as image parameters carry it."""
    return [item.to_dict() for item in layout]


def layout_to_json(layout: Layout) -> str:
    """The layout's storage form (the ``boxes`` column); ``"[]"`` for the empty layout."""
    return json.dumps(layout_to_dicts(layout))


def reframe(layout: Layout, frame: Sequence[float]) -> Layout:
    """A layout -> the same items in the normalised coordinates of ``frame`` ``(x0, y0, x1, y1)``, a part of the
    image in the layout's own coordinates (a crop, an edit's window); boxes cut at the frame's edges, items outside
    it left out."""
    fx0, fy0, fx1, fy1 = frame
    out = []
    for item in layout:
        x0, y0, x1, y1 = item.box
        box = (
            min(max((x0 - fx0) / (fx1 - fx0), 0.0), 1.0),
            min(max((y0 - fy0) / (fy1 - fy0), 0.0), 1.0),
            min(max((x1 - fx0) / (fx1 - fx0), 0.0), 1.0),
            min(max((y1 - fy0) / (fy1 - fy0), 0.0), 1.0),
        )
        if box[0] < box[2] and box[1] < box[3]:
            out.append(LayoutItem(item.item, box, item.side))
    return tuple(out)


def center_square(layout: Layout, *, width: int, height: int) -> Layout:
    """A layout of a ``width`` x ``height`` image -> the same items in the coordinates of its centred square (what
    Cheff's resize and centre crop keep)."""
    side = min(width, height)
    left, top = (width - side) / 2 / width, (height - side) / 2 / height
    return reframe(layout, (left, top, left + side / width, top + side / height))


def box_side(box: Sequence[float]) -> str:
    """The patient side a box's centre lies on (PA: the image's left half is the patient's right)."""
    return "right" if (box[0] + box[2]) / 2 < 0.5 else "left"


# --- the rule: a report -> a layout --------------------------------------------------------------------------------

# Boxes on the patient's right (the image's left) in the standard PA frame, by item and zone (None: the report
# gives no zone), and the box's half size by severity word; the patient's left is the mirror image. Centres and
# sizes are the median extents of what the phantom draws for each item, zone and severity.
_ZONE_CENTRES = {"upper": 0.26, "middle": 0.46, "lower": 0.61, None: 0.45}
_LUNG_X = 0.29  # centre of the right lung field
_RULE_BOXES: dict[str, dict[str, tuple[float, float, float, float]]] = {
    # item: severity -> (centre x, centre y or nan for the zone's, half width, half height)
    "Nodule": {"small": (_LUNG_X, np.nan, 0.055, 0.055), "moderate": (_LUNG_X, np.nan, 0.06, 0.06),
               "large": (_LUNG_X, np.nan, 0.065, 0.065)},
    "Mass": {"small": (_LUNG_X, np.nan, 0.07, 0.07), "moderate": (_LUNG_X, np.nan, 0.09, 0.09),
             "large": (_LUNG_X, np.nan, 0.11, 0.11)},
    "Consolidation": {"small": (0.28, np.nan, 0.1, 0.1), "moderate": (0.28, np.nan, 0.14, 0.15),
                      "large": (0.28, np.nan, 0.18, 0.2)},
    "Pleural effusion": {"small": (0.26, 0.67, 0.19, 0.09), "moderate": (0.26, 0.64, 0.19, 0.13),
                         "large": (0.26, 0.57, 0.2, 0.19)},
    "Pneumothorax": {"moderate": (0.27, 0.44, 0.19, 0.29)},
    "Atelectasis": {"small": (0.33, 0.57, 0.05, 0.05), "moderate": (0.29, 0.58, 0.07, 0.05),
                    "large": (0.25, 0.57, 0.09, 0.06)},
    "Pacemaker/ICD generator": {"moderate": (0.23, 0.21, 0.05, 0.05)},
    "Chest tube": {"moderate": (0.16, 0.44, 0.15, 0.22)},
}  # fmt: skip
# The report's severity words -> the rule's severities (the phantom's wording and common synonyms).
_SEVERITY_WORDS = {
    "small": r"small|tiny|minimal|mild|trace|patchy|subcentimet\w*",
    "large": r"large|extensive|massive|lobar|marked|severe|big",
}
_ZONE_WORDS = {"upper": r"upper|apical|apex", "middle": r"mid|middle|hil\w*", "lower": r"lower|basal|basilar|base"}


def _sentence_attributes(report: str, item: str, side: str) -> tuple[str, str | None]:
    """(severity, zone) of the first sentence of ``report`` naming ``item`` on ``side`` (default moderate, None)."""
    for sentence in re.split(r"[.;\n]", report.lower()):
        if item in sides_in_report(sentence) and side in sides_in_report(sentence)[item]:
            severity = next(
                (s for s, w in _SEVERITY_WORDS.items() if re.search(rf"\b(?:{w})\b", sentence)), "moderate"
            )
            zone = next((z for z, w in _ZONE_WORDS.items() if re.search(rf"\b(?:{w})\b", sentence)), None)
            return severity, zone
    return "moderate", None


def rule_box(item: str, side: str, *, severity: str = "moderate", zone: str | None = None) -> LayoutItem:
    """The rule's box for ``item`` (a :data:`LAYOUT_GROUPS` name) on the patient's ``side`` in the standard PA
    frame, by zone (upper/middle/lower, None: unknown) and severity (small/moderate/large)."""
    sizes = _RULE_BOXES[item]
    cx, cy, hw, hh = sizes.get(severity, sizes.get("moderate"))
    if np.isnan(cy):
        cy = _ZONE_CENTRES[zone]
        if zone is None:  # a lung zone the report does not give: the whole lung's height
            hh = max(hh, 0.2)
    x0, x1 = max(0.0, cx - hw), min(1.0, cx + hw)
    if side == "left":
        x0, x1 = 1.0 - x1, 1.0 - x0
    return LayoutItem(item, (x0, max(0.0, cy - hh), x1, min(1.0, cy + hh)), side)


def layout_from_report(report: str) -> Layout:
    """The rule's layout of a report: every sided finding and device it names (:func:`~cxr_studio.labels.
    sides_in_report`: negations and chamber names excluded), one box per side, placed by zone and sized by severity;
    items named without a side, and unsided findings, get none."""
    named = sides_in_report(report)
    return tuple(
        rule_box(item, side, **dict(zip(("severity", "zone"), _sentence_attributes(report, item, side))))
        for item in LAYOUT_GROUPS
        for side in PATIENT_SIDES
        if side in named.get(item, ())
    )


def resolve_layout(layout: str | Layout | Sequence[Mapping[str, object]] | None, report: str) -> Layout | None:
    """A ``layout`` argument -> the layout to draw: ``"auto"`` the rule's from ``report``, ``None`` or ``"none"``
    no layout (report only), else the explicit layout (JSON or items), parsed."""
    if layout is None or layout == "none":
        return None
    if layout == "auto":
        return layout_from_report(report)
    return parse_layout(layout)


# --- the model's input ---------------------------------------------------------------------------------------------


def _coverage(lo: float, hi: float, size: int) -> np.ndarray:
    """Fraction of each of ``size`` equal cells of [0, 1] covered by [lo, hi]."""
    edges = np.arange(size + 1, dtype=np.float64) / size
    return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None) * size


def rasterize(layout: Layout | None, size: int) -> np.ndarray:
    """A layout -> ``(len(LAYOUT_GROUPS), size, size)`` float32 in ``[0, 1]``: per group, the fraction of each cell
    its boxes cover (overlapping boxes of one group: the larger). Items of no group are left out; None and the empty
    layout give zeros."""
    maps = np.zeros((len(LAYOUT_GROUPS), size, size), np.float32)
    for item in layout or ():
        if item.group is None:
            continue
        x0, y0, x1, y1 = item.box
        cell = np.outer(_coverage(y0, y1, size), _coverage(x0, x1, size)).astype(np.float32)
        g = LAYOUT_GROUPS.index(item.group)
        np.maximum(maps[g], cell, out=maps[g])
    return maps


def box_of_mask(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The normalised bounding box of a ``(H, W)`` boolean mask's True pixels (None if there are none)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    h, w = mask.shape
    return (cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)
