"""Importers: public chest X-ray collections and hospital folders -> the project's manifest format.

``python -m cxr_studio.data.ingest SOURCE --root DIR --out MANIFEST [--frontal-only] [--check-files]``

Every importer maps its collection's own columns and label conventions to the manifest (see
``manifest.py``): CheXpert's 14 labels with 1 / 0 / -1 (uncertain) / blank, patient-level splits
(the official ones where a collection has them), and the view as PA, AP or LATERAL. Problems (missing
files, unreadable rows, unknown label values, assumed views) are counted, logged with their row number
and reported at the end; none is fatal and none is dropped silently.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxr_studio.data.manifest import COLUMNS, split_for_patient, write_manifest
from cxr_studio.errors import InputError
from cxr_studio.labels import CHEXPERT_LABELS

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom"}
EXTRA_COLUMNS = ("language", "sex", "age", "boxes", "source")


@dataclass
class IngestReport:
    """What happened to every row of the source."""

    source: str
    rows_read: int = 0
    rows_written: int = 0
    lateral_skipped: int = 0
    missing_files: int = 0
    unreadable_rows: int = 0
    view_unknown: int = 0
    boxes_without_image_size: int = 0  # boxes of an image whose header could not be read: left unknown
    unknown_labels: Counter = field(default_factory=Counter)

    def problem(self, kind: str, where: str, detail: str = "") -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        log.warning("%s: %s %s", where, kind.replace("_", " "), detail)

    def summary(self) -> str:
        lines = [f"{self.source}: read {self.rows_read} rows, wrote {self.rows_written}"]
        for name in (
            "lateral_skipped",
            "missing_files",
            "unreadable_rows",
            "view_unknown",
            "boxes_without_image_size",
        ):
            if getattr(self, name):
                lines.append(f"  {name.replace('_', ' ')}: {getattr(self, name)}")
        if self.unknown_labels:
            lines.append(f"  unknown label values (kept blank): {dict(self.unknown_labels.most_common(10))}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------------


def open_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a CSV, gzip or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def find_file(root: Path, patterns: Sequence[str], *, what: str) -> Path:
    for pattern in patterns:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    raise InputError(f"{what}: none of {list(patterns)} under {root}.")


def chexpert_value(value: str, report: IngestReport, column: str) -> str:
    """CheXpert-style cell -> '1', '0', '-1' or ''. Anything else is counted and left blank."""
    text = value.strip()
    if text in ("", "nan", "NaN"):
        return ""
    try:
        number = float(text)
    except ValueError:
        report.unknown_labels[f"{column}={text}"] += 1
        return ""
    if number in (1.0, 0.0, -1.0):
        return str(int(number))
    report.unknown_labels[f"{column}={text}"] += 1
    return ""


def with_hierarchy(labels: dict[str, str]) -> dict[str, str]:
    """CheXpert's parent rule: a positive child finding makes Lung Opacity positive."""
    if any(labels.get(c) == "1" for c in ("Edema", "Consolidation", "Pneumonia", "Lung Lesion", "Atelectasis")):
        labels["Lung Opacity"] = "1"
    return labels


def labels_from_set(found: set[str], mapping: dict[str, Sequence[str]], *, exhaustive: bool) -> dict[str, str]:
    """Labels from a set of a collection's finding names. ``exhaustive``: the collection's list is complete
    for the columns it maps to, so unmentioned mapped columns are 0 (else blank)."""
    mapped = {column for columns in mapping.values() for column in columns}
    labels = {c: ("0" if exhaustive and c in mapped else "") for c in CHEXPERT_LABELS}
    for name in found:
        for column in mapping.get(name, ()):
            labels[column] = "1"
    if "No Finding" in mapped and any(
        labels[c] == "1" for c in CHEXPERT_LABELS if c not in ("No Finding", "Support Devices")
    ):
        labels["No Finding"] = "0"
    return with_hierarchy(labels)


def train_val_split(patient_id: str, *, official: str | None = None) -> str:
    """Official test stays test; everything else is split train/val by patient hash (test hashes go to val)."""
    if official == "test":
        return "test"
    split = split_for_patient(patient_id)
    return "val" if split == "test" else split


