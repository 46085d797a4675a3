"""CXR Studio front-end: ``python app.py [--model DIR] [--port N] [--host 127.0.0.1] [--auth USER:PASS]``.

All computation lives in ``cxr_studio`` and ``training``; this file only builds widgets, adapts widget
values to library calls, and shows library errors as notifications. Every image it serves is PNG
(lossless), and every generated image is labelled synthetic.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

# Offline and private by design: set before gradio is imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="cxr-studio-"))  # private, cleaned by delete_cache

import gradio as gr
import numpy as np

import cxr_studio
import cxr_studio.export
from cxr_studio import InputError, __version__, imaging, read_png_parameters, save_png
from cxr_studio.config import EDIT_FILLS, EDIT_PRESETS, INTERPOLATION_MODES, PRESETS
from cxr_studio.data import phantom
from cxr_studio.evaluation.reader_study import ReaderStudy
from cxr_studio.files import write_atomic
from cxr_studio.limits import LIMITS
from training.config import CASCADE_STEPS, LR_SCHEDULES

MAX_UPLOAD = "200mb"
# One model call at a time (CPU or one GPU); at most 16 waiting, beyond that gradio answers "queue is full"
QUEUE = {"max_size": 16, "default_concurrency_limit": 1}
UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom"]
OUTPUTS = Path(os.environ["GRADIO_TEMP_DIR"]) / "outputs"


class AppModel:
    """The loaded studio (swappable) and one stop flag per browser session."""

    def __init__(self, studio) -> None:
        self.studio = studio
        self._stops: dict[str, threading.Event] = {}
        self._screens: dict[str, tuple] = {}  # manifest -> (calibrated privacy screen, its rows)

    def screen(self, manifest: str, progress: gr.Progress | None = None):
        """The privacy screen over a manifest's training split, built (and calibrated) once per manifest."""
        from cxr_studio.evaluation.privacy import screen_for_manifest

        if not manifest or not Path(manifest).is_file():
            raise InputError("give the training manifest (a manifest.csv) to screen against.")
        key = str(Path(manifest).resolve())
        if key not in self._screens:
            if progress is not None:
                progress(0, desc="building the privacy screen over the training set (once per manifest)")
            self._screens[key] = screen_for_manifest(manifest)
        return self._screens[key]

    def stop_flag(self, request: gr.Request | None) -> threading.Event:
        key = getattr(request, "session_hash", None) or "local"
        flag = self._stops.setdefault(key, threading.Event())
        return flag

    def request_stop(self, request: gr.Request) -> None:
        self.stop_flag(request).set()

    def progress(self, progress: gr.Progress, request: gr.Request | None):
        """A library step callback: moves the progress bar, returns True once Stop was pressed."""
        flag = self.stop_flag(request)
        flag.clear()

        def on_step(step: int, total: int) -> bool:
            progress((step, total), desc="denoising", unit="steps")
            return flag.is_set()

        return on_step


def errors_as_notifications(handler):
    """Library errors become a notification with the library's message; no traceback reaches the page."""

    @functools.wraps(handler)  # keeps the signature, so gradio still injects gr.Request and gr.Progress
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except InputError as err:
            raise gr.Error(str(err)) from None
        except cxr_studio.GenerationCancelled as err:
            raise gr.Error(f"Stopped: {err}.", title="Stopped") from None

    return wrapped


def shown(display01: np.ndarray, stem: str) -> str:
    """An image for the page as our own uniquely named 8-bit PNG. Returning arrays would let gradio cache
    them by content hash and rewrite that file in place, which truncates a concurrent download of the same
    picture by another session (found by the load test)."""
    path = output_path(stem)
    save_png(path, imaging.to_uint8(display01))
    return str(path)


def output_path(stem: str, suffix: str = ".png") -> Path:
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    return OUTPUTS / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}{suffix}"


def editor_mask(value: dict | None) -> np.ndarray:
    """The painted region of a gr.ImageEditor value: every pixel any stroke layer touched (alpha > 0).

    The brush is see-through (opacity 0.5), so painted alpha is about 127: thresholding at half would
    drop the whole stroke. Returns a boolean mask (True = regenerate)."""
    if not value or not value.get("layers"):
        raise InputError("paint the region to regenerate first (the brush marks it; white = regenerate).")
    return np.max(np.stack([np.asarray(layer)[..., 3] for layer in value["layers"]]), axis=0) > 0


def read_upload(path: str | None) -> imaging.Radiograph | None:
    """An uploaded file -> a Radiograph kept in the session (a DICOM header de-identified on the way in).

    Gradio caches an upload under its own file name, which can carry a patient's name or ID: once read,
    the cached copy is deleted, so only the opaque in-memory radiograph remains on the server."""
    if not path:
        return None
    radiograph = _read_upload_once(path)
    from cxr_studio.deidentify import burned_in_text

    if radiograph.dicom is not None and burned_in_text(radiograph.dicom):
        gr.Warning("This DICOM says text is burned into its pixels: identifiers may remain in the image itself.")
    return radiograph


def _read_upload_once(path: str) -> imaging.Radiograph:
    with _RECENT_LOCK:
        if path in _RECENT and not Path(path).exists():  # another session uploaded the same file (same path) first
            return _RECENT[path]
        try:
            radiograph = imaging.read_radiograph(path, name="upload")
        finally:
            forget_upload(path)
        _RECENT[path] = radiograph
        while len(_RECENT) > 4:
            _RECENT.popitem(last=False)
    return radiograph


