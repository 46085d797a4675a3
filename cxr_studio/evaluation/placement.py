"""Placement in a drawn box: does a finding go where its layout puts it?

For an item and a box, two images from the same start noise: the phantom's report naming the item on the box's
side and zone, with the box as its layout, and the phantom's normal report with no layout. The two reports differ
in more than the item, so the images differ a little everywhere (the outline and the ribs shift by a pixel or two):
the change is smoothed (a Gaussian of 2 % of the image), which keeps a drawn finding and flattens thin edges, and the
centre of mass of its strongest 1 % is the change's centre; the item counts as placed when that centre lies inside
the box. Boxes are drawn at random inside the lung fields (nodule, mass)
or on the chest wall below the clavicle (a pacemaker's generator), on both sides, at the size of the rule's box.

CLI: ``python -m cxr_studio.evaluation.placement --model DIR --out placement.png [--boxes 8] [--seed 0]`` writes
the sheet (each pair's image with its box, and the change) and the figures beside it as ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from cxr_studio import imaging
from cxr_studio.config import PREVIEW_HELP
from cxr_studio.data.phantom import Device, Finding
from cxr_studio.data.phantom_reports import report_for
from cxr_studio.errors import InputError
from cxr_studio.files import write_atomic
from cxr_studio.layout import LayoutItem, box_side, layout_from_report, parse_layout, rule_box

# item -> (where its box's centre is drawn on the patient's right, as (x0, y0, x1, y1) normalised; the phantom
# name that reports it). The patient's left is the mirror image.
PLACED_ITEMS: dict[str, tuple[tuple[float, float, float, float], str]] = {
    "Nodule": ((0.16, 0.24, 0.40, 0.62), "nodule"),
    "Mass": ((0.2, 0.28, 0.36, 0.58), "mass"),
    "Pacemaker/ICD generator": ((0.17, 0.16, 0.3, 0.26), "pacemaker"),
}
NORMAL = report_for((), ())  # the phantom's normal report, the "without" half of every pair


def rule_agreement(rows: Sequence[dict[str, str]]) -> dict[str, Any]:
    """How often the rule's layout from each row's report (:func:`~cxr_studio.layout.layout_from_report`) has a
    box of the same item that contains the centre of the row's own box (the ``boxes`` column), per item and over
    all, for the items the rule places."""
    hits: dict[str, list[bool]] = {}
    for row in rows:
        rule = layout_from_report(row["report"])
        for truth in parse_layout(row.get("boxes", "")):
            if truth.group is None or truth.side is None:
                continue
            cx, cy = (truth.box[0] + truth.box[2]) / 2, (truth.box[1] + truth.box[3]) / 2
            hit = any(r.group == truth.group and inside((cx, cy), r.box) for r in rule)
            hits.setdefault(truth.group, []).append(hit)
    every = [h for item in hits.values() for h in item]
    return {
        "contains_truth_centre": float(np.mean(every)) if every else None,
        "boxes": len(every),
        "per_item": {item: {"rate": float(np.mean(h)), "boxes": len(h)} for item, h in hits.items()},
    }


def random_boxes(item: str, count: int, rng: np.random.Generator) -> list[LayoutItem]:
    """``count`` boxes for ``item`` (a :data:`PLACED_ITEMS` key), alternating sides, centres uniform in its
    region, each the size of the rule's moderate box."""
    region, _ = PLACED_ITEMS[item]
    boxes = []
    for k in range(count):
        side = ("right", "left")[k % 2]
        cx, cy = rng.uniform(region[0], region[2]), rng.uniform(region[1], region[3])
        template = rule_box(item, "right", zone="middle").box
        hw, hh = (template[2] - template[0]) / 2, (template[3] - template[1]) / 2
        if side == "left":
            cx = 1.0 - cx
        boxes.append(LayoutItem(item, (cx - hw, cy - hh, cx + hw, cy + hh), side))
    return boxes


def report_naming(item: str, box: LayoutItem) -> str:
    """The phantom's report for ``item`` on the box's side (and zone, for a lung finding)."""
    name = PLACED_ITEMS[item][1]
    side = box_side(box.box)
    if name == "pacemaker":
        return report_for((), (Device(name, side),))
    centre_y = (box.box[1] + box.box[3]) / 2
    zone = "upper" if centre_y < 0.36 else "middle" if centre_y < 0.53 else "lower"
    return report_for((Finding(name, side, "large", zone),), ())


def centre_of_change(with_item: np.ndarray, without: np.ndarray) -> tuple[float, float] | None:
    """The centre ``(x, y)``, normalised, of the change between two ``(H, W)`` images: the centre of mass of the
    strongest 1 % of the smoothed absolute change (None when nothing changed)."""
    change = np.abs(np.asarray(with_item, np.float64) - np.asarray(without, np.float64))
    h, w = change.shape
    change = ndimage.gaussian_filter(change, 0.02 * max(h, w))
    if change.max() <= 0:
        return None
    weight = np.where(change >= np.quantile(change, 0.99), change, 0.0)
    total = weight.sum()
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    return float((weight.sum(0) * xs).sum() / total), float((weight.sum(1) * ys).sum() / total)


