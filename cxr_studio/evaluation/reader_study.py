"""A blinded reader study (visual Turing test): can readers tell real radiographs from synthetic ones?

Every reader gets their own randomised sequence, balanced between real and synthetic cases, of images
prepared identically (same size, 8-bit PNG, no metadata, opaque names: nothing but pixels reaches the
reader). Each answer (real or synthetic, confidence 1 to 5, time taken) is committed to a local SQLite
file (write-ahead log) the moment it is given, so a refresh or a crash loses nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxr_studio import imaging
from cxr_studio.errors import InputError
from cxr_studio.evaluation.metrics import roc_auc

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY, truth TEXT NOT NULL CHECK (truth IN ('real', 'synthetic')), source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    reader TEXT NOT NULL, position INTEGER NOT NULL, case_id TEXT NOT NULL REFERENCES cases(case_id),
    answer TEXT NOT NULL CHECK (answer IN ('real', 'synthetic')),
    confidence INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),
    seconds REAL NOT NULL, answered_at REAL NOT NULL, PRIMARY KEY (reader, case_id));
"""


@dataclass(frozen=True)
class Case:
    case_id: str
    image_path: Path  # the prepared, anonymous PNG shown to the reader
    position: int
    total: int


class ReaderStudy:
    """One study in ``folder``: ``study.sqlite`` plus the prepared images."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.folder / "study.sqlite", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # an answer is on disk when record() returns
        self.db.executescript(SCHEMA)

    def add_cases(self, real: list[Any], synthetic: list[Any], *, size: int = 512) -> int:
        """Prepare every image identically (resize and crop to ``size``, 8-bit, no metadata) under an opaque id."""
        if not real or not synthetic:
            raise InputError("a reader study needs at least one real and one synthetic image.")
        for truth, images in (("real", real), ("synthetic", synthetic)):
            for source in images:
                radiograph = imaging.read_radiograph(source, name="study image")
                pixels = imaging.resize_center_crop(radiograph.display, size)
                case_id = hashlib.sha256(imaging.to_uint8(pixels).tobytes()).hexdigest()[:16]
                imaging.to_pil(pixels).save(self.folder / f"{case_id}.png", format="PNG")  # no text chunks: blind
                self.db.execute(
                    "INSERT OR IGNORE INTO cases VALUES (?, ?, ?)",
                    (case_id, truth, str(source) if isinstance(source, (str, os.PathLike)) else "array"),
                )
        return self.db.execute("SELECT COUNT(*) FROM cases").fetchone()[0]

    def sequence(self, reader: str) -> list[str]:
        """The reader's case order: seeded by their name, real and synthetic interleaved in random balanced pairs."""
        if not reader.strip():
            raise InputError("enter a reader name (any pseudonym) to start.")
        rows = self.db.execute("SELECT case_id, truth FROM cases ORDER BY case_id").fetchall()
        rng = np.random.default_rng(int(hashlib.sha256(reader.encode()).hexdigest()[:12], 16))
        real = [c for c, t in rows if t == "real"]
        synthetic = [c for c, t in rows if t == "synthetic"]
        rng.shuffle(real)
        rng.shuffle(synthetic)
        order: list[str] = []
        for k in range(max(len(real), len(synthetic))):  # balanced: within every pair, one of each (random order)
            pair = [x for x in (real[k] if k < len(real) else None, synthetic[k] if k < len(synthetic) else None) if x]
            rng.shuffle(pair)
            order += pair
        return order

    def next_case(self, reader: str) -> Case | None:
        """The first case in the reader's sequence they have not answered; None when they are done."""
        order = self.sequence(reader)
        done = {row[0] for row in self.db.execute("SELECT case_id FROM answers WHERE reader = ?", (reader,))}
        for position, case_id in enumerate(order):
            if case_id not in done:
                return Case(case_id, self.folder / f"{case_id}.png", position + 1, len(order))
        return None

    def record(self, reader: str, case_id: str, answer: str, confidence: int, seconds: float) -> None:
        """Store one answer at once (committed before returning)."""
        if answer not in ("real", "synthetic"):
            raise InputError(f"answer {answer!r}; 'real' or 'synthetic' accepted.")
        if not 1 <= int(confidence) <= 5:
            raise InputError(f"confidence {confidence!r}; 1 to 5 accepted.")
        position = self.sequence(reader).index(case_id) + 1
        self.db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (reader, position, case_id, answer, int(confidence), float(seconds), time.time()),
        )

    def results(self) -> dict[str, Any]:
        """Accuracy, binomial test against chance, sensitivity and specificity for 'synthetic', ROC AUC."""
        from scipy.stats import binomtest

        rows = self.db.execute(
            "SELECT a.answer, a.confidence, c.truth FROM answers a JOIN cases c USING (case_id)"
        ).fetchall()
        if not rows:
            return {"answers": 0}
        answer = np.array([r[0] == "synthetic" for r in rows])
        truth = np.array([r[2] == "synthetic" for r in rows])
        # a 10-point suspicion score: 'synthetic, sure' highest, 'real, sure' lowest
        score = np.array([r[1] if r[0] == "synthetic" else -r[1] for r in rows], dtype=float)
        correct = int((answer == truth).sum())
        return {
            "answers": len(rows),
            "readers": self.db.execute("SELECT COUNT(DISTINCT reader) FROM answers").fetchone()[0],
            "accuracy": correct / len(rows),
            "p_value_vs_chance": float(binomtest(correct, len(rows), 0.5).pvalue),
            "sensitivity": float(answer[truth].mean()) if truth.any() else None,
            "specificity": float((~answer[~truth]).mean()) if (~truth).any() else None,
            "roc_auc": roc_auc(score, truth),
        }

    def export_csv(self) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["reader", "position", "case_id", "truth", "answer", "confidence", "seconds", "answered_at"])
        query = (
            "SELECT a.reader, a.position, a.case_id, c.truth, a.answer, a.confidence, a.seconds, a.answered_at "
            "FROM answers a JOIN cases c USING (case_id) ORDER BY a.reader, a.position"
        )
        writer.writerows(self.db.execute(query))
        return buffer.getvalue().encode()