class Writer:
    """Collects rows for one manifest: paths relative to the manifest, optional existence checks. Rows are
    spooled to a temporary file beside the manifest as they come (one JSON line each), so a 650k-row
    collection is imported in constant memory; :meth:`write` turns the spool into the CSV."""

    def __init__(self, out: Path, report: IngestReport, *, check_files: bool, frontal_only: bool) -> None:
        self.out, self.report, self.check_files, self.frontal_only = out, report, check_files, frontal_only
        self.extra = list(EXTRA_COLUMNS)  # source-specific columns (the phantom's masks) are added as seen
        out.parent.mkdir(parents=True, exist_ok=True)
        self.spool_path = out.with_name(f"{out.name}.{os.getpid()}.rows.jsonl")
        self.spool = open(self.spool_path, "w", encoding="utf-8")  # noqa: SIM115 (closed by write or close)

    def add(self, where: str, image: Path, **fields: str) -> None:
        if fields["view"] not in ("PA", "AP", "LATERAL"):
            self.report.problem("view_unknown", where, f"({fields['view']!r})")
            return
        if self.frontal_only and fields["view"] == "LATERAL":
            self.report.lateral_skipped += 1
            return
        if self.check_files and not image.is_file():
            self.report.problem("missing_files", where, str(image))
            return
        labels = {c: fields.pop(c, "") for c in CHEXPERT_LABELS}
        row = {c: "" for c in COLUMNS + EXTRA_COLUMNS}
        row.update(fields)
        row.update(labels)
        row["path"] = os.path.relpath(image, self.out.parent)
        self.extra += [k for k in row if k not in COLUMNS and k not in self.extra]
        self.spool.write(json.dumps(row) + "\n")

    def write(self) -> int:
        self.spool.close()

        def rows() -> Iterator[dict[str, str]]:
            with open(self.spool_path, encoding="utf-8") as handle:
                for line in handle:
                    yield {**dict.fromkeys(self.extra, ""), **json.loads(line)}

        try:
            self.report.rows_written = write_manifest(self.out, rows(), extra=tuple(self.extra))
        finally:
            self.close()
        return self.report.rows_written

    def close(self) -> None:
        """Remove the spool (also when an importer failed)."""
        self.spool.close()
        self.spool_path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------
# Importers
# ------------------------------------------------------------------------------------------------------


def ingest_chexpert(root: Path, w: Writer, r: IngestReport) -> None:
    """``train.csv`` and ``valid.csv``: paths as written there (relative to the folder holding the dataset)."""
    for name, official in (("train.csv", None), ("valid.csv", "test")):
        csv_path = next((p for p in (root / name, *root.glob(f"*/{name}")) if p.is_file()), None)
        if csv_path is None:
            continue
        for number, row in enumerate(open_csv(csv_path), start=2):
            r.rows_read += 1
            where = f"{name}:{number}"
            try:
                path = row["Path"]
                match = re.search(r"(patient\d+)/(study\d+)", path)
                patient, study = match.group(1), match.group(2)
            except (KeyError, AttributeError):
                r.problem("unreadable_rows", where, "(no patientNNNNN/studyN in Path)")
                continue
            frontal = row.get("Frontal/Lateral", "") == "Frontal"
            view = row.get("AP/PA", "") if frontal else "LATERAL"
            if frontal and view not in ("AP", "PA"):
                r.problem("view_unknown", where, f"(frontal with AP/PA {view!r}: kept as AP)")
                view = "AP"
            # Paths start with the dataset folder (CheXpert-v1.0-small/...): resolve against root's parent too
            image = root / path if (root / path).exists() else root.parent / path
            labels = {c: chexpert_value(row.get(c, ""), r, c) for c in CHEXPERT_LABELS}
            w.add(
                where,
                image,
                dataset="chexpert",
                patient_id=patient,
                study_id=f"{patient}/{study}",
                view=view,
                split=train_val_split(patient, official=official),
                report="",
                sex=row.get("Sex", ""),
                age=row.get("Age", ""),
                **labels,
            )
    if r.rows_read == 0:
        raise InputError(f"chexpert: no train.csv or valid.csv under {root}.")


NIH_TO_CHEXPERT = {
    "Atelectasis": ("Atelectasis",),
    "Cardiomegaly": ("Cardiomegaly",),
    "Effusion": ("Pleural Effusion",),
    "Infiltration": ("Lung Opacity",),
    "Mass": ("Lung Lesion",),
    "Nodule": ("Lung Lesion",),
    "Pneumonia": ("Pneumonia",),
    "Pneumothorax": ("Pneumothorax",),
    "Consolidation": ("Consolidation",),
    "Edema": ("Edema",),
    "Pleural_Thickening": ("Pleural Other",),
    "No Finding": ("No Finding",),
    "Emphysema": (),
    "Fibrosis": (),
    "Hernia": (),  # no CheXpert counterpart
}


