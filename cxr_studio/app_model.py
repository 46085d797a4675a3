"""What the app does, without the widgets: one method per action, plain values in and out.

``app.py`` builds the widgets and calls these methods; everything here is testable with any studio and no
server. The model owns the loaded studio (swappable), one stop flag per browser session, the upload cache
(a read upload is deleted from the UI's cache, so a file name carrying a patient's name does not stay on disk)
and the privacy screens (built once per training manifest). Files for the page are written under ``outputs``.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxr_studio import imaging, jobs
from cxr_studio.config import PREVIEW_SAMPLING
from cxr_studio.data import phantom, phantom_reports
from cxr_studio.dicom import export
from cxr_studio.errors import InputError
from cxr_studio.evaluation.reader_study import ReaderStudy
from cxr_studio.files import write_atomic
from cxr_studio.forms import LAYOUT_CHOICES, LAYOUT_COLOURS
from cxr_studio.imaging import read_png_parameters, save_png
from cxr_studio.layout import LAYOUT_GROUPS, LayoutItem, box_of_mask, box_side, layout_from_report, parse_layout
from cxr_studio.model_folders import DEFAULT_MODEL, list_models, load_model, read_card

# progress(step, total, what): the UI's progress bar
Progress = Callable[[int, int, str], None]
RECENT_UPLOADS = 4  # reads kept for other sessions that uploaded the same file (one path per content hash)
MODEL_COLUMNS = ("folder", "family", "MB", "loadable", "card")  # of AppModel.models_table
QUEUE = {"max_size": 16, "default_concurrency_limit": 1}  # one model call at a time (CPU or one GPU), 16 waiting
MAX_UPLOAD = "200mb"


def _painted(editor: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Every stroke layer's pixels: (alpha > 0, blue > green) per pixel, the latter marking the keep brush."""
    layers = np.stack([np.asarray(layer) for layer in editor["layers"]]).astype(np.int16)
    painted = layers[..., 3] > 0
    return painted.any(axis=0), (painted & (layers[..., 2] > layers[..., 1])).any(axis=0)


def editor_mask(editor: dict[str, Any] | None) -> np.ndarray:
    """The region painted with the green brush in an image editor's value ``{"layers": [(H, W, 4) RGBA], ...}``:
    every pixel a green stroke touched (alpha > 0). The brush is see-through (opacity 0.5), so painted alpha is
    about 127: a threshold at half would drop the whole stroke. Returns ``(H, W)`` bool (True = regenerate)."""
    if not editor or not editor.get("layers"):
        raise InputError("paint the region to regenerate first (the green brush marks it; white = regenerate).")
    painted, keep = _painted(editor)
    return painted & ~keep


def layout_from_annotation(annotation: dict[str, Any] | None) -> tuple[LayoutItem, ...]:
    """A box-drawing canvas's value ``{"image": (H, W[, C]) array, "boxes": [{"xmin", "ymin", "xmax", "ymax",
    "label"}, ...]}`` (pixels of its image) -> a layout normalised to the image, each box's side by where it lies.
    Boxes with a label that is no item group are refused with the accepted labels."""
    if not annotation or annotation.get("image") is None:
        return ()
    height, width = np.asarray(annotation["image"]).shape[:2]
    items = []
    for box in annotation.get("boxes") or ():
        label = str(box.get("label") or "")
        if label not in LAYOUT_GROUPS:
            raise InputError(f"layout box labelled {label!r}; label each box with one of: {', '.join(LAYOUT_GROUPS)}.")
        x0, x1 = sorted((float(box["xmin"]) / width, float(box["xmax"]) / width))
        y0, y1 = sorted((float(box["ymin"]) / height, float(box["ymax"]) / height))
        normalised = (max(x0, 0.0), max(y0, 0.0), min(x1, 1.0), min(y1, 1.0))
        items.append(LayoutItem(label, normalised, box_side(normalised)))
    return tuple(items)


