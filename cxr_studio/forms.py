"""The app's forms as data: for each action, its inputs' names, labels, defaults and ranges.

A :class:`Field`'s ``name`` is the keyword argument of the :class:`~cxr_studio.app_model.AppModel` method (or
the job it starts) it feeds, so a form and its action cannot drift apart unnoticed (a test compares them).
Ranges come from :data:`~cxr_studio.limits.LIMITS`, defaults from the presets and the loaded model: the page
never restates a number. ``app.py`` turns each field into a widget; nothing here imports a UI toolkit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cxr_studio.config import (
    CASCADE_STEPS,
    EDIT_FILLS,
    EDIT_PRESETS,
    INTERPOLATION_MODES,
    LR_SCHEDULES,
    PRESETS,
    PREVIEW_SAMPLING,
)
from cxr_studio.data import phantom
from cxr_studio.layout import LAYOUT_GROUPS
from cxr_studio.limits import LIMITS

LAYOUT_CHOICES = ("auto", "drawn", "none")  # the Generate tab's layout: the rule's, the boxes drawn, or none
LAYOUT_COLOURS = ("#ff4d4d", "#ffa64d", "#ffff4d", "#4dff88", "#4dd2ff", "#b84dff", "#ff4dc4", "#ffffff")  # by group
DEFAULT_REPORT = "FINDINGS: Large right pleural effusion. No pneumothorax.\nIMPRESSION: Large right pleural effusion."
PHANTOM_MANIFEST = "data/phantom/manifest.csv"
EDIT_BRUSH, KEEP_BRUSH = "#00ff66", "#3399ff"  # the editor's brushes: green regenerates, blue keeps
# A lone gallery image is sized to the column's width, taller than the box: capping the tile keeps it whole.
CSS = "#gallery .thumbnail-lg { max-height: 600px; }"
UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom"]
# The inpainting canvas: the upload drawn in (PNG), painted with a green (regenerate) and a blue (keep) brush
EDITOR = {"type": "numpy", "image_mode": "RGBA", "format": "png", "layers": False, "transforms": (), "sources": ()}
EDITOR |= {"fixed_canvas": False, "height": 560, "elem_id": "inpaint-editor"}
EDITOR["label"] = "Paint what to regenerate (green) and what must not change (blue: keep)"
BRUSH = {"colors": [(EDIT_BRUSH, 0.5), (KEEP_BRUSH, 0.5)], "color_mode": "fixed", "default_size": 16}
# What an action returns is shown by views: images (one, a before/after pair, a gallery), files, text (formatted or
# as lines to copy), a loss curve
VIEWS = ("image", "before_after", "gallery", "file", "files", "markdown", "lines", "json", "code", "html", "curve")
# layout: a canvas of labelled boxes over a chest (where each finding goes; its value is AppModel.layout_canvas's)
KINDS = ("text", "report", "number", "slider", "check", "choice", "radio", "checks", "radiograph", "layout", *VIEWS)
# The Generate tab's fields shown in their own panels: the layout, and the advanced options
GENERATE_LAYOUT = ("layout_mode", "layout_boxes")
GENERATE_ADVANCED = ("side_contrast",)


@dataclass(frozen=True)
class Field:
    """One input or view. Inputs: text (one line), report (several lines), number (whole), slider, check (a box),
    choice (a menu), radio or checks (several boxes), radiograph (an upload of :data:`UPLOAD_TYPES`, read into a
    :class:`~cxr_studio.imaging.Radiograph`); views: :data:`VIEWS`, in the order the action returns them. Fields
    with the same non-empty ``row`` sit side by side; ``elem_id`` is the page's handle (browser tests, its API)."""

    name: str
    kind: str
    label: str
    value: Any = None
    low: float = 0
    high: float = 1
    step: float = 1
    choices: tuple[str, ...] = ()
    row: str = ""
    placeholder: str = ""
    interactive: bool = True
    elem_id: str = ""
    columns: int = 0  # a gallery's images per row (0: the page's default)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class Task:
    """A tab of one action: the :class:`~cxr_studio.app_model.AppModel` method ``action`` (also its API name) fed
    by ``fields`` from the ``button``, its values shown by ``views``; ``run``: a model call (one at a time, with
    progress and Stop)."""

    title: str
    action: str
    fields: tuple[Field, ...]
    button: str
    views: tuple[Field, ...]
    run: bool = True


