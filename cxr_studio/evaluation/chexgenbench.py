"""Prompts and images in the layout CheXGenBench's scripts read, so its own code scores our outputs unchanged.

``python -m cxr_studio.evaluation.chexgenbench --synthetic SET_DIR --real-manifest M --out DIR`` (a set made by
``python -m cxr_studio.synthesize``), or ``python -m cxr_studio.evaluate ... --export-chexgenbench DIR`` (the
evaluation's own samples for the test reports). ``DIR`` then holds:

- ``images/SyntheticImg_<id>.png``: 8-bit grayscale, labelled synthetic. 8-bit on purpose: the benchmark opens
  every image with PIL's ``convert("RGB")``, which saturates a 16-bit PNG to white.
- ``prompt_INFO.csv``: ``id``, ``annotated_prompt`` (the report), ``img_savename`` (the benchmark's default image
  column), ``synthetic_filename`` (the name its own generation script writes), ``chexpert_labels``.
- ``real_test.csv``: the real test images (``path`` absolute, ``annotated_prompt``, ``chexpert_labels``).
- ``README.txt``: the benchmark's command lines for these files.

``chexpert_labels`` is a Python dict literal over the 14 CheXpert labels (1.0 / 0.0 / -1.0, ``None`` where the
report does not say), which the benchmark's conditional mode reads with ``ast.literal_eval``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxr_studio import imaging
from cxr_studio.data.manifest import iter_manifest
from cxr_studio.errors import InputError
from cxr_studio.files import write_atomic
from cxr_studio.labels import CHEXPERT_LABELS

SYNTHETIC_CSV, REAL_CSV, IMAGES = "prompt_INFO.csv", "real_test.csv", "images"
SYNTHETIC_COLUMNS = ("id", "annotated_prompt", "img_savename", "synthetic_filename", "chexpert_labels")
REAL_COLUMNS = ("path", "annotated_prompt", "chexpert_labels")


def chexpert_labels(row: dict[str, str]) -> str:
    """The row's 14 CheXpert labels as the benchmark's dict literal."""
    return repr({label: float(row[label]) if row.get(label, "") != "" else None for label in CHEXPERT_LABELS})


def export(
    out: str | os.PathLike[str],
    *,
    images01: Sequence[np.ndarray],
    rows: Sequence[dict[str, str]],
    real_manifest: str | os.PathLike[str],
    parameters: Sequence[dict] | None = None,
) -> Path:
    """Write ``images01`` (each ``(H, W)`` in ``[0, 1]``, made from ``rows[i]``'s report) and the real test split
    of ``real_manifest`` in the benchmark's layout; returns ``out``."""
    if len(images01) != len(rows) or not rows:
        raise InputError(f"{len(images01)} images for {len(rows)} reports; one image per report, at least one.")
    out = Path(out)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    synthetic = []
    for index, (image, row) in enumerate(zip(images01, rows)):
        name = f"SyntheticImg_{index:06d}.png"
        recorded = parameters[index] if parameters is not None else {"report": row["report"]}
        imaging.save_png(out / IMAGES / name, image, bit_depth=8, parameters=recorded, synthetic=True)
        synthetic.append([index, row["report"], name, name, chexpert_labels(row)])
    manifest = Path(real_manifest)
    real = [
        [str((manifest.parent / row["path"]).resolve()), row["report"], chexpert_labels(row)]
        for row in iter_manifest(manifest)
        if row["split"] == "test"
    ]
    if not real:
        raise InputError(f"{manifest.name} has no test split; the benchmark compares with real test images.")
    _write_csv(out / SYNTHETIC_CSV, SYNTHETIC_COLUMNS, synthetic)
    _write_csv(out / REAL_CSV, REAL_COLUMNS, real)
    write_atomic(out / "README.txt", _readme(out).encode())
    return out


def export_synthetic_set(
    set_dir: str | os.PathLike[str], *, real_manifest: str | os.PathLike[str], out: str | os.PathLike[str]
) -> Path:
    """A set made by ``python -m cxr_studio.synthesize`` (its manifest and images), exported with
    :func:`export`, one image in memory at a time."""
    set_dir = Path(set_dir)
    rows = list(iter_manifest(set_dir / "manifest.csv"))
    images = _LazyImages([set_dir / row["path"] for row in rows])
    return export(out, images01=images, rows=rows, real_manifest=real_manifest, parameters=_LazyParameters(images))


class _LazyImages(Sequence):
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        return imaging.read_radiograph(self.paths[index]).display


class _LazyParameters(Sequence):
    def __init__(self, images: _LazyImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return imaging.read_png_parameters(self.images.paths[index])


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows(rows)
    write_atomic(path, text.getvalue().encode("utf-8"))


def _readme(out: Path) -> str:
    return f"""Run CheXGenBench's own scripts on these files (from a checkout of Raman1121/CheXGenBench):

python metrics/fid.py --synthetic_csv {out / SYNTHETIC_CSV} --synthetic_img_col img_savename \\
    --synthetic_img_dir {out / IMAGES} --real_csv {out / REAL_CSV} --real_img_col path --real_img_dir / \\
    --experiment_type regular --extra_info cxr-studio

(add --experiment_type conditional --pathology "Pleural Effusion" for one finding's figures). The real images
are the phantom's, not MIMIC-CXR's: the figures compare models on the phantom, not with the published table.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_studio.evaluation.chexgenbench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--synthetic", required=True, type=Path, help="a set made by python -m cxr_studio.synthesize")
    parser.add_argument("--real-manifest", required=True, type=Path, help="the manifest whose test split is real")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the benchmark's layout into")
    args = parser.parse_args(argv)
    try:
        out = export_synthetic_set(args.synthetic, real_manifest=args.real_manifest, out=args.out)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}; see {out / 'README.txt'} for the benchmark's command")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