# Gradio stores an upload in a folder named by its content hash: two sessions uploading the same file get one
# path. The first read deletes it, so the last few reads are kept (read-only) for the others.
_RECENT: OrderedDict[str, imaging.Radiograph] = OrderedDict()
_RECENT_LOCK = threading.Lock()


def forget_upload(path: str) -> None:
    """Delete a file from gradio's upload cache (and its folder when empty); never anything outside it."""
    file, cache = Path(path).resolve(), Path(os.environ["GRADIO_TEMP_DIR"]).resolve()
    if cache in file.parents and file.is_file() and OUTPUTS.resolve() not in file.parents:
        file.unlink(missing_ok=True)
        try:
            file.parent.rmdir()
        except OSError:
            pass  # not empty: another file shares the folder


def load_upload(path: str | None, level: float, width: float, invert: bool):
    """An uploaded file -> (radiograph kept on the server, windowed 8-bit copy for the editor)."""
    radiograph = read_upload(path)
    return radiograph, rewindow(radiograph, level, width, invert)


def rewindow(radiograph: imaging.Radiograph | None, level: float, width: float, invert: bool):
    """The radiograph's 8-bit view through a window (level and width in display [0, 1])."""
    if radiograph is None:
        return None
    return shown(imaging.window(radiograph.display, level=level, width=width, invert=invert), "view")


def synthesize_tab() -> None:
    """A whole synthetic dataset as a background job: the same code as ``python -m cxr_studio.synthesize``."""
    from cxr_studio import jobs, synthesize

    def start(model_dir, reports, out, per_report, seed, batch_size, steps, privacy, judge, dicom):
        synthesize.start_job(
            model=model_dir or cxr_studio.DEFAULT_MODEL,
            reports=reports,
            out=out,
            per_report=int(per_report),
            seed=int(seed),
            batch_size=int(batch_size),
            num_steps=int(steps) or None,
            privacy_against=privacy or None,
            judge=judge or None,
            dicom_study=str(Path(out) / "study.zip") if dicom else None,
        )
        return f"Started into `{out}`; Start again after a stop or a crash finishes the same set."

    def stop(out):
        return "No job is running." if jobs.stop(out, wait_s=0) else "Stopping after this batch."

    def poll(out):
        p = synthesize.read_job(out)
        rate = f", {p['images_per_s']:.2f} images/s" if p["images_per_s"] else ""
        eta = f", ETA {p['eta_s'] / 60:.0f} min" if p["eta_s"] and p["running"] else ""
        status = (
            f"**{p['status']}**{' (running)' if p['running'] else ''}: {p['done']} of {p['total']} items{rate}{eta}"
        )
        return status, p["summary"], p["latest"], "\n".join(p["log"])

    with gr.Tab("Synthesize"), gr.Row():
        with gr.Column():
            model_dir = gr.Textbox(label="Model folder (empty: the bundled demo cascade)")
            reports = gr.Textbox(label="Reports: a manifest (.csv) or a text file, one report per line")
            out = gr.Textbox(label="Output folder", value="runs/synthetic")
            with gr.Row():
                per_report = gr.Number(value=1, precision=0, minimum=1, label="Images per report")
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=LIMITS.max_seed, label="First seed")
                batch = gr.Number(value=4, precision=0, minimum=1, maximum=synthesize.MAX_BATCH, label="Batch")
                steps = gr.Number(value=0, precision=0, minimum=0, label="Steps (0: the model's)")
            privacy = gr.Textbox(label="Privacy screen: training manifest (optional)")
            judge = gr.Textbox(label="Quality filter: judge folder (optional; needs a manifest with labels)")
            dicom = gr.Checkbox(label="Also one DICOM study (study.zip in the output folder)")
            with gr.Row():
                start_button, stop_button = gr.Button("Start or finish", variant="primary"), gr.Button("Stop")
        with gr.Column():
            status = gr.Markdown("No job yet.")
            summary = gr.JSON(label="Summary (made, replaced and dropped, and why)")
            latest = gr.Gallery(label="Latest batch", columns=4, height=260, format="png")
            log = gr.Code(label="Log", lines=8)
    settings = [model_dir, reports, out, per_report, seed, batch, steps, privacy, judge, dicom]
    start_button.click(errors_as_notifications(start), settings, status, api_name="synthesize_start")
    stop_button.click(stop, out, status, api_name="synthesize_stop")
    outputs = [status, summary, latest, log]
    gr.Timer(2.0).tick(poll, out, outputs, show_progress="hidden", api_name="synthesize_poll")


