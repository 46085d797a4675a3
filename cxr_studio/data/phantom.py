"""A procedural PA chest-radiograph simulator: the embedded default dataset and our ground truth.

Every image is rendered from a sampled patient (body habitus, heart size, inspiration, rotation,
exposure), optional findings with side and severity, and optional support devices. Because we know
exactly what was drawn, the phantom gives labels for prompt adherence, laterality and device removal:
each case also carries the device mask and the same patient rendered without devices.

Rendering model: every structure adds to a projected density map ``D`` (soft tissue and bone add,
air in the lungs and trachea subtracts); the detector image is ``1 - exp(-mu * D)`` with per-patient
exposure, a detector blur and quantum noise. Devices live in their own density layer, so the
device-free rendering shares every other pixel's noise with the original.

Coordinates: ``x`` runs from -1 (image left) to 1 (image right), ``y`` from -1 (top) to 1 (bottom).
PA convention: the patient's right is on the image's left, so ``side="right"`` means ``x < 0``.

The reports' wording lives in :mod:`cxr_studio.data.phantom_reports`.

CLI: ``python -m cxr_studio.data.phantom --n 100 --size 256 --seed 0 --out data/phantom``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from cxr_studio.data.manifest import split_for_patient, write_manifest
from cxr_studio.data.phantom_reports import write_report
from cxr_studio.errors import InputError
from cxr_studio.labels import CHEXPERT_LABELS, SIDED_DEVICE_NAMES, SIDED_FINDING_NAMES
from cxr_studio.layout import LayoutItem, box_of_mask, canonical_item, layout_to_json

FINDINGS = (
    "pleural_effusion",
    "cardiomegaly",
    "pneumothorax",
    "consolidation",
    "nodule",
    "mass",
    "edema",
    "atelectasis",
)
# Rendered only when asked for (never sampled): findings no bundled model has seen, for few-shot adaptation
HELD_OUT_FINDINGS = ("hiatal_hernia",)
DEVICES = ("pacemaker", "icd", "ecg_leads", "chest_tube", "central_line", "endotracheal_tube", "sternotomy_wires")
SIDES = ("right", "left")
SEVERITIES = ("small", "moderate", "large")
ZONES = ("upper", "middle", "lower")
# Which findings are one-sided, and which CheXpert columns each finding sets.
SIDED = frozenset(SIDED_FINDING_NAMES)  # findings drawn on one patient side (cxr_studio.labels lists them)
SIDED_DEVICES = frozenset(SIDED_DEVICE_NAMES)  # devices drawn on one side of the chest
ZONED = {"consolidation", "nodule", "mass"}
CHEXPERT_OF = {
    "pleural_effusion": ("Pleural Effusion",),
    "cardiomegaly": ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    "pneumothorax": ("Pneumothorax",),
    "consolidation": ("Consolidation", "Lung Opacity"),
    "nodule": ("Lung Lesion", "Lung Opacity"),
    "mass": ("Lung Lesion", "Lung Opacity"),
    "edema": ("Edema", "Lung Opacity"),
    "atelectasis": ("Atelectasis", "Lung Opacity"),
    "hiatal_hernia": (),  # no CheXpert column (it is not "No Finding" either)
}
MAX_SIZE = 1024
MU = 1.35  # attenuation scale: maps projected density to detector brightness
# A pneumothorax's space changes the density by 0.12, a nodule's rim fades to 0: 0.05 keeps both and drops the
# faint tails of the blurred opacities.
FINDING_MASK_DENSITY = 0.05


@dataclass(frozen=True)
class Finding:
    """One finding: ``name`` from :data:`FINDINGS`; ``side`` right/left (patient's) or None; severity; zone."""

    name: str
    side: str | None = None
    severity: str = "moderate"
    zone: str | None = None

    def __post_init__(self) -> None:
        if self.name not in FINDINGS + HELD_OUT_FINDINGS:
            raise InputError(f"unknown finding {self.name!r}; accepted: {', '.join(FINDINGS + HELD_OUT_FINDINGS)}.")
        if self.name in SIDED and self.side not in SIDES:
            raise InputError(f"finding {self.name} needs side 'right' or 'left', got {self.side!r}.")
        if self.severity not in SEVERITIES:
            raise InputError(f"severity {self.severity!r}; accepted: {', '.join(SEVERITIES)}.")
        if self.zone is not None and self.zone not in ZONES:
            raise InputError(f"zone {self.zone!r}; accepted: {', '.join(ZONES)}.")

    def describe(self) -> str:
        """``name:side:severity[:zone]`` as written to the manifest's ``findings`` column."""
        return ":".join(part for part in (self.name, self.side or "both", self.severity, self.zone) if part)


@dataclass(frozen=True)
class Device:
    """One support device: ``name`` from :data:`DEVICES`, ``side`` (patient's) where it applies."""

    name: str
    side: str | None = None

    def __post_init__(self) -> None:
        if self.name not in DEVICES:
            raise InputError(f"unknown device {self.name!r}; accepted: {', '.join(DEVICES)}.")
        if self.side is not None and self.side not in SIDES:
            raise InputError(f"device side {self.side!r}; accepted right or left.")

    def describe(self) -> str:
        return f"{self.name}:{self.side}" if self.side else self.name


@dataclass(frozen=True)
class PhantomCase:
    """One rendered patient.

    Attributes:
        image: ``(S, S)`` float32 in ``[0, 1]``, white = dense, PA (patient's right on image left).
        clean: the same patient and noise rendered without devices (device-removal ground truth).
        device_mask: ``(S, S)`` bool, True where a device was drawn (white = regenerate convention).
        finding_mask: ``(S, S)`` bool, True where a finding changed the projected density (by more than
            :data:`FINDING_MASK_DENSITY`): the findings' ground truth, pixel by pixel.
        report: radiology report with ``FINDINGS:`` and ``IMPRESSION:`` sections.
        findings, devices: what was drawn.
        layout: the extent of each finding and device as drawn, one item each (a pacemaker's or ICD's: its
            generator), in :mod:`cxr_studio.layout`'s normalised coordinates: the manifest's ``boxes`` column.
        labels: the 14 CheXpert labels, 1 or 0 (the phantom knows the truth: no uncertain labels).
        anatomy: sampled patient parameters (e.g. ``ctr``, the cardiothoracic ratio).
    """

    image: np.ndarray
    clean: np.ndarray
    device_mask: np.ndarray
    finding_mask: np.ndarray
    report: str
    findings: tuple[Finding, ...]
    devices: tuple[Device, ...]
    labels: dict[str, int]
    anatomy: dict[str, float] = field(default_factory=dict)
    layout: tuple[LayoutItem, ...] = ()

    @property
    def impression(self) -> str:
        return self.report.split("IMPRESSION:", 1)[-1].strip()

    def manifest_columns(self) -> dict[str, str]:
        """This case's ``report``, label, ``findings`` and ``devices`` columns as the manifest writes them."""
        return {
            "report": self.report,
            **{k: str(v) for k, v in self.labels.items()},
            "findings": ";".join(f.describe() for f in self.findings),
            "devices": ";".join(d.describe() for d in self.devices),
            "boxes": layout_to_json(self.layout),
        }


# ----------------------------------------------------------------------------------------------------
# Sampling what to draw
# ----------------------------------------------------------------------------------------------------


def sample_findings(rng: np.random.Generator) -> tuple[Finding, ...]:
    """Random findings: about a third of patients have none, the rest one or two."""
    if rng.random() < 0.3:
        return ()
    names = rng.choice(FINDINGS, size=1 if rng.random() < 0.6 else 2, replace=False)
    out = []
    for name in names:
        side = str(rng.choice(SIDES)) if name in SIDED else None
        zone = str(rng.choice(ZONES)) if name in ZONED else None
        out.append(Finding(str(name), side, str(rng.choice(SEVERITIES)), zone))
    return tuple(out)


def sample_devices(rng: np.random.Generator) -> tuple[Device, ...]:
    """Random support devices: about a third of patients have one or two."""
    if rng.random() > 0.35:
        return ()
    names = rng.choice(DEVICES, size=1 if rng.random() < 0.7 else 2, replace=False)
    if "pacemaker" in names and "icd" in names:
        names = [n for n in names if n != "icd"]
    out = []
    for name in names:
        if name in {"pacemaker", "icd"}:
            side = "left" if rng.random() < 0.85 else "right"
        elif name == "chest_tube":
            side = str(rng.choice(SIDES))
        elif name == "central_line":
            side = "right" if rng.random() < 0.75 else "left"
        else:
            side = None
        out.append(Device(str(name), side))
    return tuple(out)


@dataclass
class _Anatomy:
    """Per-patient geometry in normalised coordinates (see module docstring)."""

    scale: float
    shift: tuple[float, float]
    rotation: float  # radians; patient rotation in the detector plane
    ctr: float  # cardiothoracic ratio
    dome_right: float  # y of the right hemidiaphragm's top
    dome_left: float
    apex_y: float
    lung_half_width: float
    mediastinum_shift: float
    heart_y: float
    breasts: float  # 0 (none) to 1 (prominent)
    soft_tissue: float
    exposure: float
    contrast: float
    noise: float
    inspiration: float = 0.0  # -1 (shallow) to 1 (deep): where the domes sit on this study

    @classmethod
    def sample(cls, rng: np.random.Generator) -> _Anatomy:
        inspiration = rng.uniform(-1, 1)  # deeper inspiration pushes the domes down
        dome_right = 0.36 + 0.08 * inspiration + rng.normal(0, 0.015)
        return cls(
            scale=rng.uniform(0.9, 1.04),
            shift=(rng.normal(0, 0.02), rng.normal(0, 0.025)),
            rotation=math.radians(rng.normal(0, 1.8)),
            ctr=float(np.clip(rng.normal(0.44, 0.035), 0.36, 0.5)),
            dome_right=dome_right,
            dome_left=dome_right + rng.uniform(0.03, 0.08),  # the right dome usually sits higher
            apex_y=rng.uniform(-0.78, -0.70),
            lung_half_width=rng.uniform(0.38, 0.44),
            mediastinum_shift=rng.normal(0, 0.01),
            heart_y=rng.uniform(0.18, 0.26),
            breasts=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.45 else 0.0,
            soft_tissue=rng.uniform(0.9, 1.25),
            exposure=rng.uniform(0.85, 1.15),
            contrast=rng.uniform(0.9, 1.15),
            noise=rng.uniform(0.008, 0.02),
            inspiration=inspiration,
        )

    def restudied(self, rng: np.random.Generator) -> None:
        """The same patient on another day: new positioning (magnification, shift, rotation), inspiration,
        exposure, contrast and detector noise; the anatomy and its proportions stay."""
        inspiration = rng.uniform(-1, 1)
        lift = 0.08 * (inspiration - self.inspiration)
        self.dome_right, self.dome_left, self.inspiration = self.dome_right + lift, self.dome_left + lift, inspiration
        self.scale = rng.uniform(0.9, 1.04)
        self.shift = (rng.normal(0, 0.02), rng.normal(0, 0.025))
        self.rotation = math.radians(rng.normal(0, 1.8))
        self.exposure = rng.uniform(0.85, 1.15)
        self.contrast = rng.uniform(0.9, 1.15)
        self.noise = rng.uniform(0.008, 0.02)


# ----------------------------------------------------------------------------------------------------
# Drawing helpers: a grid of patient coordinates, and strokes and blobs on density layers
# ----------------------------------------------------------------------------------------------------


class _Canvas:
    """The pixel grid of one image, with patient coordinates at every pixel."""

    def __init__(self, size: int, anatomy: _Anatomy) -> None:
        self.size = size
        self.px = 2.0 / size  # one pixel in normalised units
        self.a = anatomy
        coords = (np.arange(size, dtype=np.float32) + 0.5) * self.px - 1.0
        gy, gx = np.meshgrid(coords, coords, indexing="ij")
        # grid -> patient: undo shift, scale and rotation
        c, s = math.cos(anatomy.rotation), math.sin(anatomy.rotation)
        ux, uy = (gx - anatomy.shift[0]) / anatomy.scale, (gy - anatomy.shift[1]) / anatomy.scale
        self.x = (c * ux + s * uy).astype(np.float32)
        self.y = (-s * ux + c * uy).astype(np.float32)

    def layer(self) -> np.ndarray:
        return np.zeros((self.size, self.size), np.float32)

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` patient (x, y) -> ``(N, 2)`` pixel (row, col) floats."""
        c, s = math.cos(self.a.rotation), math.sin(self.a.rotation)
        x, y = points[:, 0], points[:, 1]
        gx = (c * x - s * y) * self.a.scale + self.a.shift[0]
        gy = (s * x + c * y) * self.a.scale + self.a.shift[1]
        return np.stack([(gy + 1.0) / self.px - 0.5, (gx + 1.0) / self.px - 0.5], axis=1)

    def ellipse(self, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> np.ndarray:
        """Normalised elliptical radius at every pixel (< 1 inside)."""
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = self.x - cx, self.y - cy
        return np.sqrt(((c * dx + s * dy) / ax) ** 2 + ((-s * dx + c * dy) / ay) ** 2)

    def blur(self, layer: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian blur, ``sigma`` in normalised units."""
        return ndimage.gaussian_filter(layer, sigma / self.px, mode="nearest")


class _Strokes:
    """Lines and curves rasterised by Pillow's scan-line renderer (fast); later strokes draw over earlier ones."""

    def __init__(self, canvas: _Canvas) -> None:
        self.c = canvas
        self.image = Image.new("F", (canvas.size, canvas.size), 0.0)
        self.pen = ImageDraw.Draw(self.image)

    def stroke(self, points: np.ndarray, width: float, value: float) -> None:
        """Draw a polyline of patient points, ``width`` in normalised units, with density ``value``."""
        self.strokes([np.asarray(points, np.float64)], [width], [value])

    def strokes(self, polylines: Sequence[np.ndarray], widths: Sequence[float], values: Sequence[float]) -> None:
        """Draw many polylines with one coordinate transform (vessel trees have hundreds of segments)."""
        lengths = [len(p) for p in polylines]
        rc = self.c.to_pixels(np.concatenate(polylines)).tolist()
        start = 0
        for n, width, value in zip(lengths, widths, values):
            width_px = width / self.c.px * self.c.a.scale
            # sub-pixel lines keep their total density by fading instead of thinning
            line = [(c, r) for r, c in rc[start : start + n]]
            self.pen.line(line, fill=float(value * min(width_px, 1.0)), width=max(1, round(width_px)))
            start += n

    def array(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.float32)


def _curve(control: Sequence[tuple[float, float]], n: int = 40) -> np.ndarray:
    """Bezier curve through (approximating) the control points: ``(n, 2)``."""
    ctrl = np.asarray(control, np.float64)
    degree = len(ctrl) - 1
    t = np.linspace(0.0, 1.0, n)[:, None]
    weights = [math.comb(degree, k) * t**k * (1 - t) ** (degree - k) for k in range(degree + 1)]
    return sum(w * p for w, p in zip(weights, ctrl))


def _dome(x: np.ndarray, top: float, centre: float, half_width: float, height: float = 0.2) -> np.ndarray:
    """y of a diaphragm dome at x: highest (``top``) at ``centre``, falling off laterally."""
    u = (x - centre) / half_width
    return top + height * u**2


def _smooth_noise(rng: np.random.Generator, canvas: _Canvas, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ``sigma`` (normalised)."""
    small = max(8, int(canvas.size / 4))
    field_small = ndimage.gaussian_filter(rng.standard_normal((small, small)).astype(np.float32), sigma / (2 / small))
    field_small /= field_small.std() + 1e-6
    return ndimage.zoom(field_small, canvas.size / small, order=1)[: canvas.size, : canvas.size]


# ----------------------------------------------------------------------------------------------------
# The renderer
# ----------------------------------------------------------------------------------------------------


class _Renderer:
    """Draws one patient. Each ``_draw_*`` adds to ``self.density`` (or ``self.devices``)."""

    def __init__(self, size: int, anatomy: _Anatomy, rngs: Sequence[np.random.Generator]) -> None:
        self.c = _Canvas(size, anatomy)
        self.a = anatomy
        # separate streams, so adding a finding or a device leaves the rest of the patient unchanged
        self.rng, self.finding_rng, self.device_rng = rngs
        self.density = self.c.layer()
        self.devices = self.c.layer()  # blobs (generators, electrodes)
        self.device_lines = _Strokes(self.c)  # leads, wires, tubes
        self.pleural_line = self.c.layer()
        self.hilum = {"right": (-0.17, -0.06), "left": (0.19, -0.04)}

    # --- geometry shared by several structures ------------------------------------------------------

    def heart_box(self) -> tuple[float, float, float, float]:
        """(right border x, left border x, top y, bottom y) of the cardiac silhouette."""
        thorax = 2 * (self.a.lung_half_width + 0.38)  # internal thoracic width at the domes
        width = self.a.ctr * thorax
        m = self.a.mediastinum_shift
        return m - 0.36 * width, m + 0.64 * width, self.a.heart_y - 0.28, self.a.dome_left + 0.1

    def mediastinum_half_width(self, y: np.ndarray) -> np.ndarray:
        """Half-width of the upper mediastinum, widening toward the heart."""
        return 0.08 + 0.03 * np.clip((y + 0.2) / 0.6, 0, 1)

    def heart_thickness(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Cardiac silhouette as a thickness in [0, 1]: a pear that grows out of the mediastinum.

        The right border (image left) bulges with the right atrium; the left border (image right)
        runs down from the aortic knob to the apex, which rests on the left dome.
        """
        right, left, top, bottom = self.heart_box()
        m = self.a.mediastinum_shift
        t = np.clip((y - top) / (bottom - top), 0, 1)
        base = self.mediastinum_half_width(y)
        # convex borders: quick growth below the top, full width well above the diaphragm
        grow = lambda a, b: np.sin(0.5 * np.pi * np.clip((t - a) / (b - a), 0, 1))
        right_w = base + (m - right - base) * grow(0.12, 0.5) * (1 - 0.3 * grow(0.75, 1.0) ** 2)
        left_w = base + (left - m - base) * grow(0.0, 0.62)
        u = np.where(x < m, (m - x) / right_w, (x - m) / left_w)  # 0 at the midline, 1 at the border
        inside = (y > top) & (y < bottom + 0.1)
        return np.where(inside, np.sqrt(np.clip(1 - u**2, 0, 1)), 0.0).astype(np.float32)

    def dome_y(self, side: str, x: np.ndarray) -> np.ndarray:
        if side == "right":
            return _dome(x, self.a.dome_right, -0.38, 0.55)
        return _dome(x, self.a.dome_left, 0.40, 0.55)

    def diaphragm_y(self) -> np.ndarray:
        """y of the diaphragm at every pixel: the right dome left of the midline, the left dome right of it."""
        right = self.c.x < self.a.mediastinum_shift
        return np.where(right, self.dome_y("right", self.c.x), self.dome_y("left", self.c.x))

    def lung_field(self, side: str, x: np.ndarray | None = None, y: np.ndarray | None = None) -> np.ndarray:
        """Boolean lung field of one side (optionally at transformed coordinates)."""
        x = self.c.x if x is None else x
        y = self.c.y if y is None else y
        sign = -1.0 if side == "right" else 1.0
        hw = self.a.lung_half_width
        cx = sign * (hw + 0.04)
        apex = self.a.apex_y
        bottom = (self.a.dome_right if side == "right" else self.a.dome_left) + 0.3
        cy, ay = (apex + bottom) / 2, (bottom - apex) / 2
        # lateral wall: an ellipse whose lower part meets the dome at a sharp costophrenic angle
        outer = ((x - cx) / hw) ** 2 + ((y - cy) / ay) ** 2 < 1.0
        below_dome = y < self.dome_y(side, x)
        m = self.a.mediastinum_shift
        medial = sign * (x - m) > self.mediastinum_half_width(y)
        _right, _left, top, _ = self.heart_box()
        heart = self._heart_mask(x, y)
        knob = ((x - (m + 0.12)) / 0.075) ** 2 + ((y - (top - 0.02)) / 0.07) ** 2 < 1.0
        return outer & below_dome & medial & ~heart & ~knob

    def _heart_mask(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.heart_thickness(x, y) > 0

    # --- anatomy ----------------------------------------------------------------------------------------

    def draw_body(self) -> None:
        x, y = self.c.x, self.c.y
        # half-width of the trunk: neck at the top, shoulders, then the chest wall
        half = np.interp(y, [-1.2, -0.86, -0.7, -0.55, 0.3, 1.2], [0.2, 0.22, 0.78, 0.93, 0.92, 0.86])
        thickness = np.sqrt(np.clip(1.0 - (x / half) ** 2, 0.0, 1.0))
        self.density += 0.78 * self.a.soft_tissue * thickness
        if self.a.breasts > 0:
            for sign in (-1, 1):
                r = self.c.ellipse(sign * 0.5, 0.52, 0.36, 0.3)
                lower = np.clip((self.c.y - 0.3) / 0.2, 0, 1)
                self.density += 0.22 * self.a.breasts * np.sqrt(np.clip(1 - r**2, 0, 1)) * lower

    def draw_abdomen(self) -> None:
        """Liver under the right dome, gastric bubble under the left."""
        below = (self.c.y > self.diaphragm_y()) & (np.abs(self.c.x) < 0.9)
        self.density += 0.22 * self.c.blur(below.astype(np.float32), 0.02)
        bubble = self.c.ellipse(0.34, self.a.dome_left + 0.1, 0.09, 0.045)
        self.density -= 0.18 * np.clip(1 - bubble, 0, 1) ** 0.5

    def draw_lungs(self) -> dict[str, np.ndarray]:
        lungs = {}
        for side in SIDES:
            field_ = self.lung_field(side).astype(np.float32)
            sign = -1 if side == "right" else 1
            r = self.c.ellipse(sign * (self.a.lung_half_width + 0.04), 0.0, self.a.lung_half_width * 1.2, 0.9)
            air = self.c.blur(field_, 0.008) * (0.55 + 0.45 * np.sqrt(np.clip(1 - r**2, 0, 1)))
            self.density -= 0.62 * air
            lungs[side] = field_ > 0.5
        return lungs

    def draw_mediastinum(self) -> None:
        _right, _left, top, _bottom = self.heart_box()
        m = self.a.mediastinum_shift
        heart = self.c.blur(self.heart_thickness(self.c.x, self.c.y), 0.006)
        heart *= self.c.blur((self.c.y < self.diaphragm_y() + 0.03).astype(np.float32), 0.01)  # sits on the diaphragm
        self.density += 0.38 * heart
        upper = (self.c.y < top) & (np.abs(self.c.x - m) < self.mediastinum_half_width(self.c.y)) & (self.c.y > -0.9)
        self.density += 0.25 * self.c.blur(upper.astype(np.float32), 0.01)
        knob = self.c.ellipse(m + 0.12, top - 0.02, 0.075, 0.07)
        self.density += 0.3 * np.clip(1 - knob**2, 0, 1) ** 0.5
        for hx, hy in self.hilum.values():  # hilar vessels
            r = self.c.ellipse(hx + m, hy, 0.06, 0.1)
            self.density += 0.22 * np.clip(1 - r, 0, 1)

    def draw_airways(self) -> None:
        m = self.a.mediastinum_shift
        carina = (m + 0.0, -0.22)
        trachea = np.array([(m - 0.005, -1.05), (m - 0.01, -0.6), (m - 0.015, -0.35), carina])
        airway = _Strokes(self.c)
        airway.stroke(_curve(trachea, 20), 0.06, 1.0)
        airway.stroke(_curve([carina, (m - 0.08, -0.16), (m - 0.15, -0.08)], 12), 0.035, 1.0)
        airway.stroke(_curve([carina, (m + 0.09, -0.15), (m + 0.17, -0.05)], 12), 0.032, 1.0)
        self.density -= 0.3 * self.c.blur(airway.array(), 0.006)
        self.carina = carina

    def draw_spine(self) -> None:
        m = self.a.mediastinum_shift
        column = (np.abs(self.c.x - m) < 0.065).astype(np.float32)
        # vertebral bodies with darker disc spaces, and the pedicles as small bright rings
        discs = 0.75 + 0.25 * np.cos(2 * np.pi * (self.c.y + 1.0) / 0.11) ** 8
        pedicles = _Strokes(self.c)
        ring = np.linspace(0, 2 * np.pi, 12)
        rings = [
            np.stack([m + sign * 0.05 + 0.014 * np.cos(ring), level + 0.02 * np.sin(ring)], 1)
            for level in np.arange(-0.9, 0.9, 0.11)
            for sign in (-1, 1)
        ]
        pedicles.strokes(rings, [0.006] * len(rings), [0.5] * len(rings))
        self.density += 0.3 * self.c.blur(column * (1 - discs * 0.35) + pedicles.array(), 0.005)

    def draw_ribs(self) -> None:
        bone = _Strokes(self.c)
        cortex = _Strokes(self.c)
        anterior = _Strokes(self.c)
        m = self.a.mediastinum_shift
        spacing = (self.a.dome_right + 0.12 - self.a.apex_y) / 9.0
        for sign in (-1, 1):
            for k in range(10):
                y0 = self.a.apex_y - 0.1 + k * spacing
                reach = 0.84 - 0.02 * abs(k - 5)
                # posterior rib: out from the spine, arching up, then down along the lateral wall
                ctrl = [
                    (m + sign * 0.06, y0),
                    (m + sign * 0.3, y0 - 0.16),
                    (sign * reach, y0 - 0.1),
                    (sign * (reach + 0.06), y0 + 0.28 + 0.02 * k),
                ]
                path = _curve(ctrl, 36)
                width = 0.045 + 0.004 * k
                bone.stroke(path, width, 1.0)
                cortex.stroke(path, width * 1.25, 1.0)
                # anterior rib: from the lateral wall, sloping down toward the sternum, faint
                front = _curve(
                    [(sign * (reach + 0.03), y0 + 0.1), (sign * 0.45, y0 + 0.28), (sign * 0.22, y0 + 0.45)], 24
                )
                anterior.stroke(front, 0.05, 1.0)
        bone, edge = (
            bone.array(),
            np.clip(cortex.array() - bone.array(), 0, 1),
        )  # cortical margins a little denser than the medulla
        ribs = self.c.blur(0.1 * bone + 0.1 * edge, 0.004)
        self.density += ribs + 0.04 * self.c.blur(anterior.array(), 0.01)

    def draw_shoulder_girdle(self) -> None:
        bone = _Strokes(self.c)
        m = self.a.mediastinum_shift
        for sign in (-1, 1):
            clavicle = _curve(
                [(m + sign * 0.05, -0.58), (sign * 0.3, -0.66), (sign * 0.45, -0.74), (sign * 0.75, -0.76)], 30
            )
            bone.stroke(clavicle, 0.055, 1.0)
            scapula = _curve([(sign * 0.72, -0.78), (sign * 0.62, -0.45), (sign * 0.7, -0.05)], 30)
            bone.stroke(scapula, 0.012, 0.6)
        self.density += 0.3 * self.c.blur(bone.array(), 0.004)

    def draw_vessels(self, lungs: dict[str, np.ndarray], spared: dict[str, np.ndarray]) -> None:
        """Branching pulmonary vessels from each hilum, thick centrally and thin at the periphery."""
        segments: list[tuple[np.ndarray, np.ndarray, float, int]] = []
        for side, (hx, hy) in self.hilum.items():
            sign = -1 if side == "right" else 1
            start = np.array([hx + self.a.mediastinum_shift, hy])
            for angle in np.deg2rad([-60, -25, 5, 35, 70, 100]) + self.rng.normal(0, 0.08, 6):
                self._branch(start, np.array([sign * math.cos(angle), math.sin(angle)]), 0.2, 0.018, 0, segments)
        thick, thin = _Strokes(self.c), _Strokes(self.c)
        for layer, central in ((thick, True), (thin, False)):
            chosen = [seg for seg in segments if (seg[3] < 2) == central]
            layer.strokes(
                [np.stack(seg[:2]) for seg in chosen],
                [seg[2] for seg in chosen],
                [1.0 if central else 0.8] * len(chosen),
            )
        field_ = (lungs["right"] & ~spared["right"]) | (lungs["left"] & ~spared["left"])
        vessels = self.c.blur(thick.array(), 0.008) + 0.8 * self.c.blur(thin.array(), 0.004)
        self.density += 0.3 * vessels * self.c.blur(field_.astype(np.float32), 0.01)

    def _branch(
        self, start: np.ndarray, direction: np.ndarray, length: float, width: float, depth: int, out: list
    ) -> None:
        end = start + direction * length
        out.append((start, end, width, depth))
        if depth >= 4:
            return
        for turn in (-1, 1):
            angle = turn * self.rng.uniform(0.25, 0.55)
            c, s = math.cos(angle), math.sin(angle)
            child = np.array([c * direction[0] - s * direction[1], s * direction[0] + c * direction[1]])
            self._branch(end, child, length * self.rng.uniform(0.6, 0.8), width * 0.68, depth + 1, out)

    # --- findings ---------------------------------------------------------------------------------------

    def lung_box(self, side: str, zone: str | None) -> tuple[float, float]:
        """(x, y) centre of a zone of one lung."""
        sign = -1 if side == "right" else 1
        dome = self.a.dome_right if side == "right" else self.a.dome_left
        y = {"upper": self.a.apex_y + 0.25, "middle": (self.a.apex_y + dome) / 2 + 0.1, "lower": dome - 0.12}[
            zone or "middle"
        ]
        return sign * (self.a.lung_half_width + 0.02), y

    def draw_effusion(self, f: Finding, lungs: dict[str, np.ndarray]) -> None:
        sign = -1 if f.side == "right" else 1
        dome = self.a.dome_right if f.side == "right" else self.a.dome_left
        depth = {"small": 0.08, "moderate": 0.25, "large": 0.48}[f.severity]
        lateral = np.clip(sign * self.c.x / 0.85, 0, 1)
        surface = dome - depth - 0.12 * lateral**2  # meniscus: the fluid climbs the lateral wall
        hw = self.a.lung_half_width
        wall = self.c.ellipse(sign * (hw + 0.04), 0.1, hw + 0.02, 0.8) < 1.0  # the pleural space of that side
        hemithorax = wall & (sign * (self.c.x - self.a.mediastinum_shift) > 0.1)
        hemithorax &= self.c.y < self.dome_y(f.side, self.c.x) + 0.03  # fluid lies above the diaphragm
        ramp = np.clip((self.c.y - surface) / 0.1, 0, 1)
        fluid = self.c.blur((hemithorax * ramp).astype(np.float32), 0.012)
        self.density += 0.75 * fluid

    def draw_pneumothorax(self, f: Finding, lungs: dict[str, np.ndarray]) -> np.ndarray:
        """Collapse the lung toward the hilum; returns the pleural air space (no vessel markings)."""
        factor = {"small": 0.88, "moderate": 0.76, "large": 0.6}[f.severity]
        hx, hy = self.hilum[f.side]
        hx += self.a.mediastinum_shift
        x = hx + (self.c.x - hx) / factor
        y = hy + (self.c.y - hy) / factor
        collapsed = self.lung_field(f.side, x, y) & lungs[f.side]
        space = lungs[f.side] & ~collapsed
        self.density -= 0.12 * space
        edge = collapsed & ~ndimage.binary_erosion(collapsed, iterations=max(1, self.c.size // 256))
        edge &= ndimage.binary_erosion(lungs[f.side], iterations=2)  # the visceral pleural line, not the chest wall
        self.pleural_line += edge
        return space

    def draw_consolidation(self, f: Finding, lungs: dict[str, np.ndarray]) -> None:
        cx, cy = self.lung_box(f.side, f.zone)
        extent = {"small": 0.16, "moderate": 0.24, "large": 0.34}[f.severity]
        r = self.c.ellipse(cx, cy, extent * 0.9, extent)
        patch = np.clip(1.3 - r + 0.35 * _smooth_noise(self.finding_rng, self.c, 0.04), 0, 1)
        opacity = self.c.blur(patch * lungs[f.side], 0.01)
        # air bronchograms: dark branching tubes inside the opacity
        bronchi = _Strokes(self.c)
        for angle in self.finding_rng.uniform(0, 2 * np.pi, 4):
            d = np.array([math.cos(angle), math.sin(angle)])
            bronchi.stroke(
                np.stack([np.array([cx, cy]) - d * extent * 0.5, np.array([cx, cy]) + d * extent * 0.5]), 0.012, 1.0
            )
        self.density += 0.6 * opacity - 0.15 * self.c.blur(bronchi.array(), 0.004) * opacity

    def draw_nodule(self, f: Finding, lungs: dict[str, np.ndarray]) -> None:
        cx, cy = self.lung_box(f.side, f.zone)
        cx += self.finding_rng.normal(0, 0.04)
        cy += self.finding_rng.normal(0, 0.04)
        if f.name == "nodule":
            radius = {"small": 0.025, "moderate": 0.04, "large": 0.06}[f.severity]
            r = self.c.ellipse(cx, cy, radius, radius)
        else:  # mass: larger, lobulated
            radius = {"small": 0.1, "moderate": 0.14, "large": 0.19}[f.severity]
            theta = np.arctan2(self.c.y - cy, self.c.x - cx)
            lobes = (
                1
                + 0.12 * np.sin(3 * theta + self.finding_rng.uniform(0, 6))
                + 0.07 * np.sin(5 * theta + self.finding_rng.uniform(0, 6))
            )
            r = self.c.ellipse(cx, cy, radius, radius) / lobes
        self.density += 0.75 * np.sqrt(np.clip(1 - r**2, 0, 1))

    def draw_hiatal_hernia(self, f: Finding) -> None:
        """A retrocardiac gas-filled sac just above the left dome, slightly left of the midline, with an air-fluid
        level: gas above (lucent), fluid below (dense), a thin wall."""
        radius = {"small": 0.05, "moderate": 0.075, "large": 0.1}[f.severity] * (1 + self.finding_rng.normal(0, 0.08))
        cx = self.a.mediastinum_shift + 0.06 + self.finding_rng.normal(0, 0.015)
        cy = self.a.dome_left - 0.9 * radius
        r = self.c.ellipse(cx, cy, 1.15 * radius, radius)
        inside = np.clip(1 - r**2, 0, 1) ** 0.5
        level = cy + radius * self.finding_rng.uniform(0.05, 0.35)
        fluid = self.c.blur((self.c.y > level).astype(np.float32), 0.004)
        wall = np.exp(-(((r - 1) / 0.08) ** 2))
        self.density += self.c.blur(inside * (0.35 * fluid - 0.45 * (1 - fluid)) + 0.12 * wall, 0.004)

    def draw_edema(self, f: Finding, lungs: dict[str, np.ndarray]) -> None:
        strength = {"small": 0.25, "moderate": 0.42, "large": 0.6}[f.severity]
        haze = self.c.layer()
        kerley = _Strokes(self.c)
        for side, (hx, hy) in self.hilum.items():
            sign = -1 if side == "right" else 1
            r = self.c.ellipse(hx + sign * 0.08, hy + 0.05, 0.3, 0.38)
            haze += np.exp(-(r**2)) * lungs[side] * (1 + 0.3 * _smooth_noise(self.finding_rng, self.c, 0.05))
            dome = self.a.dome_right if side == "right" else self.a.dome_left
            for k in range(int(4 + 6 * strength)):  # Kerley B lines: short, horizontal, at the lateral bases
                y = dome - 0.05 - 0.035 * k + self.finding_rng.normal(0, 0.008)
                x0 = sign * (self.a.lung_half_width * 2 + 0.02 - abs(y - dome) * 0.2)
                kerley.stroke(np.array([(x0, y), (x0 - sign * 0.06, y)]), 0.006, 1.0)
        self.density += strength * self.c.blur(haze, 0.02) + 0.25 * self.c.blur(kerley.array(), 0.003) * (
            lungs["right"] | lungs["left"]
        )

    def draw_atelectasis(self, f: Finding, lungs: dict[str, np.ndarray]) -> None:
        """Plate-like opacity at the base (the volume loss was applied to the anatomy beforehand)."""
        sign = -1 if f.side == "right" else 1
        dome = self.a.dome_right if f.side == "right" else self.a.dome_left
        band = _Strokes(self.c)
        y = dome - 0.12 - self.finding_rng.uniform(0, 0.08)
        length = {"small": 0.18, "moderate": 0.28, "large": 0.4}[f.severity]
        x0 = sign * 0.25
        band.stroke(
            _curve([(x0, y), (x0 + sign * length / 2, y - 0.02), (x0 + sign * length, y + 0.03)], 20), 0.025, 1.0
        )
        wedge = self.c.ellipse(sign * 0.3, dome - 0.05, 0.2, 0.1)
        plate = band.array() + (np.clip(1 - wedge, 0, 1) if f.severity == "large" else 0.0)
        self.density += 0.55 * self.c.blur(plate, 0.008) * lungs[f.side]

    # --- devices ----------------------------------------------------------------------------------------

    def draw_device(self, d: Device) -> None:
        getattr(self, f"_device_{d.name}")(d)

    def _device_pacemaker(self, d: Device, icd: bool = False) -> None:
        sign = -1 if d.side == "right" else 1
        gx, gy = sign * 0.55 + self.device_rng.normal(0, 0.03), -0.6 + self.device_rng.normal(0, 0.03)
        w, h = (0.14, 0.1) if not icd else (0.17, 0.12)
        can = self.c.ellipse(gx, gy, w / 2, h / 2, angle=sign * 0.3)
        self.devices += 2.4 * (can < 1.0) + 0.6 * (can < 0.55)  # battery compartment denser
        right, left, _top, bottom = self.heart_box()
        m = self.a.mediastinum_shift
        svc = (m - 0.05, -0.35)
        leads = [
            [
                (gx - sign * 0.04, gy),
                (sign * 0.25, -0.72),
                svc,
                (m - 0.08, 0.05),
                (right + 0.1, self.a.heart_y + 0.12),
                (left - 0.1, bottom - 0.08),
            ]
        ]
        leads.append(
            [
                (gx - sign * 0.04, gy + 0.02),
                (sign * 0.2, -0.7),
                svc,
                (m - 0.1, 0.02),
                (m - 0.12, -0.1),
                (m - 0.02, -0.06),
            ]
        )
        for k, ctrl in enumerate(leads):
            path = _curve(ctrl, 80)
            self.device_lines.stroke(path, 0.011, 1.5)
            if icd and k == 0:  # shock coil along the ventricular lead
                self.device_lines.stroke(path[55:75], 0.03, 2.0)

    def _device_icd(self, d: Device) -> None:
        self._device_pacemaker(d, icd=True)

    def _device_ecg_leads(self, d: Device) -> None:
        spots = [(-0.55, -0.62), (0.55, -0.62), (-0.6, 0.55), (0.62, 0.58), (0.25, 0.25)]
        for x, y in spots[: self.device_rng.integers(3, 6)]:
            x, y = x + self.device_rng.normal(0, 0.03), y + self.device_rng.normal(0, 0.03)
            r = self.c.ellipse(x, y, 0.035, 0.035)
            self.devices += 0.5 * (np.abs(r - 0.9) < 0.12) + 1.8 * (r < 0.3)
            exit_x = np.sign(x) * 1.1
            wire = _curve(
                [
                    (x, y),
                    (x + np.sign(x) * 0.1, y + self.device_rng.uniform(-0.2, 0.2)),
                    (exit_x, y + self.device_rng.uniform(-0.3, 0.3)),
                ],
                40,
            )
            self.device_lines.stroke(wire, 0.008, 0.9)

    def _device_chest_tube(self, d: Device) -> None:
        sign = -1 if d.side == "right" else 1
        path = _curve([(sign * 1.05, 0.35), (sign * 0.8, 0.2), (sign * 0.62, -0.1), (sign * 0.4, -0.55)], 60)
        self.device_lines.stroke(path, 0.03, 0.5)  # tube wall
        self.device_lines.stroke(path, 0.008, 2.0)  # radiopaque stripe
        self.device_lines.stroke(path[39:42], 0.03, 0.5)  # side hole: a gap in the stripe

    def _device_central_line(self, d: Device) -> None:
        sign = -1 if d.side == "right" else 1
        m = self.a.mediastinum_shift
        tip = (m - 0.06, -0.1 + self.device_rng.normal(0, 0.03))
        if self.device_rng.random() < 0.5:  # internal jugular
            ctrl = [(sign * 0.18, -1.05), (sign * 0.14, -0.75), (m - 0.06, -0.5), tip]
        else:  # subclavian
            ctrl = [(sign * 0.75, -0.66), (sign * 0.4, -0.66), (m - 0.06, -0.55), tip]
        self.device_lines.stroke(_curve(ctrl, 60), 0.01, 1.4)

    def _device_endotracheal_tube(self, d: Device) -> None:
        m = self.a.mediastinum_shift
        tip_y = self.carina[1] - 0.1 - self.device_rng.uniform(0, 0.1)
        path = _curve([(m - 0.005, -1.05), (m - 0.01, -0.7), (m - 0.01, tip_y)], 30)
        self.device_lines.stroke(path, 0.045, 0.45)
        self.device_lines.stroke(path, 0.008, 2.0)

    def _device_sternotomy_wires(self, d: Device) -> None:
        m = self.a.mediastinum_shift
        for y in np.linspace(-0.5, 0.15, self.device_rng.integers(5, 8)):
            loop = np.array(
                [(m + 0.035 * math.cos(t), y + 0.012 * math.sin(2 * t)) for t in np.linspace(0, 2 * np.pi, 24)]
            )
            self.device_lines.stroke(loop, 0.012, 2.5)

    # --- detector -----------------------------------------------------------------------------------------

    def expose(self, density: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Projected density -> detector image in [0, 1]: attenuation, exposure, blur, quantum noise."""
        line = density + 0.35 * self.c.blur(self.pleural_line.astype(np.float32), 0.002)
        signal = 1.0 - np.exp(-MU * self.a.exposure * np.clip(line, 0, None))
        signal = np.clip((signal - 0.02) * self.a.contrast, 0, 1)
        signal = self.c.blur(signal, 0.7 * self.c.px) if self.c.size > 128 else signal
        # quantum noise: stronger where fewer photons reach the detector (bright, dense regions)
        return np.clip(signal + noise * (0.6 + 0.6 * signal), 0.0, 1.0).astype(np.float32)


def render_case(
    seed: int | np.random.Generator,
    *,
    size: int = 256,
    findings: Sequence[Finding] | None = None,
    devices: Sequence[Device] | None = None,
    study: int = 0,
    add_findings: Sequence[Finding] = (),
) -> PhantomCase:
    """Render one phantom patient.

    Args:
        seed: an int seed or a numpy Generator; the same seed gives the same patient (and study 0 the same case).
        study: 0, the patient's first study; ``k > 0`` renders the same patient (anatomy and proportions) on
            another day: new positioning, rotation, inspiration, exposure, detector noise, and (when sampled)
            new findings, devices and report wording. Identity is then learnable (re-identification).
        size: image side in pixels (32 to 1024).
        findings: what to draw; ``None`` samples them, ``()`` draws a normal chest.
        devices: support devices; ``None`` samples them, ``()`` draws none.
        add_findings: drawn besides the (sampled or given) findings, e.g. a held-out ``hiatal_hernia``; the rest
            of the case is the one rendered without them.
    """
    if not isinstance(size, (int, np.integer)) or not 32 <= size <= MAX_SIZE:
        raise InputError(f"phantom size {size!r}; an integer from 32 to {MAX_SIZE} is accepted.")
    if not isinstance(study, (int, np.integer)) or study < 0:
        raise InputError(f"study {study!r}; a whole number from 0 (the first study) is accepted.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    anatomy_rng, finding_rng, device_rng, noise_rng, text_rng = rng.spawn(5)
    anatomy = _Anatomy.sample(anatomy_rng)
    if study:  # a later study: the patient's own streams for anatomy, new ones for everything of the day
        finding_rng, device_rng, noise_rng, text_rng, acquisition_rng = rng.spawn(study)[-1].spawn(5)
        anatomy.restudied(acquisition_rng)
    findings = (sample_findings(finding_rng) if findings is None else tuple(findings)) + tuple(add_findings)
    devices = sample_devices(device_rng) if devices is None else tuple(devices)
    if len({f.name for f in findings}) != len(findings):
        raise InputError("each finding may appear once per case; merge duplicates or render two cases.")
    for f in findings:  # findings that change the anatomy itself
        if f.name == "cardiomegaly":
            anatomy.ctr = {"small": 0.55, "moderate": 0.6, "large": 0.67}[f.severity] + finding_rng.uniform(0, 0.03)
        if f.name == "atelectasis":  # volume loss: the dome rises, the mediastinum shifts toward the side
            lift = {"small": 0.03, "moderate": 0.06, "large": 0.1}[f.severity]
            if f.side == "right":
                anatomy.dome_right -= lift
            else:
                anatomy.dome_left -= lift
            anatomy.mediastinum_shift += (-1 if f.side == "right" else 1) * lift * 0.5

    r = _Renderer(size, anatomy, (anatomy_rng, finding_rng, device_rng))
    # 1. Anatomy
    r.draw_body()
    r.draw_abdomen()
    lungs = r.draw_lungs()
    r.draw_mediastinum()
    r.draw_airways()
    r.draw_spine()
    r.draw_ribs()
    r.draw_shoulder_girdle()
    # 2. Findings (a pneumothorax spares the vessels in its pleural air space)
    spared = {side: np.zeros_like(lungs[side]) for side in SIDES}
    change = r.c.layer()  # what the findings' own drawing added or took away (anatomy shifts excluded)
    extents: list[tuple[str, str | None, np.ndarray]] = []  # (name, side, where it changed): the layout
    for f in findings:
        if f.name == "pneumothorax":
            before = r.density.copy()
            spared[f.side] = r.draw_pneumothorax(f, lungs)
            extents.append((f.name, f.side, np.abs(r.density - before) > FINDING_MASK_DENSITY))
            change += np.abs(r.density - before)
    r.draw_vessels(lungs, spared)
    for f in findings:
        before = r.density.copy()
        if f.name in {"pleural_effusion"}:
            r.draw_effusion(f, lungs)
        elif f.name == "consolidation":
            r.draw_consolidation(f, lungs)
        elif f.name in {"nodule", "mass"}:
            r.draw_nodule(f, lungs)
        elif f.name == "edema":
            r.draw_edema(f, lungs)
        elif f.name == "atelectasis":
            r.draw_atelectasis(f, lungs)
        elif f.name == "hiatal_hernia":
            r.draw_hiatal_hernia(f)
        elif f.name == "cardiomegaly":  # drawn as the anatomy: its extent is the heart's
            extents.append((f.name, None, r._heart_mask(r.c.x, r.c.y)))
        if f.name not in {"pneumothorax", "cardiomegaly"}:
            extents.append((f.name, f.side, np.abs(r.density - before) > FINDING_MASK_DENSITY))
        change += np.abs(r.density - before)
    # 3. Devices, in their own layer
    for d in devices:
        blobs, lines = r.devices.copy(), r.device_lines.array()
        r.draw_device(d)
        drawn = r.devices - blobs
        if d.name not in {"pacemaker", "icd"}:  # a pacemaker's place is its generator's, not its leads'
            drawn = drawn + r.device_lines.array() - lines
        extents.append((d.name, d.side, drawn > 0.05))
    device_layer = r.devices + r.device_lines.array()
    device_layer = r.c.blur(device_layer, 0.6 * r.c.px) if size > 128 else device_layer
    # 4. Detector: both renderings share the same quantum noise
    noise = (anatomy.noise * noise_rng.standard_normal((size, size))).astype(np.float32)
    image = r.expose(r.density + device_layer, noise)
    clean = r.expose(r.density, noise)
    device_mask = device_layer > 0.05
    labels = chexpert_labels(findings, devices)
    report = write_report(findings, devices, text_rng)
    return PhantomCase(
        image=image,
        clean=clean,
        device_mask=device_mask,
        finding_mask=change > FINDING_MASK_DENSITY,
        report=report,
        findings=findings,
        devices=devices,
        labels=labels,
        layout=tuple(
            LayoutItem(canonical_item(name), box, side)
            for name, side, where in extents
            if (box := box_of_mask(where)) is not None
        ),
        anatomy={
            "ctr": anatomy.ctr,
            "rotation_deg": math.degrees(anatomy.rotation),
            "breasts": anatomy.breasts,
            "study": int(study),
        },
    )


def chexpert_labels(findings: Sequence[Finding], devices: Sequence[Device]) -> dict[str, int]:
    """The 14 CheXpert labels (1 or 0) for what was drawn."""
    labels = dict.fromkeys(CHEXPERT_LABELS, 0)
    for f in findings:
        for column in CHEXPERT_OF[f.name]:
            labels[column] = 1
    labels["Support Devices"] = int(bool(devices))
    labels["No Finding"] = int(not findings)  # as in CheXpert, devices alone still count as "No Finding"
    return labels


# ----------------------------------------------------------------------------------------------------
# Dataset writer and CLI
# ----------------------------------------------------------------------------------------------------


def write_dataset(
    out: str | Path,
    *,
    n: int,
    size: int = 256,
    seed: int = 0,
    bit_depth: int = 8,
    workers: int = 1,
    quiet: bool = False,
    studies: int = 1,
    add_finding: str | None = None,
    add_rate: float = 0.5,
) -> Path:
    """Write ``n`` phantoms as PNGs plus ``manifest.csv`` under ``out``; returns the manifest path.

    ``add_finding`` (e.g. ``hiatal_hernia``, :data:`HELD_OUT_FINDINGS`): a seeded ``add_rate`` of the cases get it
    besides what they have, each case otherwise the one rendered without it.

    Case ``i`` depends only on ``(seed, i)``, so a larger ``n`` extends a smaller set with the same cases,
    and ``workers`` processes give the same files as one. ``studies > 1``: case ``i`` is study ``i % studies``
    of patient ``i // studies`` (one patient id, one split; what patient re-identification learns from).
    """
    if not isinstance(studies, int) or studies < 1:
        raise InputError(f"studies per patient {studies!r}; a whole number from 1 is accepted.")
    if add_finding is not None:
        Finding(add_finding, "left" if add_finding in SIDED else None)  # checks the name
        if not 0 < add_rate <= 1:
            raise InputError(f"add_rate {add_rate!r}; a fraction in (0, 1] is accepted.")
    extra = (add_finding, add_rate) if add_finding else None
    if n < 1:
        raise InputError(f"--n {n}: at least one image is needed.")
    if bit_depth not in (8, 16):
        raise InputError(f"bit depth {bit_depth}; 8 or 16 accepted.")
    out = Path(out)
    for folder in ("images", "clean", "masks", "finding_masks"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    if workers > 1:  # cases are independent: render and write them in parallel, then one manifest
        from concurrent.futures import ProcessPoolExecutor

        chunks = [range(k, n, workers) for k in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            parts = list(
                pool.map(
                    _write_cases,
                    [out] * workers,
                    chunks,
                    [size] * workers,
                    [seed] * workers,
                    [bit_depth] * workers,
                    [True] * workers,
                    [studies] * workers,
                    [extra] * workers,
                )
            )
        rows = sorted((row for part in parts for row in part), key=lambda row: row["path"])
        write_manifest(out / "manifest.csv", rows, extra=PHANTOM_COLUMNS)
        return out / "manifest.csv"
    rows = _write_cases(out, range(n), size, seed, bit_depth, quiet=quiet, studies=studies, extra=extra)
    if not quiet:
        print(file=sys.stderr)
    write_manifest(out / "manifest.csv", rows, extra=PHANTOM_COLUMNS)
    return out / "manifest.csv"


def _write_cases(
    out: Path,
    indices: range,
    size: int,
    seed: int,
    bit_depth: int,
    quiet: bool = True,
    studies: int = 1,
    extra: tuple[str, float] | None = None,
) -> list[dict[str, str]]:
    """Render and write the cases ``indices``; returns their manifest rows."""
    from cxr_studio.imaging import save_png

    rows = []
    start, n = time.perf_counter(), len(indices)
    for count, i in enumerate(indices, start=1):
        patient, study = divmod(i, studies)
        add: tuple[Finding, ...] = ()
        if extra:  # its own stream: whether and how large, never touching the case's other draws
            pick = np.random.default_rng([seed, i, 7919])
            if pick.random() < extra[1]:
                add = (Finding(extra[0], None, str(pick.choice(SEVERITIES))),)
        case = render_case(np.random.default_rng([seed, patient]), size=size, study=study, add_findings=add)
        stem = f"phantom_{seed}_{i:06d}"
        patient_id = f"phantom-{seed}-{patient:06d}"
        parameters = {
            "source": "cxr_studio.data.phantom",
            "seed": [seed, patient],
            **({"study": study} if studies > 1 else {}),  # one-study sets keep the files they always had
            "size": size,
            "findings": [f.describe() for f in case.findings],
        }
        save_png(
            out / "images" / f"{stem}.png", case.image, bit_depth=bit_depth, parameters=parameters, synthetic=True
        )
        save_png(out / "clean" / f"{stem}.png", case.clean, bit_depth=bit_depth, parameters=parameters, synthetic=True)
        save_png(out / "masks" / f"{stem}.png", case.device_mask.astype(np.uint8) * 255)
        save_png(out / "finding_masks" / f"{stem}.png", case.finding_mask.astype(np.uint8) * 255)
        rows.append(
            {
                "path": f"images/{stem}.png",
                "dataset": "phantom",
                "patient_id": patient_id,
                "study_id": f"{patient_id}-s{study + 1}",
                "view": "PA",
                "split": split_for_patient(patient_id),
                "device_mask_path": f"masks/{stem}.png",
                "finding_mask_path": f"finding_masks/{stem}.png",
                "clean_path": f"clean/{stem}.png",
                **case.manifest_columns(),
            }
        )
        if not quiet and count % max(1, n // 20) == 0:
            rate = count / (time.perf_counter() - start)
            print(
                f"\r{count}/{n} images, {rate:.1f}/s, ETA {(n - count) / rate:.0f} s",
                end="",
                file=sys.stderr,
                flush=True,
            )
    return rows


def report_without_added_finding(row: dict[str, str], *, seed: int) -> str:
    """The report of a :func:`write_dataset` row's case rendered without its added finding (``add_finding``): case
    ``i`` is ``render_case(default_rng([seed, i]))`` and the added finding comes from a stream of its own, so
    nothing else changes. The paired control of few-shot adaptation."""
    index = int(Path(row["path"]).stem.rsplit("_", 1)[1])
    return render_case(np.random.default_rng([seed, index]), size=64).report


PHANTOM_COLUMNS = ("device_mask_path", "finding_mask_path", "clean_path", "findings", "devices", "boxes")

# 16 cases that show every finding and device once: the README's contact sheet.
SHOWCASE: tuple[tuple[tuple[Finding, ...], tuple[Device, ...]], ...] = (
    ((), ()),
    ((Finding("pleural_effusion", "right", "large"),), ()),
    ((Finding("pleural_effusion", "left", "moderate"),), ()),
    ((Finding("cardiomegaly", severity="large"),), ()),
    ((Finding("pneumothorax", "right", "large"),), ()),
    ((Finding("pneumothorax", "left", "moderate"),), (Device("chest_tube", "left"),)),
    ((Finding("consolidation", "right", "large", "lower"),), ()),
    ((Finding("consolidation", "left", "moderate", "upper"),), ()),
    ((Finding("nodule", "right", "large", "upper"),), ()),
    ((Finding("mass", "left", "large", "middle"),), ()),
    ((Finding("edema", severity="large"), Finding("cardiomegaly", severity="moderate")), ()),
    ((Finding("atelectasis", "left", "large"),), ()),
    ((), (Device("pacemaker", "left"), Device("ecg_leads"))),
    ((), (Device("icd", "left"), Device("sternotomy_wires"))),
    ((), (Device("endotracheal_tube"), Device("central_line", "right"))),
    (
        (Finding("pleural_effusion", "right", "small"), Finding("atelectasis", "right", "small")),
        (Device("central_line", "left"),),
    ),
)


def contact_sheet(seed: int = 0, *, size: int = 256) -> PIL.Image.Image:  # noqa: F821
    """A 4x4 sheet of the :data:`SHOWCASE` cases with their impressions underneath."""
    from PIL import Image, ImageDraw, ImageFont

    from cxr_studio.imaging import to_pil

    caption_h = 46
    sheet = Image.new("L", (4 * size, 4 * (size + caption_h)), 0)
    pen = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for k, (findings, devices) in enumerate(SHOWCASE):
        case = render_case(np.random.default_rng([seed, 1000 + k]), size=size, findings=findings, devices=devices)
        x, y = (k % 4) * size, (k // 4) * (size + caption_h)
        sheet.paste(to_pil(case.image), (x, y))
        words = case.impression.split()
        text, line = [], ""
        for word in words:
            if len(line) + len(word) > size // 6.2:
                text.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        text.append(line)
        pen.multiline_text((x + 4, y + size + 2), "\n".join(text[:3]), fill=235, font=font, spacing=1)
        pen.text((x + 4, y + 3), "R", fill=255, font=font)  # the patient's right marker, as on a real film
    return sheet


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.data.phantom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of images")
    parser.add_argument("--size", type=int, default=256, help=f"image side in pixels (32-{MAX_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the set: case i is rendered from (seed, i)")
    parser.add_argument("--out", type=Path, help="output folder (images/, clean/, masks/, manifest.csv)")
    parser.add_argument("--bit-depth", type=int, default=8, choices=(8, 16), help="PNG bit depth")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument(
        "--studies-per-patient",
        type=int,
        default=1,
        help="each patient imaged this many times (new positioning, exposure, findings; same anatomy)",
    )
    parser.add_argument(
        "--add-finding",
        choices=HELD_OUT_FINDINGS,
        help="also draw this finding, which the default sets never contain, in a fraction of the cases",
    )
    parser.add_argument("--add-rate", type=float, default=0.5, help="fraction of cases with --add-finding")
    parser.add_argument("--contact-sheet", type=Path, help="write the 16-case contact sheet PNG here and exit")
    args = parser.parse_args(argv)
    try:
        if args.contact_sheet:
            contact_sheet(args.seed, size=args.size).save(args.contact_sheet)
            print(f"wrote {args.contact_sheet}")
            return 0
        if args.out is None:
            parser.error("--out is required (or --contact-sheet)")
        start = time.perf_counter()
        manifest = write_dataset(
            args.out,
            n=args.n,
            size=args.size,
            seed=args.seed,
            bit_depth=args.bit_depth,
            workers=args.workers,
            studies=args.studies_per_patient,
            add_finding=args.add_finding,
            add_rate=args.add_rate,
        )
        elapsed = time.perf_counter() - start
        print(
            f"wrote {args.n} images to {args.out} in {elapsed:.1f} s ({args.n / elapsed:.1f} images/s); "
            f"manifest {manifest}"
        )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