def inside(point: tuple[float, float] | None, box: Sequence[float]) -> bool:
    return point is not None and box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def measure(
    studio: Any, *, items: Sequence[str] = tuple(PLACED_ITEMS), boxes: int = 8, seed: int = 0
) -> dict[str, Any]:
    """Per item, ``boxes`` pairs (image ``k`` from seed ``seed + k``): the share whose change's centre lies inside
    the box, and every pair's box, centre and images (``pairs``: first-stage pixels in ``[0, 1]``)."""
    if not studio.takes_layout:
        raise InputError("placement needs a model with layout channels; this one takes no layout.")
    rng = np.random.default_rng([seed, 2027])
    out: dict[str, Any] = {}
    for item in items:
        drawn = random_boxes(item, boxes, rng)
        seeds = [seed + k for k in range(boxes)]
        reports = [report_naming(item, box) for box in drawn]
        with_item = studio.generate_batch(reports, seeds=seeds, layouts=[[box] for box in drawn], upscale=False)
        without = studio.generate_batch([NORMAL] * boxes, seeds=seeds, layout=None, upscale=False)
        centres = [centre_of_change(a, b) for a, b in zip(with_item.pixels, without.pixels)]
        hits = [inside(c, box.box) for c, box in zip(centres, drawn)]
        out[item] = {
            "inside": float(np.mean(hits)),
            "pairs": [
                {"box": list(box.box), "side": box.side, "report": report, "centre": c, "inside": hit, "seed": s}
                for box, report, c, hit, s in zip(drawn, reports, centres, hits, seeds)
            ],
            "images": (with_item.pixels, without.pixels),
        }
    return out


def draw(result: dict[str, Any], *, tile: int = 128) -> Image.Image:
    """The sheet: per item a row of pairs, each the image with its box (white; the change's centre a cross, green
    when inside) above the change (x4)."""
    items = list(result)
    count = len(result[items[0]]["pairs"])
    header = 16
    canvas = Image.new("RGB", (count * tile, len(items) * (2 * tile + header)), 0)
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=11)
    for row, item in enumerate(items):
        top = row * (2 * tile + header)
        entry = result[item]
        pen.text(
            (2, top + 2), f"{item}: centre of change inside the box in {entry['inside']:.0%}", fill=230, font=font
        )
        with_item, without = entry["images"]
        for k, pair in enumerate(entry["pairs"]):
            x = k * tile
            image = imaging.to_uint8(imaging.resize(with_item[k], (tile, tile)))
            change = imaging.to_uint8(
                imaging.resize(np.clip(np.abs(with_item[k] - without[k]) * 4, 0, 1), (tile, tile))
            )
            canvas.paste(Image.fromarray(image).convert("RGB"), (x, top + header))
            canvas.paste(Image.fromarray(change).convert("RGB"), (x, top + header + tile))
            x0, y0, x1, y1 = (v * tile for v in pair["box"])
            pen.rectangle((x + x0, top + header + y0, x + x1, top + header + y1), outline=(255, 255, 255))
            pen.text((x + 3, top + header + 2), "R", fill=(255, 255, 255), font=font)
            if pair["centre"] is not None:
                cx, cy = x + pair["centre"][0] * tile, top + header + pair["centre"][1] * tile
                colour = (0, 255, 0) if pair["inside"] else (255, 0, 0)
                pen.line((cx - 4, cy, cx + 4, cy), fill=colour, width=2)
                pen.line((cx, cy - 4, cx, cy + 4), fill=colour, width=2)
    return canvas


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_studio.evaluation.placement",
        description="Placement in drawn boxes: a nodule, a mass and a pacemaker put in random boxes, the centre of "
        "the change (against the normal report from the same noise) inside the box or not.",
    )
    parser.add_argument("--model", help="model folder (default: the bundled demo cascade)")
    parser.add_argument("--out", type=Path, help="PNG sheet to write (the figures beside it, .json)")
    parser.add_argument(
        "--rule-against",
        type=Path,
        help="a manifest with a boxes column (the phantom's): print how often the rule's box from each test report "
        "contains the centre of the row's own box, per item, instead of measuring a model",
    )
    parser.add_argument("--boxes", type=int, default=8, help="random boxes per item (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the boxes and of the samples (default 0)")
    parser.add_argument("--preview", action="store_true", help=PREVIEW_HELP)
    args = parser.parse_args(argv)
    from cxr_studio.data.manifest import read_manifest
    from cxr_studio.model_folders import load_model

    if args.rule_against:
        rows = [row for row in read_manifest(args.rule_against) if row["split"] == "test"]
        print(json.dumps(rule_agreement(rows), indent=1))
        return 0
    if args.out is None:
        parser.error("--out is needed to measure a model")
    try:
        studio = load_model(args.model)
        if args.preview:
            studio = studio.as_preview()
        result = measure(studio, boxes=args.boxes, seed=args.seed)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    draw(result).save(args.out)
    figures = {
        "model": studio.model_id,
        "seed": args.seed,
        **{item: {k: v for k, v in entry.items() if k != "images"} for item, entry in result.items()},
    }
    write_atomic(args.out.with_suffix(".json"), json.dumps(figures, indent=1).encode())
    for item, entry in result.items():
        print(f"{item}: centre of change inside the box in {entry['inside']:.0%} of {len(entry['pairs'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