def ingest_chestxray14(root: Path, w: Writer, r: IngestReport) -> None:
    """``Data_Entry_2017*.csv`` with pipe-separated findings; official ``train_val_list.txt``/``test_list.txt``."""
    entries = find_file(
        root, ["Data_Entry_2017*.csv", "Data_Entry_2017*.csv.gz", "*/Data_Entry_2017*.csv"], what="chestx-ray14"
    )
    test_list = next(root.rglob("test_list.txt"), None)
    official_test = set(test_list.read_text().split()) if test_list else set()
    locations = {p.name: p for p in root.rglob("*.png")}  # images_001/images/... : one walk, then lookups
    for number, row in enumerate(open_csv(entries), start=2):
        r.rows_read += 1
        where = f"{entries.name}:{number}"
        name, findings = row.get("Image Index", ""), row.get("Finding Labels", "")
        if not name or not findings:
            r.problem("unreadable_rows", where, "(no Image Index or Finding Labels)")
            continue
        found = set(findings.split("|"))
        for unknown in found - NIH_TO_CHEXPERT.keys():
            r.unknown_labels[f"Finding Labels={unknown}"] += 1
        patient = f"nih-{int(row['Patient ID']):05d}" if row.get("Patient ID", "").isdigit() else name.split("_")[0]
        labels = labels_from_set(found, NIH_TO_CHEXPERT, exhaustive=True)
        w.add(
            where,
            locations.get(name, root / "images" / name),
            dataset="chestx-ray14",
            patient_id=patient,
            study_id=name,
            view=row.get("View Position", ""),
            split=train_val_split(patient, official="test" if name in official_test else None),
            report="",
            sex=row.get("Patient Gender", ""),
            age=row.get("Patient Age", ""),
            **labels,
        )


def report_sections(text: str) -> str:
    """MIMIC-CXR free text -> 'FINDINGS: ... IMPRESSION: ...' (Cheff joins these two sections)."""
    text = text.replace("\r", "")
    sections = {}
    for name in ("FINDINGS", "IMPRESSION"):
        match = re.search(
            rf"^\s*{name}\s*:(.*?)(?=^\s*[A-Z][A-Z /()-]{{2,}}:|\Z)", text, flags=re.DOTALL | re.MULTILINE
        )
        if match:
            sections[name] = " ".join(match.group(1).split())
    return " ".join(f"{k}: {v}" for k, v in sections.items() if v)


def ingest_mimic(root: Path, w: Writer, r: IngestReport) -> None:
    """MIMIC-CXR-JPG: ``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg``, metadata, CheXpert labels, split; reports."""
    metadata = find_file(
        root, ["mimic-cxr-2.0.0-metadata.csv*", "*/mimic-cxr-2.0.0-metadata.csv*"], what="mimic-cxr metadata"
    )
    labels_csv = find_file(
        root, ["mimic-cxr-2.0.0-chexpert.csv*", "*/mimic-cxr-2.0.0-chexpert.csv*"], what="mimic-cxr labels"
    )
    split_csv = find_file(root, ["mimic-cxr-2.0.0-split.csv*", "*/mimic-cxr-2.0.0-split.csv*"], what="mimic-cxr split")
    labels = {(row["subject_id"], row["study_id"]): row for row in open_csv(labels_csv)}
    splits = {row["dicom_id"]: row["split"] for row in open_csv(split_csv)}
    report_roots = [
        p for p in (root / "mimic-cxr-reports" / "files", root / "reports" / "files", root / "files") if p.is_dir()
    ]
    views = {"PA": "PA", "AP": "AP", "LATERAL": "LATERAL", "LL": "LATERAL", "RL": "LATERAL"}
    for number, row in enumerate(open_csv(metadata), start=2):
        r.rows_read += 1
        where = f"{metadata.name}:{number}"
        try:
            subject, study, dicom = row["subject_id"], row["study_id"], row["dicom_id"]
        except KeyError:
            r.problem("unreadable_rows", where)
            continue
        folder = Path("files") / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        report = ""
        for base in report_roots:
            text_file = base / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
            if text_file.is_file():
                report = report_sections(text_file.read_text(errors="replace"))
                break
        study_labels = labels.get((subject, study), {})
        values = {c: chexpert_value(study_labels.get(c, ""), r, c) for c in CHEXPERT_LABELS}
        official = {"train": None, "validate": None, "test": "test"}.get(splits.get(dicom, ""), None)
        w.add(
            where,
            root / folder / f"{dicom}.jpg",
            dataset="mimic-cxr",
            patient_id=f"mimic-{subject}",
            study_id=study,
            view=views.get(row.get("ViewPosition", ""), row.get("ViewPosition", "") or "unknown"),
            split=train_val_split(f"mimic-{subject}", official=official),
            report=report,
            **values,
        )


