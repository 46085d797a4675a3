"""The project's one dataset format: a CSV manifest, one row per image.

Every source (the phantom, the public collections, a hospital folder) is turned into this format, so
training, evaluation and the app never care where an image came from.

Columns: ``path`` (relative to the manifest's folder), ``dataset``, ``patient_id``, ``study_id``,
``view`` (PA/AP/LATERAL), ``split`` (train/val/test, by patient), ``report``, and the 14 CheXpert
labels with their official names (values ``1``, ``0``, ``-1`` or blank). Sources may add columns
(the phantom adds ``device_mask_path``, ``finding_mask_path``, ``clean_path``, ``findings`` and ``devices``).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from cxr_studio.errors import InputError
from cxr_studio.files import replacing
from cxr_studio.labels import CHEXPERT_LABELS, LABEL_VALUES

BASE_COLUMNS = ("path", "dataset", "patient_id", "study_id", "view", "split", "report")
COLUMNS = BASE_COLUMNS + CHEXPERT_LABELS
VIEWS = ("PA", "AP", "LATERAL")
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test, by patient


def split_for_patient(patient_id: str, *, salt: str = "cxr-studio") -> str:
    """Deterministic train/val/test split from a hash of the patient id (same patient, same split)."""
    digest = hashlib.sha256(f"{salt}:{patient_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < SPLIT_FRACTIONS[0]:
        return "train"
    return "val" if u < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else "test"


def write_manifest(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, object]], *, extra: tuple[str, ...] = ()
) -> int:
    """Write rows to ``path`` atomically (a temporary file beside it, flushed, then renamed), one row at a time
    (650k-row manifests in constant memory); returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with replacing(path) as partial, open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS + extra), extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
            count += 1
    return count


def manifest_columns(path: str | os.PathLike[str]) -> list[str]:
    """The header of a manifest (checked: it has every column of the format)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"manifest {path} does not exist; a CSV with columns {', '.join(BASE_COLUMNS)}, ... is accepted."
        )
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise InputError(
            f"manifest {path.name} lacks the columns {missing}; the manifest format needs {list(COLUMNS)}."
        )
    return header


def iter_manifest(path: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """The rows of a manifest one at a time, each validated (constant memory, whatever its length); raises
    :class:`InputError` naming the first bad row or column."""
    path = Path(path)
    manifest_columns(path)
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):  # line 1 is the header
            validate_row(row, where=f"{path.name}, line {number}")
            yield row


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read and validate a whole manifest; raises :class:`InputError` naming the first bad row or column."""
    return list(iter_manifest(path))


def validate_row(row: Mapping[str, str], *, where: str) -> None:
    """Check one manifest row's controlled values."""
    if not row["path"]:
        raise InputError(f"{where}: empty 'path'.")
    if row["view"] not in VIEWS:
        raise InputError(f"{where}: view {row['view']!r}; accepted {VIEWS}.")
    if row["split"] not in SPLITS:
        raise InputError(f"{where}: split {row['split']!r}; accepted {SPLITS}.")
    for label in CHEXPERT_LABELS:
        if row[label] not in LABEL_VALUES:
            raise InputError(f"{where}: label {label!r} = {row[label]!r}; accepted 1, 0, -1 or blank.")
