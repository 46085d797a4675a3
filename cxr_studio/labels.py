"""What a manifest row says about its image, in one place: the 14 CheXpert labels, and every one-sided finding
and sided device per patient side (read from the phantom's ``findings`` and ``devices`` columns).

The data loaders, the judge (``models/classifier.py``), its training and the synthesis filter all read labels
through here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
LABEL_VALUES = ("1", "0", "-1", "")  # positive, negative, uncertain, not mentioned

# One-sided findings and sided devices, each judged per patient side. Keys are the judge's names; values
# are the manifest names they cover (the phantom's ``findings`` and ``devices`` columns: ``name:side...``).
SIDED_ITEMS: dict[str, tuple[str, ...]] = {
    "Pleural effusion": ("pleural_effusion",),
    "Pneumothorax": ("pneumothorax",),
    "Consolidation": ("consolidation",),
    "Atelectasis": ("atelectasis",),
    "Nodule": ("nodule",),
    "Mass": ("mass",),
    "Pacemaker/ICD generator": ("pacemaker", "icd"),
    "Chest tube": ("chest_tube",),
}
DEVICE_ITEMS = ("Pacemaker/ICD generator", "Chest tube")  # read from the ``devices`` column
# The manifest names drawn on one patient side: the phantom draws them so, the judge scores those of SIDED_ITEMS
# (a central line is sided but not judged), the prompt sheet and the device-removal benchmark take them from here.
SIDED_FINDING_NAMES = tuple(name for item in SIDED_ITEMS if item not in DEVICE_ITEMS for name in SIDED_ITEMS[item])
SIDED_DEVICE_NAMES = ("pacemaker", "icd", "central_line", "chest_tube")
PATIENT_SIDES = ("left", "right")
SIDE_TARGETS = tuple(f"{item}, {side}" for item in SIDED_ITEMS for side in PATIENT_SIDES)
TARGETS = (*CHEXPERT_LABELS, *SIDE_TARGETS)


def chexpert_vector(row: dict[str, str]) -> np.ndarray:
    """The 14 CheXpert labels of a row as float32: 1, 0, -1, or NaN where blank."""
    return np.array([float(row[k]) if row[k] != "" else np.nan for k in CHEXPERT_LABELS], dtype=np.float32)


def side_target(item: str, side: str) -> int:
    """Column of ``item`` (a :data:`SIDED_ITEMS` key) on the patient's ``side`` in :data:`TARGETS`."""
    return TARGETS.index(f"{item}, {side}")


def sided_items(row: dict[str, str]) -> dict[str, set[str]]:
    """Patient sides on which a manifest row names each :data:`SIDED_ITEMS` item (items not named are absent)."""
    by_name = {name: item for item, names in SIDED_ITEMS.items() for name in names}
    out: dict[str, set[str]] = {}
    for column in ("findings", "devices"):
        for part in row.get(column, "").split(";"):
            name, *rest = part.split(":")
            if name in by_name and rest:
                out.setdefault(by_name[name], set()).update(
                    set(PATIENT_SIDES) if rest[0] == "both" else {rest[0]} & set(PATIENT_SIDES)
                )
    return out


