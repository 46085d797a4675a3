"""The evaluation's page: ``index.html``, self-contained (tables, the metric-against-steps plot, the laterality
tables, the prompt sheet and example grids as inline PNGs), which the app's Model tab shows."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np

from cxr_studio import imaging
from cxr_studio.evaluation.classifier import JUDGE_MIN_NAMED_SIDE_ONLY
from cxr_studio.evaluation.plots import line_plot


def _png_data_uri(images: np.ndarray) -> str:
    strip = np.concatenate(list((images + 1) / 2), axis=1)
    buffer = io.BytesIO()
    imaging.to_pil(np.clip(strip, 0, 1)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _framed(image: np.ndarray) -> np.ndarray:
    """A ``(1, s, s)`` image in ``[-1, 1]`` with a white 2 px frame: the real phantom of a prompt-sheet row."""
    out = image.copy()
    out[:, :2], out[:, -2:], out[:, :, :2], out[:, :, -2:] = 1, 1, 1, 1
    return out


def _laterality_table(columns: dict[str, dict[str, Any]]) -> str:
    """Per sided item and overall: named side only / both / wrong / missed, one column group per image set."""
    from cxr_studio.evaluation.classifier import VERDICTS

    head = "".join(f"<th colspan='{len(VERDICTS) + 1}'>{html.escape(name)}</th>" for name in columns)
    sub = "".join("<th>rate</th>" + "".join(f"<th>{v.replace('_', ' ')}</th>" for v in VERDICTS) for _ in columns)
    items = next(iter(columns.values()))["per_item"]

    def cells(row: dict[str, Any]) -> str:
        rate = "-" if row.get("rate") is None else f"{row['rate']:.0%}"
        return f"<td>{rate}</td>" + "".join(f"<td>{row[v]}</td>" for v in VERDICTS)

    body = "".join(
        f"<tr><td>{html.escape(item)}</td>" + "".join(cells(c["per_item"][item]) for c in columns.values()) + "</tr>"
        for item in items
    )
    body += "<tr><td><b>all</b></td>" + "".join(cells(c) for c in columns.values()) + "</tr>"
    body += (
        "<tr><td><i>relative (secondary: p(named) &gt; p(other), blind to both-sided drawings)</i></td>"
        + "".join(
            f"<td colspan='{len(VERDICTS) + 1}'>"
            + ("-" if c["relative_accuracy"] is None else f"{c['relative_accuracy']:.0%}")
            + "</td>"
            for c in columns.values()
        )
        + "</tr>"
    )
    return f"<table><tr><th></th>{head}</tr><tr><th></th>{sub}</tr>{body}</table>"


# Published CheXGenBench figures (Dutt et al. 2025, RadDINO features, MIMIC-CXR test prompts at 512 px; UniX 2026
# with the same scripts): the rows "how this compares" places our figures beside.
PUBLISHED = (
    ("Sana 0.6B, full fine-tune (CheXGenBench)", 54.23, 0.016, 0.674, 0.614, 0.520, 0.548),
    ("UniX 1.5B (CheXGenBench's scripts)", 54.02, 0.024, 0.736, 0.479, 0.536, 0.550),
    ("PixArt-Sigma 0.6B, full fine-tune", 60.15, 0.023, 0.666, 0.522, 0.506, 0.506),
    ("RadEdit 0.86B, as released", 69.70, 0.033, 0.397, 0.544, 0.150, 0.285),
    ("SD 1.5, full fine-tune", 118.9, None, None, None, None, None),
)


def _comparison(report: dict[str, Any]) -> str:
    """Our RadDINO-space figures beside the published ones, with what differs said first."""

    def cell(value: Any) -> str:
        return f"<td>{value:.3g}</td>" if isinstance(value, (int, float)) else "<td>-</td>"

    ours = report.get("realism_raddino")
    head = "".join(f"<th>{k}</th>" for k in ("model", "FID", "KID", "P", "R", "D", "C"))
    rows = "".join(f"<tr><td>{html.escape(name)}</td>{''.join(map(cell, values))}</tr>" for name, *values in PUBLISHED)
    if ours:
        figures = "".join(cell(ours[k]) for k in ("fid", "kid", "precision", "recall", "density", "coverage"))
        rows = f"<tr><td><b>this model</b> ({html.escape(ours['features'])})</td>{figures}</tr>" + rows
        features = "the features of the folder named in the first row (RadDINO's only if it is microsoft/rad-dino)"
    else:
        features = "no RadDINO features yet: run with --raddino DIR (a local copy of microsoft/rad-dino)"
    caveat = (
        "The published figures are RadDINO features of MIMIC-CXR test images and prompts at 512 px; ours are "
        f"{html.escape(report['manifest'])}'s test images (the phantom is not MIMIC-CXR) at the model's size, with "
        f"{features}. Rows on different data do not rank models; they show the scale."
    )
    return f"<p>{caveat}</p><table><tr>{head}</tr>{rows}</table>"


def _finding_table(rows: dict[str, dict[str, Any]]) -> str:
    """One row per CheXpert label: counts, then FID, KID, P, R, D, C where both sides have enough images."""
    keys = ("fid", "kid", "precision", "recall", "density", "coverage")
    head = "".join(f"<th>{k}</th>" for k in ("finding", "real", "samples", *keys))
    body = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{v['real']}</td><td>{v['samples']}</td>"
        + "".join(f"<td>{v[k]:.3g}</td>" if k in v else "<td>-</td>" for k in keys)
        + "</tr>"
        for label, v in rows.items()
    )
    return f"<table><tr>{head}</tr>{body}</table><p><small>-: fewer than 6 images on a side.</small></p>"


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value, default=str)


def render_html(report: dict[str, Any], examples: dict[str, Any]) -> str:
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k} ") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    def table(d: dict[str, Any]) -> str:
        d = flat(d)
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_cell(v))}</td></tr>" for k, v in d.items()
        )
        return f"<table>{rows}</table>"

    sweep = report.get("against_steps", [])
    xs = [s["steps"] for s in sweep]
    judge_real = report["classifier_on_real_test"]
    lat = report["faithfulness"]["laterality"]
    warning = (
        ""
        if judge_real["valid"]
        else f"<p style='color:#b00'><b>The judge reaches only {judge_real['laterality']['rate']:.1%} "
        f"named-side-only on real test images (needs {JUDGE_MIN_NAMED_SIDE_ONLY:.0%}): its laterality verdicts "
        "on samples mean nothing.</b></p>"
    )
    sections = [
        (
            f"<h1>Evaluation of <code>{html.escape(report['model'])}</code></h1>"
            f"<p>Manifest {html.escape(report['manifest'])}; {report['images']['train']} training and "
            f"{report['images']['test']} test images; {report['seconds']:.0f} s. "
            "Every generated image is synthetic.</p>"
        ),
        "<h2>The judge on real test images (its own quality, first)</h2>"
        + warning
        + table(
            {
                "mAUC": judge_real["mauc"],
                "named side only": judge_real["laterality"]["rate"],
                "thresholds fitted on": report.get("judge_thresholds_from", "(loaded with the judge)"),
            }
        ),
        "<h2>Reconstruction</h2>" + "".join(f"<h3>{k}</h3>" + table(v) for k, v in report["reconstruction"].items()),
        "<h2>Realism and diversity</h2>" + table(report["realism"]) + table(report["diversity"]),
        "<h3>Per finding (CheXGenBench's conditional figures; the judge's features)</h3>"
        + _finding_table(report["realism_per_finding"]),
        "<h2>Faithfulness to the report</h2>"
        + table(
            {
                "mAUC": report["faithfulness"]["mauc"],
                **report["faithfulness"]["auc"],
                "device presence accuracy": report["faithfulness"]["device_presence_accuracy"],
            }
        ),
        "<h3>Laterality: named side only (the named side positive, the other negative)</h3>"
        + _laterality_table({"real test images": judge_real["laterality"], "samples for test reports": lat}),
        "<h2>Against sampling steps</h2>"
        + line_plot(xs, {"mAUC": [s["mauc"] for s in sweep], "named side only": [s["laterality"] for s in sweep]})
        + line_plot(xs, {"KID": [s["kid"] for s in sweep]}),
    ]
    if "prompt_sheet" in report:
        sheet = report["prompt_sheet"]
        sections.append(
            "<h2>Prompt sheet</h2><p>Each row: the phantom's own rendering of the report (left, boxed), then "
            f"{sheet['seeds']} SYNTHETIC samples of the same report (seeds 0 onward). "
            "The patient's right is on the image's left.</p>"
            + _laterality_table(
                {
                    f"real phantoms ({sheet['seeds']} per report)": sheet["laterality_real"],
                    "SYNTHETIC samples": sheet["laterality_samples"],
                }
            )
        )
        grid = examples.get("prompt sheet")
        if grid:
            n = sheet["seeds"]
            for r, row in enumerate(sheet["reports"]):
                strip = np.concatenate([_framed(grid["real"][r * n]), *grid["synthetic"][r * n : (r + 1) * n]], -1)
                sections.append(
                    f"<h3>{html.escape(row['label'])}</h3><p><small>{html.escape(row['report'])}</small></p>"
                    f'<img src="{_png_data_uri(strip)}" alt="{html.escape(row["label"])}" style="width:100%">'
                )
    for key in ("realism_inception", "realism_raddino", "utility", "device_removal", "privacy", "privacy_reid"):
        if key in report:
            sections.append(f"<h2>{key.replace('_', ' ').capitalize()}</h2>" + table(report[key]))
    sections.append("<h2>How this compares (CheXGenBench's table)</h2>" + _comparison(report))
    sections.append(
        "<h2>Examples</h2>"
        + "".join(
            f'<h3>{k}</h3><img src="{_png_data_uri(v)}" alt="{k}">' for k, v in examples.items() if k != "prompt sheet"
        )
    )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto} table{border-collapse:collapse;margin:6px 0} "
        "td{border:1px solid #ccc;padding:2px 8px}"
    )
    head = f"<meta charset='utf-8'><title>CXR Studio evaluation</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(sections)}</body></html>"