def build_demo(model: AppModel) -> gr.Blocks:
    defaults = model.studio.config.sampling

    @errors_as_notifications
    def generate(
        report,
        negative,
        sampler,
        steps,
        guidance,
        seed,
        random_seed,
        count,
        upscale,
        private,
        screen_manifest,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        options = {
            "negative_report": negative,
            "sampler": sampler,
            "num_steps": int(steps),
            "guidance_scale": float(guidance),
            "upscale": bool(upscale),
            "callback": model.progress(progress, request),
        }
        if private:  # Packhäuser's privacy-enhancing sampling: images resembling a training image are replaced
            from cxr_studio.evaluation.privacy import generate_private

            first = int(seed) if not random_seed else int.from_bytes(os.urandom(6), "big")
            result, _ = generate_private(
                model.studio,
                report,
                screen=model.screen(screen_manifest, progress)[0],
                num_images=int(count),
                seed=first,
                **options,
            )
        else:
            result = model.studio.generate(
                report, seed=None if random_seed else int(seed), num_images=int(count), **options
            )
        files = []
        for i in range(len(result.images)):
            files.append(str(output_path(f"synthetic-seed{result.seeds[i]}")))
            save_png(files[-1], result.pixels[i], bit_depth=16, parameters=result.parameters_for(i), synthetic=True)
        captions = [
            f"SYNTHETIC · seed {s} · {result.parameters['sampler']} {result.parameters['num_steps']} steps · cfg {result.parameters['guidance_scale']}"
            for s in result.seeds
        ]
        return list(zip(files, captions)), files, result.seeds[0]

    def recall(files, evt: gr.SelectData):
        """A gallery image's settings back into the form."""
        p = read_png_parameters(files[evt.index])
        return (
            p["report"],
            p["negative_report"],
            p["sampler"],
            p["num_steps"],
            p["guidance_scale"],
            p["seed"],
            False,
            files[evt.index],
        )

    @errors_as_notifications
    def export_dicom(selected):
        if not selected:
            raise InputError("select an image in the gallery first.")
        path = output_path("synthetic", ".dcm")
        write_atomic(
            path,
            cxr_studio.export.synthetic_dicom(
                imaging.read_radiograph(selected).display, read_png_parameters(selected)
            ),
        )
        return str(path)

    @errors_as_notifications
    def export_study(paths):
        if not paths:
            raise InputError("generate images first.")
        return str(cxr_studio.export.study_from_pngs(paths, output_path("synthetic-study", ".zip")))

    @errors_as_notifications
    def inpaint(
        radiograph,
        editor,
        report,
        preset,
        strength,
        fill,
        grow_px,
        feather_px,
        steps,
        seed,
        jumps,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        if radiograph is None:
            raise InputError("upload a radiograph first (PNG, JPEG, TIFF or DICOM).")
        result = model.studio.inpaint(
            radiograph,
            editor_mask(editor),
            report=report,
            preset=preset,
            strength=float(strength),
            fill=fill,
            grow_px=int(grow_px),
            feather_px=int(feather_px),
            num_steps=int(steps),
            seed=int(seed),
            resample_jumps=int(jumps),
            callback=model.progress(progress, request),
        )
        png, dcm = output_path(f"edited-{result.bit_depth}bit"), output_path("edited", ".dcm")
        save_png(
            png,
            result.image if result.image.dtype in (np.uint8, np.uint16) else result.display,
            bit_depth=16,
            parameters=result.parameters,
        )
        write_atomic(
            dcm,
            cxr_studio.export.derived_dicom(
                result.image, result.bit_depth, result.parameters, source=radiograph.dicom
            ),
        )
        before, after = shown(radiograph.display, "before"), shown(result.display, "after")
        return (before, after), shown(np.clip(result.difference * 4, 0, 1), "difference"), [str(png), str(dcm)]

    @errors_as_notifications
    def outpaint(radiograph, left, right, top, bottom, report, seeds, request: gr.Request, progress=gr.Progress()):
        if radiograph is None:
            raise InputError("upload a radiograph first.")
        results = [
            model.studio.outpaint(
                radiograph,
                left=int(left),
                right=int(right),
                top=int(top),
                bottom=int(bottom),
                report=report,
                seed=s,
                callback=model.progress(progress, request),
            )
            for s in range(int(seeds))
        ]
        return [
            (shown(r.display, "outpainted"), f"seed {r.parameters['seed']} · edited, not anonymous") for r in results
        ]

    @errors_as_notifications
    def interpolate(
        mode,
        report_a,
        report_b,
        seed_a,
        seed_b,
        image_a,
        image_b,
        report,
        frames,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        start, end = {"report": (report_a, report_b), "seed": (int(seed_a), int(seed_b))}.get(mode, (image_a, image_b))
        if start is None or end is None:
            raise InputError("give both endpoints.")
        result = model.studio.interpolate(
            start,
            end,
            mode=mode,
            num_frames=int(frames),
            report=report,
            seed=int(seed_a),
            callback=model.progress(progress, request),
        )
        gif = output_path("interpolation", ".gif")
        write_atomic(gif, result.gif())
        return [(shown(p, f"frame{i}"), f"SYNTHETIC · frame {i}") for i, p in enumerate(result.pixels)], str(gif)

    def review(real, synthetic, level, width, invert):
        """Both images through the same window/level, at the same height on screen."""
        show = lambda r: (
            None
            if r is None
            else shown(
                imaging.window(imaging.fit_height(r.display, 512), level=level, width=width, invert=invert), "review"
            )
        )
        return show(real), show(synthetic)

    def screen_synthetic(synthetic, manifest, progress=gr.Progress()):
        from cxr_studio.evaluation.privacy import screen_pixels

        if synthetic is None:
            raise InputError("upload the synthetic radiograph first.")
        screen, _rows = model.screen(manifest, progress)
        match = screen_pixels(screen, synthetic.display[None])[0]
        verdict = (
            "**FLAGGED: too close to a training image** (do not share it as anonymous)"
            if match.flagged
            else "passes the screen"
        )
        text = (
            f"{verdict}\n\nscore {match.score:.4f} against threshold {screen.threshold:.4f} (the 99.9th percentile of "
            f"training-versus-training scores over {len(screen.calibration)} images); nearest: training row {match.nearest}"
        )
        return text, shown((screen.images[match.nearest] + 1) / 2, "nearest-training")

    def study_add(folder, real_files, synthetic_files):
        study = ReaderStudy(folder)
        try:
            count = study.add_cases(list(real_files or []), list(synthetic_files or []))
        finally:
            for path in [*(real_files or []), *(synthetic_files or [])]:
                forget_upload(path)  # the study keeps its own blinded copies
        return f"{count} cases in the study."

    def study_next(folder, reader):
        case = ReaderStudy(folder).next_case(reader)
        if case is None:
            return None, "Done: every case is answered. Thank you.", None
        return str(case.image_path), f"Case {case.position} of {case.total}", (case.case_id, time.time())

    def study_answer(folder, reader, current, confidence, answer):
        if current is None:
            raise InputError("start (or continue) the study first.")
        ReaderStudy(folder).record(reader, current[0], answer, int(confidence), time.time() - current[1])
        return study_next(folder, reader)

    def study_results(folder):
        study = ReaderStudy(folder)
        path = output_path("reader-study", ".csv")
        write_atomic(path, study.export_csv())
        return study.results(), str(path)

    def train_start(manifest, out, preset, ae, latent, sr, finetune, decoder, schedule, resume):
        from training import runs

        try:
            steps = {"ae": ae, "latent": latent, "ae_decoder": decoder, "sr": sr, "sr_finetune": finetune}
            runs.start_run(
                manifest=manifest,
                out=out,
                preset=preset,
                steps=steps,
                resume=resume,
                extra_args=["--lr-schedule", schedule],
            )
        except InputError as err:
            raise gr.Error(str(err)) from None
        return f"Started training into `{out}`."

    def train_stop(out):
        from training import runs

        # wait_s=0: SIGTERM and return at once; False means "signalled, still finishing its step"
        return (
            "No run is active."
            if runs.stop_run(out, wait_s=0)
            else "Stopping after this step (a checkpoint is saved)."
        )

    def train_poll(out):
        import pandas as pd

        from training import runs

        p = runs.read_progress(out)
        eta = f", ETA {p['eta_s'] / 60:.0f} min" if p.get("eta_s") else ""
        status = (
            f"**{p['stage'] or '—'}**: {p['status']}, step {p['step']}/{p['max_steps']}{eta}; stages {p['stages']}"
        )
        curve = pd.DataFrame(p["losses"], columns=["step", "loss"])
        return status, curve, "\n".join(p["log"]), p["latest_samples"]

    @errors_as_notifications
    def make_phantoms(folder, count, size):
        manifest = phantom.write_dataset(folder, n=int(count), size=int(size), seed=0, workers=2, quiet=True)
        return str(manifest)

    @errors_as_notifications
    def load_model(folder):
        model.studio = cxr_studio.CXRStudio.from_pretrained(folder) if folder else cxr_studio.load_default()
        # the sampler menu follows the model: only the samplers that converge for its schedule
        menu = gr.Dropdown(choices=list(model.studio.samplers), value=model.studio.config.sampling.sampler)
        return model_summary(), menu

    def read_evaluation(folder):
        page = Path(folder or "") / "index.html"
        if not page.is_file():
            raise InputError("no evaluation report there (index.html written by python -m cxr_studio.evaluate).")
        return page.read_text()

    def model_summary() -> str:
        s = model.studio
        sizes = {
            k: f"{sum(p.numel() for p in v.parameters()) / 1e6:.2f} M"
            for k, v in s.components().items()
            if k != "tokenizer"
        }
        card = cxr_studio.DEFAULT_MODEL / "MODEL_CARD.md"
        text = card.read_text() if s.model_id.startswith("demo@") and card.is_file() else ""
        text = "\n".join(
            line for line in text.splitlines() if not line.startswith("![")
        )  # relative image links do not resolve here
        return f"**Loaded:** `{s.model_id}` on `{s.device}` · {s.config.image_size} px -> {s.config.output_size} px\n\n**Components:** {sizes}\n\n{text}"

    def phantom_case(finding_names, side, severity, zone, device_names, seed):
        """Widget values -> (image, device-free image, report) of one phantom patient."""
        try:
            findings = [
                phantom.Finding(
                    n, side if n in phantom.SIDED else None, severity, zone if n in phantom.ZONED else None
                )
                for n in finding_names
            ]
            devices = [phantom.Device(n, side if n in phantom.SIDED_DEVICES else None) for n in device_names]
            case = phantom.render_case(int(seed), size=512, findings=findings, devices=devices)
        except InputError as err:
            raise gr.Error(str(err)) from None
        return shown(case.image, "phantom"), shown(case.clean, "phantom-clean"), case.report

    def compose(finding, side, severity, devices):
        """The structured helper: chosen finding and devices -> report text."""
        findings = (
            []
            if finding == "none"
            else [
                phantom.Finding(
                    finding,
                    side if finding in phantom.SIDED else None,
                    severity,
                    "lower" if finding in phantom.ZONED else None,
                )
            ]
        )
        return phantom.report_for(
            findings,
            [phantom.Device(d, side if d in phantom.SIDED_DEVICES else None) for d in devices],
        )

    with gr.Blocks(title="CXR Studio", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(
            f"# CXR Studio {__version__}\nModel `{model.studio.model_id}`. Generated images are **synthetic** and labelled as such; edited real images are still patient images."
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=2):
                    report = gr.Textbox(
                        label="Report",
                        lines=4,
                        value="FINDINGS: Large right pleural effusion. No pneumothorax.\nIMPRESSION: Large right pleural effusion.",
                    )
                    with gr.Accordion("Structured helper", open=False):
                        with gr.Row():
                            h_finding = gr.Dropdown(
                                ["none", *phantom.FINDINGS], value="pleural_effusion", label="Finding"
                            )
                            h_side = gr.Radio(list(phantom.SIDES), value="right", label="Side (patient's)")
                            h_severity = gr.Radio(list(phantom.SEVERITIES), value="large", label="Severity")
                        h_devices = gr.CheckboxGroup(list(phantom.DEVICES), label="Devices")
                        gr.Button("Write report").click(compose, [h_finding, h_side, h_severity, h_devices], report)
                    negative = gr.Textbox(label="Negative report (steer away from)", value="")
                    with gr.Row():
                        sampler = gr.Dropdown(list(model.studio.samplers), value=defaults.sampler, label="Sampler")
                        steps = gr.Slider(1, LIMITS.ui_max_steps, value=defaults.num_steps, step=1, label="Steps")
                        guidance = gr.Slider(
                            0, LIMITS.ui_max_guidance, value=defaults.guidance_scale, step=0.5, label="Guidance"
                        )
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                        random_seed = gr.Checkbox(value=True, label="Random seed")
                        count = gr.Slider(1, LIMITS.ui_max_images, value=1, step=1, label="Images")
                        upscale = gr.Checkbox(
                            value=defaults.upscale, label=f"Super-resolution to {model.studio.config.output_size} px"
                        )
                    with gr.Accordion("Privacy filter", open=False):
                        gr.Markdown(
                            "Screen every image against the training set and replace any that resembles a training image "
                            "(privacy-enhancing sampling, Packhäuser et al. 2023)."
                        )
                        with gr.Row():
                            private = gr.Checkbox(value=False, label="Screen and replace")
                            screen_manifest = gr.Textbox(label="Training manifest", value="data/phantom/manifest.csv")
                    with gr.Row():
                        run = gr.Button("Generate", variant="primary")
                        stop = gr.Button("Stop")
                with gr.Column(scale=3):
                    gallery = gr.Gallery(
                        label="SYNTHETIC images",
                        columns=2,
                        format="png",
                        height=640,
                        object_fit="contain",
                        elem_id="gallery",
                    )
                    files = gr.File(
                        label="PNG (16-bit, parameters in the file)", file_count="multiple", interactive=False
                    )
                    selected = gr.Textbox(visible=False)
                    with gr.Row():
                        to_dicom = gr.Button("Export selected as DICOM (Secondary Capture, synthetic)")
                        to_study = gr.Button("Export all as one DICOM study (zip)")
                        dicom_file = gr.File(label="DICOM", interactive=False)
            run.click(
                generate,
                [
                    report,
                    negative,
                    sampler,
                    steps,
                    guidance,
                    seed,
                    random_seed,
                    count,
                    upscale,
                    private,
                    screen_manifest,
                ],
                [gallery, files, seed],
                concurrency_id="model",
            )
            stop.click(model.request_stop, None, None, queue=False)
            gallery.select(recall, [files], [report, negative, sampler, steps, guidance, seed, random_seed, selected])
            to_dicom.click(export_dicom, selected, dicom_file)
            to_study.click(export_study, files, dicom_file)
        with gr.Tab("Inpaint"):
            radiograph = gr.State()
            with gr.Row():
                with gr.Column():
                    upload = gr.File(
                        label="Radiograph (PNG, JPEG, TIFF or DICOM)",
                        file_types=UPLOAD_TYPES,
                        type="filepath",
                        elem_id="inpaint-upload",
                    )
                    with gr.Row():
                        level = gr.Slider(0, 1, value=0.5, label="Level")
                        width = gr.Slider(0.05, 1, value=1.0, label="Width")
                        invert = gr.Checkbox(label="Invert")
                    editor = gr.ImageEditor(
                        type="numpy",
                        image_mode="RGBA",
                        format="png",
                        layers=False,
                        transforms=(),
                        fixed_canvas=False,
                        brush=gr.Brush(colors=[("#00ff66", 0.5)], color_mode="fixed", default_size=16),
                        eraser=gr.Eraser(default_size=16),
                        label="Paint what to regenerate",
                        height=560,
                        sources=(),
                        elem_id="inpaint-editor",
                    )
                    first = EDIT_PRESETS["remove device"]
                    i_report = gr.Textbox(label="Report for the region (optional)", placeholder=first.report)
                    with gr.Row():
                        preset = gr.Dropdown(list(EDIT_PRESETS), value="remove device", label="Preset")
                        i_strength = gr.Slider(0.05, 1, value=first.strength, label="Strength")
                        i_fill = gr.Radio(list(EDIT_FILLS), value=first.fill, label="Start from (inside the mask)")
                        grow_px = gr.Slider(0, LIMITS.ui_max_mask_px, value=first.grow_px, step=1, label="Grow (px)")
                        feather_px = gr.Slider(
                            0, LIMITS.ui_max_mask_px, value=first.feather_px, step=1, label="Feather (px)"
                        )
                    with gr.Row():
                        i_steps = gr.Slider(1, LIMITS.ui_max_steps, value=defaults.num_steps, step=1, label="Steps")
                        i_seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                        jumps = gr.Slider(0, LIMITS.ui_max_resample_jumps, value=0, step=1, label="RePaint resampling")
                    with gr.Row():
                        i_run = gr.Button("Inpaint", variant="primary")
                        i_stop = gr.Button("Stop")
                with gr.Column():
                    slider = gr.ImageSlider(
                        label="Before / after", type="numpy", format="png", elem_id="inpaint-slider"
                    )
                    difference = gr.Image(
                        label="Difference (x4)", format="png", interactive=False, elem_id="inpaint-difference"
                    )
                    i_files = gr.File(
                        label="Result in the original bit depth (PNG) and as DICOM (derived)",
                        file_count="multiple",
                        interactive=False,
                    )
            upload.change(errors_as_notifications(load_upload), [upload, level, width, invert], [radiograph, editor])
            for trigger in (level.release, width.release, invert.change):
                trigger(rewindow, [radiograph, level, width, invert], editor)
            preset.change(
                lambda p: (
                    EDIT_PRESETS[p].strength,
                    EDIT_PRESETS[p].fill,
                    EDIT_PRESETS[p].grow_px,
                    EDIT_PRESETS[p].feather_px,
                    gr.Textbox(placeholder=EDIT_PRESETS[p].report),
                ),
                preset,
                [i_strength, i_fill, grow_px, feather_px, i_report],
            )
            i_run.click(
                inpaint,
                [
                    radiograph,
                    editor,
                    i_report,
                    preset,
                    i_strength,
                    i_fill,
                    grow_px,
                    feather_px,
                    i_steps,
                    i_seed,
                    jumps,
                ],
                [slider, difference, i_files],
                concurrency_id="model",
            )
            i_stop.click(model.request_stop, None, None, queue=False)
        with gr.Tab("Outpaint"):
            o_state = gr.State()
            with gr.Row():
                with gr.Column():
                    o_upload = gr.File(
                        label="Radiograph", file_types=UPLOAD_TYPES, type="filepath", elem_id="outpaint-upload"
                    )
                    o_preview = gr.Image(label="Input", format="png", interactive=False)
                    with gr.Row():
                        o_left, o_right = (
                            gr.Slider(0, 512, value=0, step=8, label="Left"),
                            gr.Slider(0, 512, value=0, step=8, label="Right"),
                        )
                        o_top, o_bottom = (
                            gr.Slider(0, 512, value=64, step=8, label="Top"),
                            gr.Slider(0, 512, value=0, step=8, label="Bottom"),
                        )
                    o_report = gr.Textbox(label="Report (optional)")
                    o_seeds = gr.Slider(1, 4, value=2, step=1, label="Seeds")
                    o_run = gr.Button("Outpaint", variant="primary")
                o_gallery = gr.Gallery(
                    label="Edited (kept pixels exact)",
                    format="png",
                    columns=2,
                    object_fit="contain",
                    elem_id="outpaint-gallery",
                )
            o_upload.change(
                errors_as_notifications(load_upload),
                [o_upload, gr.State(0.5), gr.State(1.0), gr.State(False)],
                [o_state, o_preview],
            )
            o_run.click(
                outpaint,
                [o_state, o_left, o_right, o_top, o_bottom, o_report, o_seeds],
                o_gallery,
                concurrency_id="model",
            )
        with gr.Tab("Interpolate"):
            with gr.Row():
                with gr.Column():
                    mode = gr.Radio(list(INTERPOLATION_MODES), value=INTERPOLATION_MODES[0], label="Between")
                    report_a = gr.Textbox(label="Start report", value="Normal chest radiograph.")
                    report_b = gr.Textbox(label="End report", value="Large left pleural effusion.")
                    with gr.Row():
                        seed_a, seed_b = (
                            gr.Number(value=0, precision=0, label="Seed (start)"),
                            gr.Number(value=1, precision=0, label="Seed (end)"),
                        )
                    with gr.Row():
                        image_a = gr.File(label="Start image", file_types=UPLOAD_TYPES, type="filepath")
                        image_b = gr.File(label="End image", file_types=UPLOAD_TYPES, type="filepath")
                    start_image, end_image = gr.State(), gr.State()
                    image_a.change(
                        errors_as_notifications(read_upload), image_a, start_image, api_name="interpolate_start_image"
                    )
                    image_b.change(
                        errors_as_notifications(read_upload), image_b, end_image, api_name="interpolate_end_image"
                    )
                    f_report = gr.Textbox(label="Report (seed and image modes)")
                    frames = gr.Slider(2, LIMITS.ui_max_frames, value=8, step=1, label="Frames")
                    f_run = gr.Button("Interpolate", variant="primary")
                with gr.Column():
                    strip = gr.Gallery(
                        label="Frames (SYNTHETIC)", columns=4, format="png", elem_id="interpolate-frames"
                    )
                    gif = gr.File(label="Animated GIF", interactive=False)
            f_run.click(
                interpolate,
                [mode, report_a, report_b, seed_a, seed_b, start_image, end_image, f_report, frames],
                [strip, gif],
                concurrency_id="model",
            )
        with gr.Tab("Review"):
            gr.Markdown("Real and synthetic side by side through the same window/level.")
            real_state, synth_state = gr.State(), gr.State()
            with gr.Row():
                real_upload = gr.File(
                    label="Real radiograph", file_types=UPLOAD_TYPES, type="filepath", elem_id="review-real-upload"
                )
                synth_upload = gr.File(
                    label="Synthetic radiograph",
                    file_types=UPLOAD_TYPES,
                    type="filepath",
                    elem_id="review-synthetic-upload",
                )
            with gr.Row():
                r_level, r_width, r_invert = (
                    gr.Slider(0, 1, value=0.5, label="Level"),
                    gr.Slider(0.05, 1, value=1.0, label="Width"),
                    gr.Checkbox(label="Invert"),
                )
            with gr.Row():
                real_view = gr.Image(label="Real", format="png", interactive=False, elem_id="review-real")
                synth_view = gr.Image(label="SYNTHETIC", format="png", interactive=False, elem_id="review-synthetic")
            read = errors_as_notifications(read_upload)
            real_upload.change(read, real_upload, real_state).then(
                review, [real_state, synth_state, r_level, r_width, r_invert], [real_view, synth_view]
            )
            synth_upload.change(read, synth_upload, synth_state, api_name="review_synthetic_upload").then(
                review, [real_state, synth_state, r_level, r_width, r_invert], [real_view, synth_view]
            )
            for control in (r_level, r_width, r_invert):
                control.change(
                    review,
                    [real_state, synth_state, r_level, r_width, r_invert],
                    [real_view, synth_view],
                    show_progress="hidden",
                    trigger_mode="always_last",
                )
            with gr.Accordion("Privacy screen: does the synthetic image copy a training image?", open=False):
                gr.Markdown(
                    "Compares the synthetic image with every image of a training split (registered correlation of fine "
                    "structure; threshold calibrated on training-versus-training pairs). Edited real images are patient "
                    "images whatever the screen says."
                )
                with gr.Row():
                    p_manifest = gr.Textbox(label="Training manifest", value="data/phantom/manifest.csv")
                    p_run = gr.Button("Screen the synthetic image")
                with gr.Row():
                    p_result = gr.Markdown()
                    p_nearest = gr.Image(
                        label="Nearest training image", format="png", interactive=False, elem_id="review-nearest"
                    )
                p_run.click(
                    errors_as_notifications(screen_synthetic),
                    [synth_state, p_manifest],
                    [p_result, p_nearest],
                    concurrency_id="model",
                )
            with gr.Accordion("Blinded reader study", open=False):
                gr.Markdown(
                    "Each reader sees their own randomised, balanced sequence; images are prepared identically and answers are saved at once."
                )
                study_folder = gr.Textbox(value="runs/reader-study", label="Study folder")
                with gr.Row():
                    real_files = gr.File(
                        label="Real images", file_count="multiple", file_types=UPLOAD_TYPES, type="filepath"
                    )
                    synthetic_files = gr.File(
                        label="Synthetic images", file_count="multiple", file_types=UPLOAD_TYPES, type="filepath"
                    )
                study_status = gr.Markdown()
                gr.Button("Add cases").click(
                    errors_as_notifications(study_add), [study_folder, real_files, synthetic_files], study_status
                )
                reader = gr.Textbox(label="Reader (a pseudonym)")
                current = gr.State()
                case_image = gr.Image(label="Real or synthetic?", format="png", interactive=False, height=560)
                with gr.Row():
                    confidence = gr.Slider(1, 5, value=3, step=1, label="Confidence")
                    start_study = gr.Button("Start / continue")
                    said_real, said_synthetic = gr.Button("Real"), gr.Button("Synthetic")
                start_study.click(
                    errors_as_notifications(study_next), [study_folder, reader], [case_image, study_status, current]
                )
                for button, answer in ((said_real, "real"), (said_synthetic, "synthetic")):
                    button.click(
                        errors_as_notifications(lambda f, r, c, k, a=answer: study_answer(f, r, c, k, a)),
                        [study_folder, reader, current, confidence],
                        [case_image, study_status, current],
                        api_name=f"study_answer_{answer}",
                    )
                with gr.Row():
                    results_button = gr.Button("Results")
                    results_json, results_csv = (
                        gr.JSON(label="Accuracy, binomial test, sensitivity, specificity, ROC AUC"),
                        gr.File(label="Answers (CSV)", interactive=False),
                    )
                results_button.click(errors_as_notifications(study_results), study_folder, [results_json, results_csv])
        synthesize_tab()
        with gr.Tab("Train"):
            with gr.Row():
                with gr.Column():
                    manifest = gr.Textbox(label="Manifest", value="data/phantom/manifest.csv")
                    with gr.Row():
                        p_folder, p_count, p_size = (
                            gr.Textbox(value="data/phantom", label="Phantom folder"),
                            gr.Number(value=1000, precision=0, label="Images"),
                            gr.Number(value=512, precision=0, label="Size"),
                        )
                    gr.Button("Make a phantom set").click(make_phantoms, [p_folder, p_count, p_size], manifest)
                    out = gr.Textbox(label="Model folder", value="runs/my-cascade/model")
                    t_preset = gr.Dropdown(list(PRESETS), value="demo", label="Preset")
                    with gr.Row():
                        ae, latent = (
                            gr.Number(value=CASCADE_STEPS["ae"], precision=0, label="Autoencoder steps"),
                            gr.Number(value=CASCADE_STEPS["latent"], precision=0, label="Latent steps"),
                        )
                        sr, finetune = (
                            gr.Number(value=CASCADE_STEPS["sr"], precision=0, label="SR steps"),
                            gr.Number(value=CASCADE_STEPS["sr_finetune"], precision=0, label="SR fine-tune steps"),
                        )
                    with gr.Row():
                        decoder = gr.Number(
                            value=CASCADE_STEPS["ae_decoder"],
                            precision=0,
                            label="Decoder fine-tune steps (encoder frozen)",
                        )
                        schedule = gr.Dropdown(
                            list(LR_SCHEDULES), value=LR_SCHEDULES[0], label="Learning-rate schedule"
                        )
                    with gr.Row():
                        t_start, t_resume, t_stop = (
                            gr.Button("Start", variant="primary"),
                            gr.Button("Resume"),
                            gr.Button("Stop"),
                        )
                    t_load = gr.Button("Load the trained cascade into the studio")
                with gr.Column():
                    t_status = gr.Markdown("No run yet.")
                    curve = gr.LinePlot(x="step", y="loss", label="Training loss")
                    samples = gr.Image(label="Latest sample grid", format="png", interactive=False)
                    log = gr.Code(label="Log", lines=12)
            settings = [manifest, out, t_preset, ae, latent, sr, finetune, decoder, schedule]
            t_start.click(lambda *a: train_start(*a, False), settings, t_status)
            t_resume.click(lambda *a: train_start(*a, True), settings, t_status)
            t_stop.click(train_stop, out, t_status)
            gr.Timer(2.0).tick(train_poll, out, [t_status, curve, log, samples], show_progress="hidden")
        with gr.Tab("Model"):
            summary = gr.Markdown(model_summary())
            with gr.Accordion("Evaluation report", open=False):
                gr.Markdown(
                    "Make one with `python -m cxr_studio.evaluate --model DIR --manifest M --out REPORT_DIR` "
                    "(reconstruction, realism, faithfulness, utility, device removal, privacy), then show it here."
                )
                with gr.Row():
                    report_folder = gr.Textbox(label="Report folder", value="runs/eval/demo")
                    show_report = gr.Button("Show")
                report_html = gr.HTML()
                show_report.click(errors_as_notifications(read_evaluation), report_folder, report_html)
            folder = gr.Textbox(label="Model folder (empty: the bundled demo cascade)")
            gr.Button("Load").click(load_model, folder, [summary, sampler])
            t_load.click(load_model, out, [summary, sampler])
        with gr.Tab("Phantom"):
            with gr.Row():
                with gr.Column():
                    findings = gr.CheckboxGroup(list(phantom.FINDINGS), label="Findings")
                    side = gr.Radio(list(phantom.SIDES), value="right", label="Side (patient's)")
                    severity = gr.Radio(list(phantom.SEVERITIES), value="moderate", label="Severity")
                    zone = gr.Radio(list(phantom.ZONES), value="lower", label="Zone")
                    devices = gr.CheckboxGroup(list(phantom.DEVICES), label="Support devices")
                    p_seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                    button = gr.Button("Render phantom", variant="primary")
                with gr.Column():
                    image = gr.Image(
                        label="SYNTHETIC phantom - not a patient image",
                        format="png",
                        type="pil",
                        interactive=False,
                        elem_id="phantom-image",
                    )
                    clean = gr.Image(
                        label="Same patient without devices (SYNTHETIC)", format="png", type="pil", interactive=False
                    )
                    p_report = gr.Textbox(label="Report", lines=6)
            button.click(
                phantom_case,
                [findings, side, severity, zone, devices, p_seed],
                [image, clean, p_report],
                api_name="phantom_case",
            )
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CXR Studio: a local chest radiograph studio")
    parser.add_argument("--model", help="model folder (default: the bundled demo cascade)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument("--auth", help="USER:PASS required to open the page")
    parser.add_argument("--device", default=None, help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    if args.auth and len(auth) != 2:
        print("error: --auth must be USER:PASS", file=sys.stderr)
        return 2
    from cxr_studio.environment import environment_problems

    if problems := environment_problems():
        print("error: this environment is not safe to run CXR Studio:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    try:
        studio = (
            cxr_studio.CXRStudio.from_pretrained(args.model, device=args.device)
            if args.model
            else cxr_studio.load_default(device=args.device)
        )
    except InputError as err:
        print(f"error: cannot load the model: {err}", file=sys.stderr)
        return 2
    print(f"CXR Studio {__version__}: model {studio.model_id} on {studio.device}")
    build_demo(AppModel(studio)).queue(**QUEUE).launch(**launch_settings(args.host, args.port, auth))
    return 0


# A radiograph is always shown whole: Gradio sizes a lone gallery image to the column's width, taller than the
# gallery box, so its lower part would sit below the fold; capping the tile's height lets object-fit contain it.
CSS = "#gallery .thumbnail-lg { max-height: 600px; }"


def launch_settings(host: str, port: int, auth: tuple[str, str] | None) -> dict:
    """Local and private: no share link, no browser run history, no monitoring page, an upload limit."""
    return {
        "server_name": host,
        "server_port": port,
        "share": False,
        "auth": auth,
        "max_file_size": MAX_UPLOAD,
        "run_history": False,
        "enable_monitoring": False,
        "strict_cors": True,
        "mcp_server": False,
        "ssr_mode": False,
        "pwa": False,
        "footer_links": [],
        "css": CSS,
    }


if __name__ == "__main__":
    raise SystemExit(main())