PADCHEST_TO_CHEXPERT = {
    "normal": ("No Finding",),
    "cardiomegaly": ("Cardiomegaly",),
    "pleural effusion": ("Pleural Effusion",),
    "pneumothorax": ("Pneumothorax",),
    "atelectasis": ("Atelectasis",),
    "consolidation": ("Consolidation",),
    "pneumonia": ("Pneumonia",),
    "nodule": ("Lung Lesion",),
    "mass": ("Lung Lesion",),
    "pulmonary mass": ("Lung Lesion",),
    "pulmonary edema": ("Edema",),
    "infiltrates": ("Lung Opacity",),
    "alveolar pattern": ("Lung Opacity",),
    "pleural thickening": ("Pleural Other",),
    "rib fracture": ("Fracture",),
    "clavicle fracture": ("Fracture",),
    "vertebral fracture": ("Fracture",),
    "pacemaker": ("Support Devices",),
    "dual chamber device": ("Support Devices",),
    "single chamber device": ("Support Devices",),
    "NSG tube": ("Support Devices",),
    "endotracheal tube": ("Support Devices",),
    "central venous catheter": ("Support Devices",),
    "chest drain tube": ("Support Devices",),
    "central venous catheter via jugular vein": ("Support Devices",),
    "central venous catheter via subclavian vein": ("Support Devices",),
    "sternotomy": ("Support Devices",),
    "electrical device": ("Support Devices",),
}
PADCHEST_VIEWS = {"PA": "PA", "AP": "AP", "AP_horizontal": "AP", "L": "LATERAL"}


def ingest_padchest(root: Path, w: Writer, r: IngestReport) -> None:
    """PadChest CSV: ``ImageDir/ImageID``, ``Projection``, the Spanish ``Report`` kept as-is (language ``es``)."""
    table = find_file(root, ["PADCHEST_chest_x_ray_images_labels_160K*.csv*", "*/PADCHEST*.csv*"], what="padchest")
    for number, row in enumerate(open_csv(table), start=2):
        r.rows_read += 1
        where = f"{table.name}:{number}"
        try:
            found = {label.strip() for label in ast.literal_eval(row["Labels"] or "[]") if isinstance(label, str)}
        except (KeyError, ValueError, SyntaxError):
            r.problem("unreadable_rows", where, "(Labels is not a list)")
            continue
        labels = labels_from_set(found, PADCHEST_TO_CHEXPERT, exhaustive=False)
        image = root / row.get("ImageDir", "").strip() / row.get("ImageID", "")
        patient = f"padchest-{row.get('PatientID', '')}"
        w.add(
            where,
            image,
            dataset="padchest",
            patient_id=patient,
            study_id=row.get("StudyID", ""),
            view=PADCHEST_VIEWS.get(row.get("Projection", ""), row.get("Projection", "") or "unknown"),
            split=train_val_split(patient),
            report=(row.get("Report") or "").strip(),
            language="es",
            sex=row.get("PatientSex_DICOM", ""),
            **labels,
        )


VINDR_TO_CHEXPERT = {
    "Cardiomegaly": ("Cardiomegaly",),
    "Pleural effusion": ("Pleural Effusion",),
    "Pneumothorax": ("Pneumothorax",),
    "Atelectasis": ("Atelectasis",),
    "Consolidation": ("Consolidation",),
    "Edema": ("Edema",),
    "Nodule/Mass": ("Lung Lesion",),
    "Lung Opacity": ("Lung Opacity",),
    "Pneumonia": ("Pneumonia",),
    "Rib fracture": ("Fracture",),
    "Clavicle fracture": ("Fracture",),
    "Pleural thickening": ("Pleural Other",),
    "No finding": ("No Finding",),
    "Aortic enlargement": ("Enlarged Cardiomediastinum",),
    "Enlarged PA": ("Enlarged Cardiomediastinum",),
    "Infiltration": ("Lung Opacity",),
    # VinDr findings without a CheXpert counterpart: known, so not reported as unknown
    "Pulmonary fibrosis": (),
    "Other lesion": (),
    "Calcification": (),
    "ILD": (),
    "Other disease": (),
    "Other diseases": (),
    "Lung cyst": (),
    "Mediastinal shift": (),
    "Emphysema": (),
    "Lung cavity": (),
    "COPD": (),
    "Lung tumor": ("Lung Lesion",),
    "Tuberculosis": (),
}