def annotation_for(layout: Sequence[LayoutItem], image: np.ndarray) -> dict[str, Any]:
    """A layout over ``image`` ``(H, W[, C])`` as a box-drawing canvas's value (pixels, one colour per group)."""
    height, width = image.shape[:2]
    boxes = [
        {
            "xmin": round(item.box[0] * width),
            "ymin": round(item.box[1] * height),
            "xmax": round(item.box[2] * width),
            "ymax": round(item.box[3] * height),
            "label": item.group,
            "color": _hex_rgb(LAYOUT_COLOURS[LAYOUT_GROUPS.index(item.group)]),
        }
        for item in layout
        if item.group is not None
    ]
    return {"image": image, "boxes": boxes}


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def editor_keep_mask(editor: dict[str, Any] | None) -> np.ndarray | None:
    """The region painted with the blue keep brush, ``(H, W)`` bool (True = must not change), or None."""
    if not editor or not editor.get("layers"):
        return None
    keep = _painted(editor)[1]
    return keep if keep.any() else None


class AppModel:
    """The app's state and actions; see the module docstring."""

    def __init__(
        self,
        studio: Any,
        *,
        cache: str | os.PathLike[str] | None = None,
        models: str | os.PathLike[str] = "models",
    ) -> None:
        self.studio = studio
        self.models = Path(models)  # the models folder the Model tab lists
        self.cache = Path(cache or os.environ.get("GRADIO_TEMP_DIR") or Path.cwd() / "outputs").resolve()
        self.outputs = self.cache / "outputs"
        self._stops: dict[str, threading.Event] = {}
        self._screens: dict[str, tuple] = {}  # manifest -> (calibrated privacy screen, its rows)
        self._recent: OrderedDict[str, imaging.Radiograph] = OrderedDict()
        self._lock = threading.Lock()

    # --- sessions, progress, files ------------------------------------------------------------------------

    @staticmethod
    def session_of(request: Any) -> str:
        """The browser session a request comes from (``"local"`` outside a server)."""
        return getattr(request, "session_hash", None) or "local"

    def request_stop(self, session: str) -> None:
        self._stops.setdefault(session, threading.Event()).set()

    def callback(self, session: str, progress: Progress | None) -> Callable[[int, int], bool]:
        """A library step callback for one session: moves its progress bar, True once its Stop was pressed."""
        flag = self._stops.setdefault(session, threading.Event())
        flag.clear()

        def on_step(step: int, total: int) -> bool:
            if progress is not None:
                progress(step, total, "denoising")
            return flag.is_set()

        return on_step

    def output_path(self, stem: str, suffix: str = ".png") -> Path:
        self.outputs.mkdir(parents=True, exist_ok=True)
        return self.outputs / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}{suffix}"

    def shown(self, display01: np.ndarray, stem: str) -> str:
        """An image for the page as a uniquely named 8-bit PNG. Returning arrays would let the UI cache them by
        content hash and rewrite that file in place, which truncates a concurrent download of the same picture
        by another session (found by the load test)."""
        path = self.output_path(stem)
        save_png(path, imaging.to_uint8(display01))
        return str(path)

    # --- uploads ---------------------------------------------------------------------------------------------

    def read_upload(
        self, path: str | None, *, warn: Callable[[str], object] | None = None
    ) -> imaging.Radiograph | None:
        """An uploaded file -> the radiograph, kept in memory; ``warn`` tells the user what they should know about
        it (the page shows a notification). A DICOM header is de-identified on the way in, and the cached upload
        is deleted once read."""
        if not path:
            return None
        with self._lock:
            if path in self._recent and not Path(path).exists():  # another session uploaded the same file first
                radiograph = self._recent[path]
            else:
                try:
                    radiograph = imaging.read_radiograph(path, name="upload")
                finally:
                    self.forget_upload(path)
                self._recent[path] = radiograph
                while len(self._recent) > RECENT_UPLOADS:
                    self._recent.popitem(last=False)
        from cxr_studio.dicom.deidentify import burned_in_text

        if radiograph.dicom is not None and burned_in_text(radiograph.dicom) and warn is not None:
            warn("This DICOM says text is burned into its pixels: identifiers may remain in the image.")
        return radiograph

    def forget_upload(self, path: str) -> None:
        """Delete a file from the UI's upload cache (and its folder when empty); never anything outside it."""
        file = Path(path).resolve()
        if self.cache in file.parents and file.is_file() and self.outputs.resolve() not in file.parents:
            file.unlink(missing_ok=True)
            try:
                file.parent.rmdir()
            except OSError:
                pass  # not empty: another file shares the folder

    def windowed(
        self, radiograph: imaging.Radiograph | None, level: float = 0.5, width: float = 1.0, invert: bool = False
    ) -> str | None:
        """The radiograph's 8-bit view through a window (level and width in display [0, 1]; default: all of it)."""
        if radiograph is None:
            return None
        return self.shown(imaging.window(radiograph.display, level=level, width=width, invert=invert), "view")

    # --- generate --------------------------------------------------------------------------------------------

    def screen(self, manifest: str, progress: Progress | None = None) -> tuple:
        """The privacy screen over a manifest's training split, built (and calibrated) once per manifest."""
        from cxr_studio.evaluation.privacy import screen_for_manifest

        if not manifest or not Path(manifest).is_file():
            raise InputError("give the training manifest (a manifest.csv) to screen against.")
        key = str(Path(manifest).resolve())
        if key not in self._screens:
            if progress is not None:
                progress(0, 1, "building the privacy screen over the training set (once per manifest)")
            self._screens[key] = screen_for_manifest(manifest)
        return self._screens[key]

    def generate(
        self,
        report: str,
        *,
        negative: str,
        sampler: str,
        steps: int,
        guidance: float,
        seed: int | None,
        count: int,
        upscale: bool,
        fast: bool = False,
        side_contrast: bool = False,
        random_seed: bool = False,
        private: bool = False,
        manifest: str = "",
        layout_mode: str = "auto",
        layout_boxes: dict[str, Any] | None = None,
        session: str = "local",
        progress: Progress | None = None,
        preview: Callable[[str], object] | None = None,
    ) -> tuple[list[tuple[str, str]], list[str], int]:
        """Images for a report -> (gallery of (file, caption), the 16-bit PNGs, the first seed). ``seed`` None or
        ``random_seed`` draws one; ``private``: images that resemble a training image of ``manifest`` are replaced
        (Packhäuser et al.); ``layout_mode`` (:data:`LAYOUT_CHOICES`): the rule's layout from the report, the boxes
        drawn on ``layout_boxes`` (a box-drawing canvas's value: :func:`layout_from_annotation`) or none;
        ``preview(file)``: the first image's current estimate as a PNG, every few steps (marked as a preview);
        ``fast``: the library's fast preview settings (:data:`~cxr_studio.config.PREVIEW_SAMPLING`) over the form's."""
        if layout_mode not in LAYOUT_CHOICES:
            raise InputError(f"layout {layout_mode!r}; accepted: {', '.join(LAYOUT_CHOICES)}.")
        seed = None if random_seed or seed is None else int(seed)
        drawn = layout_mode == "drawn"
        layout = layout_from_annotation(layout_boxes) if drawn else None if layout_mode == "none" else "auto"
        options = {
            "layout": layout,
            "negative_report": negative,
            "sampler": sampler,
            "num_steps": int(steps),
            "guidance_scale": float(guidance),
            "upscale": bool(upscale),
            "side_contrast": bool(side_contrast),
            "callback": self.callback(session, progress),
        } | (PREVIEW_SAMPLING if fast else {})
        if not private:  # the private path draws and screens in rounds: no single run to watch
            options["preview"] = self._previews(preview)
        if private:
            from cxr_studio.evaluation.privacy import generate_private
            from cxr_studio.limits import random_seed_or

            screen = self.screen(manifest, progress)[0]
            result, _ = generate_private(
                self.studio, report, screen=screen, num_images=int(count), seed=random_seed_or(seed), **options
            )
        else:
            result = self.studio.generate(report, seed=seed, num_images=int(count), **options)
        files = []
        for i, image_seed in enumerate(result.seeds):
            files.append(str(self.output_path(f"synthetic-seed{image_seed}")))
            save_png(files[-1], result.pixels[i], bit_depth=16, parameters=result.parameters_for(i), synthetic=True)
        p = result.parameters
        captions = [
            f"SYNTHETIC · seed {s} · {p['sampler']} {p['num_steps']} steps · cfg {p['guidance_scale']}"
            for s in result.seeds
        ]
        return list(zip(files, captions)), files, result.seeds[0]

    def _previews(self, preview: Callable[[str], object] | None) -> Callable[[np.ndarray, int, int], None] | None:
        """The library's preview hook for a page's ``preview(file)``: each estimate as a small PNG."""
        if preview is None:
            return None
        return lambda pixels, step, total: preview(self.shown(pixels, f"preview-{step}of{total}"))

    def recall(self, path: str) -> dict[str, Any]:
        """The settings written into a generated PNG (to put back into the form), its layout as the canvas shows
        it: ``layout_mode`` "drawn" with the image's own boxes, "none" where it had none."""
        p = {"side_contrast": False, **read_png_parameters(path)}  # PNGs made before side contrast lack it
        keys = ("report", "negative_report", "side_contrast", "sampler", "num_steps", "guidance_scale", "seed")
        recalled = {key: p[key] for key in keys}
        layout = p.get("layout")  # PNGs made before layouts, and images drawn without one, have none
        recalled["layout_mode"] = "none" if layout is None else "drawn"
        recalled["layout_boxes"] = self.layout_canvas(p["report"], layout=parse_layout(layout or []))
        return recalled

    @functools.cached_property
    def _outline(self) -> np.ndarray:
        """A normal phantom chest (the standard PA frame) on which layouts are drawn, 512 px RGB uint8."""
        case = phantom.render_case(0, size=512, findings=(), devices=())
        return np.repeat(imaging.to_uint8(case.image)[..., None], 3, axis=2)

    def layout_canvas(self, report: str, *, layout: Sequence[LayoutItem] | None = None) -> dict[str, Any]:
        """The layout canvas's value: ``layout`` (default: the rule's from ``report``) as labelled boxes over a
        chest outline (:func:`annotation_for`)."""
        return annotation_for(layout_from_report(report) if layout is None else layout, self._outline)

    def export_dicom(self, png: str | None) -> str:
        if not png:
            raise InputError("select an image in the gallery first.")
        path = self.output_path("synthetic", ".dcm")
        write_atomic(path, export.synthetic_dicom(imaging.read_radiograph(png).display, read_png_parameters(png)))
        return str(path)

    def export_study(self, pngs: Sequence[str] | None) -> str:
        if not pngs:
            raise InputError("generate images first.")
        return str(export.study_from_pngs(list(pngs), self.output_path("synthetic-study", ".zip")))

    # --- edit ------------------------------------------------------------------------------------------------

    def inpaint(
        self,
        radiograph: imaging.Radiograph | None,
        editor: dict[str, Any] | None,
        *,
        report: str = "",
        preset: str = "remove device",
        strength: float | None = None,
        fill: str | None = None,
        grow_px: int | None = None,
        feather_px: int | None = None,
        num_steps: int | None = None,
        seed: int = 0,
        resample_jumps: int = 0,
        add_finding: str = "none",
        session: str = "local",
        progress: Progress | None = None,
        preview: Callable[[str], object] | None = None,
    ) -> tuple[tuple[str, str], str, list[str]]:
        """Regenerate the green region of ``editor`` (an image editor's value, see :func:`editor_mask`), never its
        blue one -> ((before, after), difference x4, [PNG at the input's bit depth, DICOM]). The options are
        :meth:`CXRStudio.inpaint`'s (None: the preset's). ``add_finding`` (a :data:`LAYOUT_GROUPS` item, or
        "none"): the item is drawn in the painted region's box (its layout), the report naming it where it is
        empty ("Right nodule."). ``preview(file)``: the edited window's current estimate as a PNG, every few steps."""
        if radiograph is None:
            raise InputError("upload a radiograph first (PNG, JPEG, TIFF or DICOM).")
        if add_finding != "none" and add_finding not in LAYOUT_GROUPS:
            raise InputError(f"add a finding {add_finding!r}; accepted: none, {', '.join(LAYOUT_GROUPS)}.")
        mask = editor_mask(editor)
        layout = None
        if add_finding != "none" and (box := box_of_mask(mask)) is not None:
            layout = [LayoutItem(add_finding, box, box_side(box))]
            report = report or f"{box_side(box).capitalize()} {add_finding.lower()}."
        as_int = {"grow_px": grow_px, "feather_px": feather_px, "num_steps": num_steps}
        result = self.studio.inpaint(
            radiograph,
            mask,
            keep_mask=editor_keep_mask(editor),
            layout=layout,
            report=report,
            preset=preset,
            strength=None if strength is None else float(strength),
            fill=fill,
            **{k: None if v is None else int(v) for k, v in as_int.items()},
            seed=int(seed),
            resample_jumps=int(resample_jumps),
            callback=self.callback(session, progress),
            preview=self._previews(preview),
        )
        png, dcm = self.output_path(f"edited-{result.bit_depth}bit"), self.output_path("edited", ".dcm")
        lossless = result.image if result.image.dtype in (np.uint8, np.uint16) else result.display
        save_png(png, lossless, bit_depth=16, parameters=result.parameters)
        write_atomic(
            dcm, export.derived_dicom(result.image, result.bit_depth, result.parameters, source=radiograph.dicom)
        )
        before, after = self.shown(radiograph.display, "before"), self.shown(result.display, "after")
        return (before, after), self.shown(np.clip(result.difference * 4, 0, 1), "difference"), [str(png), str(dcm)]

    def outpaint(
        self,
        radiograph: imaging.Radiograph | None,
        *,
        seeds: int,
        left: int = 0,
        right: int = 0,
        top: int = 0,
        bottom: int = 0,
        report: str = "",
        session: str = "local",
        progress: Progress | None = None,
    ) -> list[tuple[str, str]]:
        """Grow the canvas by the margins (px) once per seed ``0 .. seeds - 1``."""
        if radiograph is None:
            raise InputError("upload a radiograph first.")
        callback = self.callback(session, progress)
        margins = {"left": int(left), "right": int(right), "top": int(top), "bottom": int(bottom)}
        results = [
            self.studio.outpaint(radiograph, seed=s, report=report, callback=callback, **margins)
            for s in range(int(seeds))
        ]
        return [
            (self.shown(r.display, "outpainted"), f"seed {r.parameters['seed']} · edited, not anonymous")
            for r in results
        ]

    def interpolate(
        self,
        *,
        mode: str,
        frames: int,
        report: str = "",
        report_a: str = "",
        report_b: str = "",
        seed_a: int = 0,
        seed_b: int = 1,
        start: Any = None,
        end: Any = None,
        session: str = "local",
        progress: Progress | None = None,
    ) -> tuple[list[tuple[str, str]], str]:
        """Frames between two endpoints and their animated GIF: the reports (mode "report"), the seeds ("seed") or
        the radiographs ``start`` and ``end`` (the image modes); ``report`` and ``seed_a`` condition the latter."""
        ends = {"report": (report_a, report_b), "seed": (int(seed_a), int(seed_b))}
        start, end = ends.get(mode, (start, end))
        if start is None or end is None:
            raise InputError("give both endpoints.")
        result = self.studio.interpolate(
            start,
            end,
            mode=mode,
            num_frames=int(frames),
            report=report,
            seed=int(seed_a),
            callback=self.callback(session, progress),
        )
        gif = self.output_path("interpolation", ".gif")
        write_atomic(gif, result.gif())
        return [(self.shown(p, f"frame{i}"), f"SYNTHETIC · frame {i}") for i, p in enumerate(result.pixels)], str(gif)

    # --- review ----------------------------------------------------------------------------------------------

    def review(
        self, real: Any, synthetic: Any, level: float, width: float, invert: bool
    ) -> tuple[str | None, str | None]:
        """Both images through the same window/level, at the same height on screen."""

        def view(radiograph: imaging.Radiograph | None) -> str | None:
            if radiograph is None:
                return None
            shown = imaging.window(
                imaging.fit_height(radiograph.display, 512), level=level, width=width, invert=invert
            )
            return self.shown(shown, "review")

        return view(real), view(synthetic)

    def screen_synthetic(self, synthetic: Any, manifest: str, progress: Progress | None = None) -> tuple[str, str]:
        """The privacy screen's verdict on one synthetic image, and the nearest training image."""
        from cxr_studio.evaluation.privacy import screen_pixels

        if synthetic is None:
            raise InputError("upload the synthetic radiograph first.")
        screen, _rows = self.screen(manifest, progress)
        match = screen_pixels(screen, synthetic.display[None])[0]
        verdict = (
            "**FLAGGED: too close to a training image** (do not share it as anonymous)"
            if match.flagged
            else "passes the screen"
        )
        text = (
            f"{verdict}\n\nscore {match.score:.4f} against threshold {screen.threshold:.4f} (the 99.9th percentile of "
            f"training-versus-training scores over {len(screen.calibration)} images); "
            f"nearest: training row {match.nearest}"
        )
        return text, self.shown((screen.images[match.nearest] + 1) / 2, "nearest-training")

    def study_add(self, folder: str, real: Sequence[str] | None, synthetic: Sequence[str] | None) -> str:
        try:
            count = ReaderStudy(folder).add_cases(list(real or []), list(synthetic or []))
        finally:
            for path in [*(real or []), *(synthetic or [])]:
                self.forget_upload(path)  # the study keeps its own blinded copies
        return f"{count} cases in the study."

    @staticmethod
    def study_next(folder: str, reader: str) -> tuple[str | None, str, tuple[str, float] | None]:
        """(image, status, (case id, time shown)) of the reader's next case."""
        case = ReaderStudy(folder).next_case(reader)
        if case is None:
            return None, "Done: every case is answered. Thank you.", None
        return str(case.image_path), f"Case {case.position} of {case.total}", (case.case_id, time.time())

    def study_answer(self, folder: str, reader: str, current: Any, confidence: int, answer: str) -> tuple:
        if current is None:
            raise InputError("start (or continue) the study first.")
        ReaderStudy(folder).record(reader, current[0], answer, int(confidence), time.time() - current[1])
        return self.study_next(folder, reader)

    def study_results(self, folder: str) -> tuple[dict[str, Any], str]:
        study = ReaderStudy(folder)
        path = self.output_path("reader-study", ".csv")
        write_atomic(path, study.export_csv())
        return study.results(), str(path)

    # --- synthesize (a background job) ------------------------------------------------------------------------

    @staticmethod
    def synthesize_start(
        *,
        model_dir: str,
        reports: str,
        out: str,
        per_report: int,
        seed: int,
        batch_size: int,
        num_steps: int,
        privacy_against: str,
        judge: str,
        dicom: bool,
    ) -> str:
        """Start (or finish) a whole synthetic set in the background: ``python -m cxr_studio.synthesize``."""
        from cxr_studio import synthesize

        synthesize.start_job(
            model=model_dir or DEFAULT_MODEL,
            reports=reports,
            out=out,
            per_report=int(per_report),
            seed=int(seed),
            batch_size=int(batch_size),
            num_steps=int(num_steps) or None,
            privacy_against=privacy_against or None,
            judge=judge or None,
            dicom_study=f"{out}/study.zip" if dicom else None,
        )
        return f"Started into `{out}`; Start again after a stop or a crash finishes the same set."

    @staticmethod
    def synthesize_poll(out: str) -> tuple[str, dict[str, Any] | None, list[str], str]:
        """(status line, summary, latest batch's images, console tail) of the job writing into ``out``."""
        from cxr_studio import synthesize

        p = synthesize.read_job(out)
        rate = f", {p['images_per_s']:.2f} images/s" if p["images_per_s"] else ""
        eta = f", ETA {p['eta_s'] / 60:.0f} min" if p["eta_s"] and p["running"] else ""
        running = " (running)" if p["running"] else ""
        status = f"**{p['status']}**{running}: {p['done']} of {p['total']} items{rate}{eta}"
        return status, p["summary"], p["latest"], "\n".join(p["log"])

    @staticmethod
    def synthesize_stop(out: str) -> str:
        return "No job is running." if jobs.stop(out, wait_s=0) else "Stopping after this batch."

    # --- training runs and adaptations (background jobs: cxr_studio.jobs) ---------------------------------------

    @staticmethod
    def train_start(
        *,
        manifest: str,
        out: str,
        preset: str,
        lr_schedule: str,
        ae: int,
        latent: int,
        sr: int,
        sr_finetune: int,
        ae_decoder: int,
        resume: bool = False,
    ) -> str:
        """Start (or resume) training a cascade into ``out`` in its own process (``python -m
        training.train_cascade``), with the steps of each stage (0 skips one)."""
        steps = {"ae": ae, "latent": latent, "ae_decoder": ae_decoder, "sr": sr, "sr_finetune": sr_finetune}
        jobs.start_run(
            manifest=manifest,
            out=out,
            preset=preset,
            steps={k: int(v) for k, v in steps.items()},
            resume=resume,
            extra_args=["--lr-schedule", lr_schedule],
        )
        return f"{'Resumed' if resume else 'Started'} training into `{out}`."

    @staticmethod
    def adapt_start(
        *, manifest: str, out: str, model: str, method: str, rank: int, max_steps: int, prior_report: str
    ) -> str:
        """Start few-shot adaptation of ``model`` (empty: the bundled demo) into the adapter folder ``out``."""
        jobs.start_finetune(
            manifest=manifest,
            out=out,
            model=model,
            method=method,
            rank=int(rank),
            max_steps=int(max_steps),
            prior_report=prior_report,
        )
        return f"Started adapting `{model or 'the bundled demo'}` into `{out}`."

    @staticmethod
    def train_progress(out: str) -> tuple[str, Any, str, str | None]:
        """(status line, the loss curve as a DataFrame of step and loss, console tail, latest sample grid) of the
        run writing into ``out``: what the Train tab shows every two seconds."""
        import pandas as pd  # the app's plots take a DataFrame (pandas comes with gradio)

        p = jobs.read_progress(out)
        eta = f", ETA {p['eta_s'] / 60:.0f} min" if p.get("eta_s") else ""
        status = (
            f"**{p['stage'] or '—'}**: {p['status']}, step {p['step']}/{p['max_steps']}{eta}; stages {p['stages']}"
        )
        return status, pd.DataFrame(p["losses"], columns=["step", "loss"]), "\n".join(p["log"]), p["latest_samples"]

    @staticmethod
    def train_stop(out: str) -> str:
        """Stop the run writing into ``out`` after its current step (a checkpoint is saved)."""
        # wait_s=0: SIGTERM and return at once; False means "signalled, still finishing its step"
        done = jobs.stop_run(out, wait_s=0)
        return "No run is active." if done else "Stopping after this step (a checkpoint is saved)."

    # --- adapters (LoRA) ----------------------------------------------------------------------------------------

    def adapter_listing(self) -> str:
        adapters = self.studio.adapters
        if not adapters:
            return "No adapter loaded: the base model alone."
        return "\n".join(
            f"- `{a.name}` x {a.weight:g} ({a.path.parent.name}, sha256 {a.sha256[:12]})" for a in adapters.values()
        )

    def load_adapter(self, folder: str, weight: float) -> str:
        """Load an adapter folder onto the model -> the listing. The page names an adapter by its folder
        throughout (the library names it after the folder's last part)."""
        if not folder:
            raise InputError("give the adapter folder (python -m training.finetune --out writes one).")
        self.studio.load_adapter(folder, weight=float(weight))
        return self.adapter_listing()

    def set_adapter_weight(self, folder: str, weight: float) -> str:
        self.studio.set_adapter_weight(Path(folder).name, float(weight))
        return self.adapter_listing()

    def unload_adapter(self, folder: str) -> str:
        self.studio.unload_adapter(Path(folder).name)
        return self.adapter_listing()

    # --- model -----------------------------------------------------------------------------------------------

    def model_choices(self) -> list[tuple[str, str]]:
        """The models folder's loadable folders as (label, path): family, size and name."""
        return [
            (f"{e.path.name} · {e.family} · {e.size_mb:,.0f} MB", str(e.path))
            for e in list_models(self.models)
            if e.loadable
        ]

    def models_table(self) -> list[list[str]]:
        """Every model folder found (loadable or not, and why), with the first lines of its card: a row of
        :data:`MODEL_COLUMNS` each."""
        return [
            [e.path.name, e.family, f"{e.size_mb:,.1f}", e.problem or "yes", e.card.replace("\n", " ")[:200]]
            for e in list_models(self.models)
        ]

    def load(self, folder: str | None) -> str:
        """Load a model folder (empty: the bundled demo) -> its summary; the Generate form follows it
        (:func:`cxr_studio.forms.generate_form` of the new studio)."""
        self.studio = load_model(folder or None)
        return self.summary()

    def summary(self) -> str:
        s = self.studio
        sizes = {k: f"{sum(p.numel() for p in v.parameters()) / 1e6:.2f} M" for k, v in s.modules().items()}
        folder = s.folder or (DEFAULT_MODEL if s.model_id.startswith("demo@") else None)
        text = read_card(folder, limit=None) if folder else ""
        size = f"{s.image_size} px" + (f" -> {s.output_size} px" if s.output_size != s.image_size else "")
        return (
            f"**Loaded:** `{s.model_id}` ({s.family_name}) on `{s.device}` · {size}\n\n"
            f"**Components:** {sizes}\n\n{text}"
        )

    @staticmethod
    def evaluation_page(folder: str) -> str:
        page = Path(folder or "") / "index.html"
        if not page.is_file():
            raise InputError("no evaluation report there (index.html written by python -m cxr_studio.evaluate).")
        return page.read_text()

    # --- phantom ---------------------------------------------------------------------------------------------

    def phantom_case(
        self, findings: Sequence[str], side: str, severity: str, zone: str, devices: Sequence[str], seed: int
    ) -> tuple[str, str, str]:
        """(image, the same patient without devices, report) of one phantom patient."""
        chosen = [
            phantom.Finding(n, side if n in phantom.SIDED else None, severity, zone if n in phantom.ZONED else None)
            for n in findings
        ]
        worn = [phantom.Device(n, side if n in phantom.SIDED_DEVICES else None) for n in devices]
        case = phantom.render_case(int(seed), size=512, findings=chosen, devices=worn)
        return self.shown(case.image, "phantom"), self.shown(case.clean, "phantom-clean"), case.report

    @staticmethod
    def compose(finding: str, side: str, severity: str, devices: Sequence[str]) -> str:
        """The structured helper: a finding (or "none") and devices -> report text."""
        zone = "lower" if finding in phantom.ZONED else None
        chosen = (
            []
            if finding == "none"
            else [phantom.Finding(finding, side if finding in phantom.SIDED else None, severity, zone)]
        )
        return phantom_reports.report_for(
            chosen, [phantom.Device(d, side if d in phantom.SIDED_DEVICES else None) for d in devices]
        )

    @staticmethod
    def make_phantoms(folder: str, count: int, size: int) -> str:
        return str(phantom.write_dataset(folder, n=int(count), size=int(size), seed=0, workers=2, quiet=True))