def text(name: str, label: str, value: str = "", **options: Any) -> Field:
    return Field(name, "text", label, value, **options)


def whole(
    name: str, label: str, value: int = 0, *, low: float = 0, high: float = LIMITS.max_seed, row: str = ""
) -> Field:
    return Field(name, "number", label, value, low=low, high=high, row=row)


def slider(name: str, label: str, value: float, low: float, high: float, step: float = 1, row: str = "") -> Field:
    return Field(name, "slider", label, value, low=low, high=high, step=step, row=row)


def choice(name: str, label: str, choices: Any, value: Any, *, kind: str = "choice", row: str = "") -> Field:
    return Field(name, kind, label, value, choices=tuple(choices), row=row)


def view(name: str, kind: str, label: str, elem_id: str = "", **options: Any) -> Field:
    """What an action returns, shown and never edited."""
    return Field(name, kind, label, interactive=False, elem_id=elem_id, **options)


def generate_form(studio: Any) -> tuple[Field, ...]:
    """Report, sampler, steps, guidance, seed, count and super-resolution, at the loaded model's defaults."""
    d, sr = studio.sampling, studio.super_resolution is not None
    sampler = d.sampler if d.sampler in studio.samplers else studio.samplers[0]  # the menu has the converging ones
    return (
        Field("report", "report", "Report", DEFAULT_REPORT),
        text("negative", "Negative report (steer away from)"),
        choice("sampler", "Sampler", studio.samplers, sampler, row="sampling"),
        slider("steps", "Steps", d.num_steps, 1, LIMITS.ui_max_steps, row="sampling"),
        slider("guidance", "Guidance", d.guidance_scale, 0, LIMITS.ui_max_guidance, 0.5, row="sampling"),
        whole("seed", "Seed", row="seed"),
        Field("random_seed", "check", "Random seed", True, row="seed"),
        slider("count", "Images", 1, 1, LIMITS.ui_max_images, row="output"),
        Field(
            "upscale",
            "check",
            f"Super-resolution to {studio.output_size} px",
            d.upscale and sr,
            row="output",
            interactive=sr,
        ),
        Field(
            "fast",
            "check",
            f"Preview (fast): {PREVIEW_SAMPLING['num_steps']} steps, no super-resolution",
            False,
            row="output",
        ),
        choice("layout_mode", "Layout", LAYOUT_CHOICES, "auto" if studio.takes_layout else "none", kind="radio"),
        Field(
            "layout_boxes",
            "layout",
            "Where each finding goes: drag to draw a box and pick its finding; drag to move, handles to resize, "
            "Delete to remove. 'drawn' uses these boxes; 'auto' places what the report names by rule.",
            DEFAULT_REPORT,
            choices=LAYOUT_GROUPS,
            elem_id="layout-canvas",
            interactive=studio.takes_layout,
        ),
        Field("side_contrast", "check", "Side contrast (no negative: steer from the other side)", d.side_contrast),
    )


WINDOW_FORM = (  # the radiologist's window, in display [0, 1]
    slider("level", "Level", 0.5, 0, 1, 0.01, row="window"),
    slider("width", "Width", 1, 0.05, 1, 0.01, row="window"),
    Field("invert", "check", "Invert", False, row="window"),
)
ADAPTER_FORM = (
    text("folder", "Adapter folder (its name on this page)", row="adapter"),
    slider("weight", "Weight", 1.0, -2, 2, 0.05, row="adapter"),
)
PRIVACY_FORM = (
    Field("private", "check", "Screen and replace (privacy-enhancing sampling, Packhäuser et al. 2023)", False),
    text("manifest", "Training manifest", PHANTOM_MANIFEST),
)
COMPOSE_FORM = (
    choice("finding", "Finding", ["none", *phantom.FINDINGS], "pleural_effusion", row="helper"),
    choice("side", "Side (patient's)", phantom.SIDES, "right", kind="radio", row="helper"),
    choice("severity", "Severity", phantom.SEVERITIES, "large", kind="radio", row="helper"),
    choice("devices", "Devices", phantom.DEVICES, [], kind="checks"),
)