def targets_for(row: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """A manifest row -> ``(targets, known)``, both ``(len(TARGETS),)`` float32.

    CheXpert 1 -> 1; 0 and blank -> 0; -1 (uncertain) -> unknown (not trained on, not scored). The side
    targets come from the ``findings`` and ``devices`` columns (phantom manifests) and are unknown when the
    manifest lacks the column they need.
    """
    targets = np.zeros(len(TARGETS), np.float32)
    known = np.ones(len(TARGETS), np.float32)
    for i, label in enumerate(CHEXPERT_LABELS):
        value = row.get(label, "")
        if value == "-1":
            known[i] = 0.0
        elif value == "1":
            targets[i] = 1.0
    targets[len(CHEXPERT_LABELS) :] = side_vector(sided_items(row))
    for item in SIDED_ITEMS:
        column = "devices" if item in DEVICE_ITEMS else "findings"
        for side in PATIENT_SIDES:
            known[side_target(item, side)] = float(column in row)
    return targets, known


def side_vector(named: dict[str, set[str]]) -> np.ndarray:
    """Sides per item (:func:`sided_items`, :func:`sides_in_report`) -> ``(len(SIDE_TARGETS),)`` float32 in
    :data:`SIDE_TARGETS` order: 1 where the item is named on that patient side."""
    return np.array(
        [float(side in named.get(item, ())) for item in SIDED_ITEMS for side in PATIENT_SIDES], dtype=np.float32
    )


def side_balance_weights(rows: Sequence[dict[str, str]], *, cap: float = 8.0) -> np.ndarray:
    """A sampling weight per manifest row, ``(len(rows),)`` float64, under which every :data:`SIDED_ITEMS` item
    named on one side is drawn as often on the patient's left as on the right.

    A row naming an item on its rarer side weighs ``count(commoner side) / count(its side)`` (at most ``cap``);
    with several items the largest weight counts. Rows naming no sided item, or an item on both sides, weigh 1.
    """
    one_sided = [
        {item: next(iter(sides)) for item, sides in sided_items(row).items() if len(sides) == 1} for row in rows
    ]
    counts = {(item, side): 0 for item in SIDED_ITEMS for side in PATIENT_SIDES}
    for named in one_sided:
        for item, side in named.items():
            counts[item, side] += 1
    weights = np.ones(len(rows), np.float64)
    for i, named in enumerate(one_sided):
        for item, side in named.items():
            commoner = max(counts[item, s] for s in PATIENT_SIDES)
            weights[i] = max(weights[i], min(cap, commoner / counts[item, side]))
    return weights


# How a report names each sided item (the phantom's wording and common radiology synonyms), for
# :func:`sides_in_report`.
ITEM_WORDS: dict[str, str] = {
    "Pleural effusion": r"effusions?",
    "Pneumothorax": r"pneumothora(?:x|ces)",
    "Consolidation": r"consolidation",
    "Atelectasis": r"atelectas[ie]s",
    "Nodule": r"nodules?",
    "Mass": r"mass(?:es)?",
    "Pacemaker/ICD generator": r"pacemaker|icd|defibrillator",
    "Chest tube": r"chest (?:tube|drain)s?",
}
_SIDE_WORD = r"\b(left|right)\b(?!\s+(?:atri|ventric|heart))"  # not "right atrium": a chamber, not a side
_SIDE = re.compile(_SIDE_WORD + r"|\b(bilateral|both)\b")
_NEGATION = re.compile(r"\b(?:no|without|negative for|resolved|removed|removal of)\b")


def mirrored_report(report: str) -> str:
    """``report`` with the patient's left and right exchanged, capitals kept ("Left effusion." -> "Right
    effusion."; "right atrium" names a chamber and stays): the negative of side contrast
    (``SamplingDefaults.side_contrast``). A report without a side comes back unchanged."""

    def swap(word: re.Match[str]) -> str:
        said = word.group(1)
        other = "right" if said.lower() == "left" else "left"
        return other.upper() if said.isupper() else other.capitalize() if said[0].isupper() else other

    return re.sub(_SIDE_WORD, swap, report, flags=re.IGNORECASE)


def sides_in_report(report: str) -> dict[str, set[str]]:
    """The patient sides on which a free-text ``report`` names each :data:`SIDED_ITEMS` item, by rule, per sentence:
    the item's words, not after a negation ("No pneumothorax."), on the first side word of the sentence ("left",
    "right", "bilateral"/"both"; "right atrium" and the like name a chamber, not a side). A sentence naming an item
    without a side names none. On the phantom's reports this equals :func:`sided_items` of the manifest row
    (tested)."""
    out: dict[str, set[str]] = {}
    for sentence in re.split(r"[.;\n]", report.lower()):
        side = _SIDE.search(sentence)
        if side is None:
            continue
        sides = set(PATIENT_SIDES) if side.group(2) else {side.group(1)}
        for item, words in ITEM_WORDS.items():
            found = re.search(rf"\b(?:{words})\b", sentence)
            if found and not _NEGATION.search(sentence, 0, found.start()):
                out.setdefault(item, set()).update(sides)
    return out
