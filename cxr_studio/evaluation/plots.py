"""Small inline SVG plots for the HTML reports (no plotting library needed)."""

from __future__ import annotations

import html


def line_plot(xs: list[float], series: dict[str, list[float | None]], *, width: int = 420, height: int = 220) -> str:
    """An inline SVG line plot: ``series`` name -> y values at ``xs`` (``None`` = no point)."""
    pad = 36
    values = [v for ys in series.values() for v in ys if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1
    sx = lambda x: pad + (x - min(xs)) / max(max(xs) - min(xs), 1) * (width - 2 * pad)
    sy = lambda y: height - pad - (y - lo) / (hi - lo) * (height - 2 * pad)
    colours = ["#d95f02", "#1b9e77", "#7570b3"]
    parts = [
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" style="background:#fff">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>',
    ]
    for x in xs:
        parts.append(f'<text x="{sx(x):.0f}" y="{height - pad + 14}" font-size="10" text-anchor="middle">{x}</text>')
    parts.append(
        f'<text x="4" y="{pad}" font-size="10">{hi:.3g}</text>'
        f'<text x="4" y="{height - pad}" font-size="10">{lo:.3g}</text>'
    )
    for k, (name, ys) in enumerate(series.items()):
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys) if y is not None)
        parts.append(f'<polyline fill="none" stroke="{colours[k % 3]}" stroke-width="2" points="{points}"/>')
        parts.append(
            f'<text x="{width - pad}" y="{pad + 12 * k}" font-size="11" fill="{colours[k % 3]}" text-anchor="end">'
            f"{html.escape(name)}</text>"
        )
    return "".join(parts) + "</svg>"