def inpaint_form(studio: Any, *, preset: str = "remove device") -> tuple[Field, ...]:
    """The edit's report and settings at ``preset``'s values (the page resets them when the preset changes)."""
    first = EDIT_PRESETS[preset]
    return (
        text("report", "Report for the region (optional; empty: the preset's own)", placeholder=first.report),
        choice("preset", "Preset", EDIT_PRESETS, preset, row="mask"),
        slider("strength", "Strength", first.strength, 0.05, 1, 0.01, row="mask"),
        choice("fill", "Start from (inside the mask)", EDIT_FILLS, first.fill, kind="radio", row="mask"),
        slider("grow_px", "Grow (px)", first.grow_px, 0, LIMITS.ui_max_mask_px, row="mask"),
        slider("feather_px", "Feather (px)", first.feather_px, 0, LIMITS.ui_max_mask_px, row="mask"),
        slider("num_steps", "Steps", studio.sampling.num_steps, 1, LIMITS.ui_max_steps, row="run"),
        whole("seed", "Seed", row="run"),
        slider("resample_jumps", "RePaint resampling", 0, 0, LIMITS.ui_max_resample_jumps, row="run"),
        choice(
            "add_finding",
            "Add a finding where you paint (its box: the painted region's)"
            if studio.takes_layout
            else "Add a finding (this model takes no layout)",
            ["none", *LAYOUT_GROUPS] if studio.takes_layout else ["none"],
            "none",
        ),
    )


OUTPAINT_FORM = (
    *(
        slider(side, side.title(), 64 if side == "top" else 0, 0, 512, 8, row="margins")
        for side in ("left", "right", "top", "bottom")
    ),
    text("report", "Report (optional)"),
    slider("seeds", "Seeds", 2, 1, 4),
)
INTERPOLATE_FORM = (
    choice("mode", "Between", INTERPOLATION_MODES, INTERPOLATION_MODES[0], kind="radio"),
    text("report_a", "Start report", "Normal chest radiograph."),
    text("report_b", "End report", "Large left pleural effusion."),
    whole("seed_a", "Seed (start)", row="seeds"),
    whole("seed_b", "Seed (end)", 1, row="seeds"),
    text("report", "Report (seed and image modes)"),
    Field("start", "radiograph", "Start image (image modes)", row="images", elem_id="interpolate-start-image"),
    Field("end", "radiograph", "End image", row="images", elem_id="interpolate-end-image"),
    slider("frames", "Frames", 8, 2, LIMITS.ui_max_frames),
)


def synthesize_form(max_batch: int) -> tuple[Field, ...]:
    return (
        text("model_dir", "Model folder (empty: the bundled demo cascade)"),
        text("reports", "Reports: a manifest (.csv) or a text file, one report per line"),
        text("out", "Output folder", "runs/synthetic"),
        whole("per_report", "Images per report", 1, low=1, row="counts"),
        whole("seed", "First seed", row="counts"),
        whole("batch_size", "Batch", 4, low=1, high=max_batch, row="counts"),
        whole("num_steps", "Steps (0: the model's)", row="counts"),
        text("privacy_against", "Privacy screen: training manifest (optional)"),
        text("judge", "Quality filter: judge folder (optional; needs a manifest with labels)"),
        Field("dicom", "check", "Also one DICOM study (study.zip in the output folder)", False),
    )


PHANTOM_FORM = (
    choice("findings", "Findings", phantom.FINDINGS, [], kind="checks"),
    choice("side", "Side (patient's)", phantom.SIDES, "right", kind="radio"),
    choice("severity", "Severity", phantom.SEVERITIES, "moderate", kind="radio"),
    choice("zone", "Zone", phantom.ZONES, "lower", kind="radio"),
    choice("devices", "Support devices", phantom.DEVICES, [], kind="checks"),
    whole("seed", "Seed"),
)
STUDY_FORM = (
    text("folder", "Study folder", "runs/reader-study", row="study"),
    text("reader", "Reader (a pseudonym)", row="study"),
    slider("confidence", "Confidence", 3, 1, 5, row="study"),
)
STUDY_BUTTONS = ("Add cases", "Start / continue", "Real", "Synthetic", "Results")
SCREEN_FORM = (text("manifest", "Training manifest", PHANTOM_MANIFEST),)
SCREEN_NOTE = (
    "Registered correlation of fine structure against every image of a training split (threshold calibrated on "
    "training-versus-training pairs). Edited real images are patient images whatever it says."
)
SYNTHETIC_NOTE = (
    "Generated images are **synthetic** and labelled as such; edited real images are still patient images."
)
PHANTOM_SET_FORM = (
    text("folder", "Phantom folder", "data/phantom", row="set"),
    whole("count", "Images", 1000, low=1, row="set"),
    whole("size", "Size", 512, low=64, high=2048, row="set"),
)