def ingest_vindr(root: Path, w: Writer, r: IngestReport) -> None:
    """VinDr-CXR: DICOMs in ``train/`` and ``test/``, image-level labels and bounding boxes (any reader positive)."""
    for part, official in (("train", None), ("test", "test")):
        boxes: dict[str, list[dict[str, object]]] = {}
        found: dict[str, set[str]] = {}
        annotations = next(
            (
                p
                for p in (root / f"annotations_{part}.csv", root / "annotations" / f"annotations_{part}.csv")
                if p.is_file()
            ),
            None,
        )
        if annotations is None and part == "train":
            annotations = next(root.glob("*train*.csv"), None)  # the Kaggle layout (vinbigdata train.csv)
        if annotations is None:
            continue
        for row in open_csv(annotations):
            image_id, name = row.get("image_id", ""), row.get("class_name", "")
            found.setdefault(image_id, set()).add(name)
            if row.get("x_min"):
                boxes.setdefault(image_id, []).append(
                    {"label": name, "pixels": [float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max")]}
                )
        for number, image_id in enumerate(sorted(found), start=1):
            r.rows_read += 1
            for unknown in found[image_id] - VINDR_TO_CHEXPERT.keys():
                r.unknown_labels[f"class_name={unknown}"] += 1
            image = next(
                (p for p in (root / part / f"{image_id}.dicom", root / part / f"{image_id}.dcm") if p.exists()),
                root / part / f"{image_id}.dicom",
            )
            w.add(
                f"{annotations.name}:{image_id}",
                image,
                dataset="vindr-cxr",
                patient_id=f"vindr-{image_id}",
                study_id=image_id,
                view="PA",
                split=train_val_split(f"vindr-{image_id}", official=official),
                report="",
                boxes=_normalised_boxes(boxes.get(image_id, []), image, r, where=f"{annotations.name}:{image_id}"),
                **labels_from_set(found[image_id], VINDR_TO_CHEXPERT, exhaustive=True),
            )


def _normalised_boxes(boxes: list[dict[str, object]], image: Path, r: IngestReport, *, where: str) -> str:
    """Boxes in pixels of a DICOM -> the manifest's ``boxes`` JSON, normalised by the image's size read from its
    header (:mod:`cxr_studio.layout`'s convention); empty, and counted, when the image cannot be read."""
    if not boxes:
        return "[]"
    try:
        import pydicom

        header = pydicom.dcmread(image, stop_before_pixels=True)
        width, height = float(header.Columns), float(header.Rows)
    except Exception:  # noqa: BLE001 - any unreadable header means the same: the boxes cannot be placed
        r.problem("boxes_without_image_size", where, str(image))
        return ""
    out = []
    for box in boxes:
        x0, y0, x1, y1 = box["pixels"]  # type: ignore[misc]
        normalised = [min(max(v, 0.0), 1.0) for v in (x0 / width, y0 / height, x1 / width, y1 / height)]
        if normalised[0] < normalised[2] and normalised[1] < normalised[3]:
            out.append({"label": box["label"], "side": None, "box": [round(v, 4) for v in normalised]})
    return json.dumps(out)


def ingest_brax(root: Path, w: Writer, r: IngestReport) -> None:
    """BRAX master spreadsheet: CheXpert-style labels, ``PngPath`` (or ``DicomPath``), ``PatientID``,
    ``ViewPosition``."""
    table = find_file(root, ["master_spreadsheet*.csv", "*/master_spreadsheet*.csv", "*.csv"], what="brax")
    views = {"PA": "PA", "AP": "AP", "L": "LATERAL", "LL": "LATERAL", "LATERAL": "LATERAL", "RL": "LATERAL"}
    for number, row in enumerate(open_csv(table), start=2):
        r.rows_read += 1
        where = f"{table.name}:{number}"
        path = row.get("PngPath") or row.get("DicomPath") or row.get("Path")
        if not path:
            r.problem("unreadable_rows", where, "(no PngPath/DicomPath)")
            continue
        patient = f"brax-{row.get('PatientID', Path(path).parts[0])}"
        w.add(
            where,
            root / path,
            dataset="brax",
            patient_id=patient,
            study_id=row.get("AccessionNumber", ""),
            view=views.get(row.get("ViewPosition", "").upper(), row.get("ViewPosition", "") or "unknown"),
            split=train_val_split(patient),
            report="",
            sex=row.get("PatientSex", ""),
            age=row.get("PatientAge", ""),
            **{c: chexpert_value(row.get(c, ""), r, c) for c in CHEXPERT_LABELS},
        )


def ingest_folder(root: Path, w: Writer, r: IngestReport, *, labels_csv: Path | None = None, view: str = "PA") -> None:
    """Any folder of images or DICOMs; an optional CSV (``path``/``filename``, ``report``, label columns) adds text."""
    extra: dict[str, dict[str, str]] = {}
    if labels_csv is not None:
        for row in open_csv(labels_csv):
            key = row.get("path") or row.get("filename") or ""
            extra[Path(key).as_posix()] = row
    for number, image in enumerate(
        sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), start=1
    ):
        r.rows_read += 1
        relative = image.relative_to(root).as_posix()
        row = extra.get(relative) or extra.get(image.name) or {}
        patient = row.get("patient_id") or f"folder-{image.stem}"
        w.add(
            f"{relative}",
            image,
            dataset=row.get("dataset") or root.name,
            patient_id=patient,
            study_id=row.get("study_id") or image.stem,
            view=row.get("view") or view,
            split=row.get("split") or split_for_patient(patient),
            report=row.get("report", ""),
            **{c: chexpert_value(row.get(c, ""), r, c) for c in CHEXPERT_LABELS},
        )


def ingest_phantom(root: Path, w: Writer, r: IngestReport, *, n: int = 1000, size: int = 256, seed: int = 0) -> None:
    """The phantom set in ``root`` (generated there first when it has no manifest)."""
    from cxr_studio.data.manifest import iter_manifest
    from cxr_studio.data.phantom import write_dataset

    source = root / "manifest.csv"
    if not source.is_file():
        write_dataset(root, n=n, size=size, seed=seed, quiet=True)
    for number, row in enumerate(iter_manifest(source), start=2):
        r.rows_read += 1
        fields = {k: v for k, v in row.items() if k != "path"}
        for column in ("device_mask_path", "finding_mask_path", "clean_path"):  # rebased like the image path
            if row.get(column):  # a phantom set written before finding masks existed has none
                fields[column] = os.path.relpath(root / row[column], w.out.parent)
        w.add(f"phantom:{number}", root / row["path"], **fields)


SOURCES: dict[str, Callable[..., None]] = {
    "mimic-cxr": ingest_mimic,
    "chexpert": ingest_chexpert,
    "chestx-ray14": ingest_chestxray14,
    "padchest": ingest_padchest,
    "vindr-cxr": ingest_vindr,
    "brax": ingest_brax,
    "folder": ingest_folder,
    "phantom": ingest_phantom,
}


def ingest(
    source: str,
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    frontal_only: bool = False,
    check_files: bool = False,
    **options,
) -> IngestReport:
    """Import ``source`` under ``root`` into the manifest ``out``; returns the counts."""
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}.")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--root {root} is not a folder.")
    report = IngestReport(source)
    writer = Writer(Path(out), report, check_files=check_files, frontal_only=frontal_only)
    try:
        SOURCES[source](root, writer, report, **options)
        writer.write()
    finally:
        writer.close()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.data.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=sorted(SOURCES), help="the collection's format")
    parser.add_argument("--root", required=True, type=Path, help="the collection's folder")
    parser.add_argument("--out", required=True, type=Path, help="manifest to write")
    parser.add_argument("--frontal-only", action="store_true", help="leave out lateral views (counted)")
    parser.add_argument("--check-files", action="store_true", help="check every image exists (slow on network drives)")
    parser.add_argument("--labels-csv", type=Path, help="folder: CSV with path/filename, report and label columns")
    parser.add_argument(
        "--view", default="PA", choices=("PA", "AP", "LATERAL"), help="folder: view of images without one"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    options = {"labels_csv": args.labels_csv, "view": args.view} if args.source == "folder" else {}
    try:
        report = ingest(
            args.source, args.root, args.out, frontal_only=args.frontal_only, check_files=args.check_files, **options
        )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
