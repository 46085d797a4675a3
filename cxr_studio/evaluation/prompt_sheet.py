"""The prompt sheet: fixed one-sided and bilateral reports, several seeds each, beside the phantom's own
rendering of the same report, so that a person can check the judge's laterality figures by eye.

Every one-sided finding and sided device of the judge (:data:`~cxr_studio.models.classifier.SIDED_ITEMS`)
appears once on each side, at its most visible severity, plus three reports without a side. The report
text is the phantom's own (the real image's report), so sample and real image share their prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxr_studio import imaging
from cxr_studio.config import PREVIEW_HELP
from cxr_studio.data.phantom import Device, Finding, render_case
from cxr_studio.errors import InputError
from cxr_studio.files import write_atomic
from cxr_studio.labels import SIDED_DEVICE_NAMES, SIDED_ITEMS


@dataclass(frozen=True)
class SheetRow:
    """One report of the sheet: what the phantom draws (its report is the prompt)."""

    label: str
    findings: tuple[Finding, ...] = ()
    devices: tuple[Device, ...] = ()


SHEET_ZONES = {"consolidation": "lower", "nodule": "upper", "mass": "upper"}  # where the zoned findings are drawn


def _sided_rows() -> list[SheetRow]:
    """Each judged sided item (:data:`~cxr_studio.labels.SIDED_ITEMS`, its first manifest name) on each side, large."""
    rows = []
    for side in ("left", "right"):
        for names in SIDED_ITEMS.values():
            name = names[0]
            label = f"{name.replace('_', ' ')}, {side}"
            if name in SIDED_DEVICE_NAMES:
                rows.append(SheetRow(label, devices=(Device(name, side),)))
            else:
                rows.append(SheetRow(label, (Finding(name, side, "large", SHEET_ZONES.get(name)),)))
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
    size = max(studio.image_size, 64)
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


def sample_sheet(studio: Any, *, seeds: int = 2, tile: int = 128, seed: int = 0) -> Image.Image:
    """The model card's picture: each one-sided item on the left and on the right of the patient, side by side
    (a real phantom, framed, then ``seeds`` samples of its report), then the reports without a side.

    8-bit grey PIL image; tiles of ``tile`` px; the patient's right is on each tile's left (PA), marked R.
    """
    return draw(render(studio, seeds=seeds, judge_size=tile, seed=seed), seeds=seeds)


def judged(sheet: dict[str, Any], model: Any) -> dict[str, Any]:
    """The judge's laterality verdicts (:func:`~cxr_studio.evaluation.classifier.side_verdicts`) on a rendered
    sheet's real phantoms and samples, as ``laterality_real`` and ``laterality_samples``; ``model``: a
    :class:`~cxr_studio.models.classifier.FindingClassifier` with thresholds, at the size the sheet was rendered at."""
    from cxr_studio.evaluation import classifier as judge

    if not model.thresholds or model.config.image_size != sheet["real"].shape[-1]:
        raise InputError("a judge with thresholds at the sheet's size is needed (an evaluation's classifier/).")
    return {
        f"laterality_{name}": judge.side_verdicts(
            judge.predict(model, sheet[kind]), sheet["manifest_rows"], model.thresholds
        )
        for name, kind in (("real", "real"), ("samples", "synthetic"))
    }


def draw(sheet: dict[str, Any], *, seeds: int) -> Image.Image:
    """:func:`render`'s output as the sheet picture (see :func:`sample_sheet`)."""
    tile = sheet["real"].shape[-1]
    real, fake = imaging.to_unsigned(sheet["real"][:, 0]), imaging.to_unsigned(sheet["synthetic"][:, 0])
    index = {row["label"]: r for r, row in enumerate(sheet["rows"])}
    items = [label.rsplit(", ", 1)[0] for label in index if label.endswith(", left")]
    lines = [(f"{item}, left", f"{item}, right") for item in items] + [
        (label, None) for label in index if not label.endswith((", left", ", right"))
    ]
    group = (1 + seeds) * tile
    header, gap = 16, tile // 8
    canvas = Image.new("L", (2 * group + gap, len(lines) * (tile + header)), 0)
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=11)
    for line, labels in enumerate(lines):
        top = line * (tile + header)
        for half, label in enumerate(labels):
            if label is None:
                continue
            r, left = index[label], half * (group + gap)
            pen.text((left + 2, top + 2), label, fill=230, font=font)
            tiles = [real[r * seeds], *fake[r * seeds : (r + 1) * seeds]]
            for k, image in enumerate(tiles):
                x = left + k * tile
                canvas.paste(Image.fromarray(imaging.to_uint8(image)), (x, top + header))
                pen.text((x + 3, top + header + 2), "R", fill=255, font=font)
                if k == 0:
                    pen.rectangle((x, top + header, x + tile - 1, top + header + tile - 1), outline=255, width=2)
    return canvas


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_studio.evaluation.prompt_sheet",
        description="Write the sample sheet: every one-sided finding and device on both sides, real beside samples.",
    )
    parser.add_argument("--model", help="model folder (default: the bundled demo cascade)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--seeds", type=int, default=2, help="samples (and real phantoms) per report")
    parser.add_argument("--tile", type=int, default=128, help="tile size in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and the phantoms")
    parser.add_argument("--preview", action="store_true", help=PREVIEW_HELP)
    parser.add_argument("--sampler", help="sampler of the latent stage (default: the model's)")
    parser.add_argument("--steps", type=int, help="sampling steps of the latent stage (default: the model's)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    parser.add_argument(
        "--side-contrast",
        action=argparse.BooleanOptionalAction,
        help="guide each sided report away from its mirror image (default: the model's)",
    )
    parser.add_argument(
        "--judge",
        help="a saved judge (an evaluation's classifier/ folder): also print its laterality verdicts on the sheet's "
        "real phantoms and samples (named side only / both / wrong / missed) and write them beside the PNG as .json; "
        "the tiles then take the judge's size",
    )
    args = parser.parse_args(argv)
    from cxr_studio.model_folders import load_model
    from cxr_studio.models.classifier import FindingClassifier

    try:
        studio = load_model(args.model)
        if args.preview:
            studio = studio.as_preview()
        chosen = {
            "sampler": args.sampler,
            "num_steps": args.steps,
            "guidance_scale": args.guidance,
            "side_contrast": args.side_contrast,
        }
        studio = studio.with_sampling({k: v for k, v in chosen.items() if v is not None})
        model = FindingClassifier.load(args.judge) if args.judge else None
        tile = model.config.image_size if model else args.tile
        sheet = render(studio, seeds=args.seeds, judge_size=tile, seed=args.seed)
        draw(sheet, seeds=args.seeds).save(args.out)
        if args.judge:
            d = studio.sampling
            sampling = {
                "sampler": d.sampler,
                "steps": d.num_steps,
                "guidance": d.guidance_scale,
                "side_contrast": d.side_contrast,
            }
            verdicts = {"model": studio.model_id, "seeds": args.seeds, **sampling, **judged(sheet, model)}
            write_atomic(args.out.with_suffix(".json"), json.dumps(verdicts, indent=1).encode())
            for kind in ("real", "samples"):
                v = verdicts[f"laterality_{kind}"]
                items = ", ".join(f"{k} {c['named_side_only']}/{c['cases']}" for k, c in v["per_item"].items())
                print(
                    f"{kind}: named side only {v['rate']:.1%} of {v['cases']} (both {v['both_sides']}, "
                    f"wrong {v['wrong_side']}, missed {v['missed']}); {items}"
                )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({studio.model_id}, {studio.sampling.sampler} {studio.sampling.num_steps} steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