# The views of each action, in the order it returns its values
INPAINT_VIEWS = (
    view("compare", "before_after", "Before / after", "inpaint-slider"),
    view("difference", "image", "Difference (x4)", "inpaint-difference"),
    view("files", "files", "Result in the original bit depth (PNG) and as DICOM (derived)"),
)
OUTPAINT_VIEWS = (view("edited", "gallery", "Outpainted (kept pixels exact)", "outpaint-gallery"),)
INTERPOLATE_VIEWS = (
    view("frames", "gallery", "Frames (SYNTHETIC)", "interpolate-frames", columns=4),
    view("gif", "file", "Animated GIF"),
)
REVIEW_VIEWS = (
    view("real", "image", "Real", "review-real", row="views"),
    view("synthetic", "image", "SYNTHETIC", "review-synthetic", row="views"),
)
SCREEN_VIEWS = (
    view("verdict", "markdown", "Verdict", row="screen"),
    view("nearest", "image", "Nearest training image", "review-nearest", row="screen"),
)
STUDY_RESULTS_VIEWS = (
    view("scores", "json", "Accuracy, binomial test, sensitivity, specificity, ROC AUC", row="results"),
    view("answers", "file", "Answers (CSV)", row="results"),
)
SYNTHESIZE_VIEWS = (
    view("status", "markdown", "Status", value="No job yet."),
    view("summary", "json", "Summary (made, replaced and dropped, and why)"),
    view("latest", "gallery", "Latest batch", columns=4),
    view("log", "code", "Log"),
)
TRAIN_VIEWS = (  # AppModel.train_progress's values
    view("status", "markdown", "Status", value="No run yet."),
    view("curve", "curve", "Training loss"),
    view("log", "code", "Log"),
    view("samples", "image", "Latest sample grid"),
)
PHANTOM_VIEWS = (
    view("image", "image", "SYNTHETIC phantom - not a patient image", "phantom-image"),
    view("clean", "image", "Same patient without devices (SYNTHETIC)"),
    view("report", "lines", "Report"),
)

INTERPOLATE_TASK = Task("Interpolate", "interpolate", INTERPOLATE_FORM, "Interpolate", INTERPOLATE_VIEWS)
PHANTOM_TASK = Task("Phantom", "phantom_case", PHANTOM_FORM, "Render phantom", PHANTOM_VIEWS, run=False)


def train_form() -> tuple[Field, ...]:
    """The Train tab's form (:meth:`~cxr_studio.app_model.AppModel.train_start`'s keywords) at the training
    defaults."""
    stages = {"ae": "Autoencoder", "latent": "Latent", "sr": "SR", "sr_finetune": "SR fine-tune"}
    stages["ae_decoder"] = "Decoder fine-tune (encoder frozen)"
    return (
        text("manifest", "Manifest", PHANTOM_MANIFEST),
        text("out", "Model folder", "runs/my-cascade/model"),
        choice("preset", "Preset", PRESETS, "demo"),
        *(whole(k, f"{label} steps", CASCADE_STEPS[k], row="steps") for k, label in stages.items()),
        choice("lr_schedule", "Learning-rate schedule", LR_SCHEDULES, LR_SCHEDULES[0]),
    )


ADAPT_FORM = (  # AppModel.adapt_start's keywords besides the Train form's manifest and out
    text("model", "Base model folder (empty: the bundled demo)"),
    choice("method", "Method", ("lora", "full"), "lora", kind="radio", row="adapt"),
    whole("rank", "LoRA rank", 8, low=1, high=256, row="adapt"),
    whole("max_steps", "Steps", 300, low=1, row="adapt"),
    text("prior_report", "Prior-preservation report (optional)", placeholder="Normal chest radiograph."),
)
