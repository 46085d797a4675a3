"""Merge several manifests into one: ``python -m cxr_studio.data.merge A.csv B.csv ... --out M.csv``.

Paths are rewritten relative to the new manifest, every row keeps its ``dataset``, extra columns are
united (blank where a source lacks them), and a patient id that two datasets share is kept apart by
prefixing the dataset name.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from cxr_studio.data.manifest import COLUMNS, read_manifest, write_manifest
from cxr_studio.errors import InputError


def merge(manifests: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> int:
    """Write the merged manifest; returns the number of rows."""
    if len(manifests) < 1:
        raise InputError("give at least one manifest to merge.")
    out = Path(out)
    rows, extra = [], []
    datasets_of_patient: dict[str, set[str]] = defaultdict(set)
    for manifest in map(Path, manifests):
        for row in read_manifest(manifest):
            row["path"] = os.path.relpath((manifest.parent / row["path"]).resolve(), out.parent.resolve())
            datasets_of_patient[row["patient_id"]].add(row["dataset"])
            rows.append(row)
            extra += [k for k in row if k not in COLUMNS and k not in extra]
    for row in rows:
        if len(datasets_of_patient[row["patient_id"]]) > 1:  # the same id in two collections: two patients
            row["patient_id"] = f"{row['dataset']}:{row['patient_id']}"
    return write_manifest(out, ({**dict.fromkeys(extra, ""), **row} for row in rows), extra=tuple(extra))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.data.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", type=Path, help="manifests to merge")
    parser.add_argument("--out", required=True, type=Path, help="the merged manifest to write")
    args = parser.parse_args(argv)
    try:
        count = merge(args.manifests, args.out)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"merged {len(args.manifests)} manifests into {args.out}: {count} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
