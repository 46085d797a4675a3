"""CXR Studio front-end: ``python app.py [--model DIR] [--port N] [--host 127.0.0.1] [--auth USER:PASS]``.

Widgets and wiring only: what each button does is a method of :class:`cxr_studio.app_model.AppModel` (plain
values in and out, tested without a server); defaults and ranges come from the library. Every image served is
PNG (lossless), and every generated image is labelled synthetic.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile

# Offline and private by design: set before gradio is imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="cxr-studio-"))  # private, cleaned by delete_cache

import gradio as gr
import numpy as np

from cxr_studio import InputError, __version__, jobs, synthesize
from cxr_studio.app_model import AppModel
from cxr_studio.config import EDIT_FILLS, EDIT_PRESETS, INTERPOLATION_MODES, PRESETS
from cxr_studio.data import phantom
from cxr_studio.diffusion.sampling import GenerationCancelled
from cxr_studio.limits import LIMITS
from cxr_studio.pipeline.studio import DEFAULT_MODEL, load_model
from training import runs
from training.config import CASCADE_STEPS, LR_SCHEDULES

__all__ = ["AppModel", "build_demo", "editor_mask", "launch_settings", "main"]
MAX_UPLOAD = "200mb"
# One model call at a time (CPU or one GPU); at most 16 waiting, beyond that gradio answers "queue is full"
QUEUE = {"max_size": 16, "default_concurrency_limit": 1}
UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom"]
PHANTOM_MANIFEST = "data/phantom/manifest.csv"
# A radiograph is always shown whole: Gradio sizes a lone gallery image to the column's width, taller than the
# gallery box, so its lower part would sit below the fold; capping the tile's height lets object-fit contain it.
CSS = "#gallery .thumbnail-lg { max-height: 600px; }"


def notify(handler):
    """Library errors become a notification with the library's message; no traceback reaches the page."""

    @functools.wraps(handler)  # keeps the signature, so gradio still injects gr.Request and gr.Progress
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except InputError as err:
            raise gr.Error(str(err)) from None
        except GenerationCancelled as err:
            raise gr.Error(f"Stopped: {err}.", title="Stopped") from None

    return wrapped


def bar(progress: gr.Progress):
    return lambda step, total, what: progress((step, total), desc=what, unit="steps")


def session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


EDIT_BRUSH, KEEP_BRUSH = "#00ff66", "#3399ff"  # green: regenerate; blue: keep (must not change)


def _painted(value: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Every stroke layer's pixels: (alpha > 0, blue > green) per pixel, the latter marking the keep brush."""
    layers = np.stack([np.asarray(layer) for layer in value["layers"]]).astype(np.int16)
    painted = layers[..., 3] > 0
    return painted.any(axis=0), (painted & (layers[..., 2] > layers[..., 1])).any(axis=0)


def editor_mask(value: dict | None) -> np.ndarray:
    """The region painted with the green brush in a gr.ImageEditor value: every pixel a green stroke touched
    (alpha > 0). The brush is see-through (opacity 0.5), so painted alpha is about 127: a threshold at half would
    drop the whole stroke. Returns a boolean mask (True = regenerate)."""
    if not value or not value.get("layers"):
        raise InputError("paint the region to regenerate first (the green brush marks it; white = regenerate).")
    painted, keep = _painted(value)
    return painted & ~keep


def editor_keep_mask(value: dict | None) -> np.ndarray | None:
    """The region painted with the blue keep brush (True = must not change), or None when there is none."""
    if not value or not value.get("layers"):
        return None
    keep = _painted(value)[1]
    return keep if keep.any() else None


def stopper(model: AppModel):
    """Stop, for this browser session's run only (gradio hands over the request by its annotation)."""

    def stop(request: gr.Request) -> None:
        model.request_stop(session(request))

    return stop


def upload_reader(model: AppModel):
    def read(path):
        radiograph, warning = model.read_upload(path)
        if warning:
            gr.Warning(warning)
        return radiograph

    return notify(read)


def upload_box(label: str, elem_id: str | None = None, *, multiple: bool = False) -> gr.File:
    """A radiograph upload (PNG, JPEG, TIFF or DICOM) handed over as a file path."""
    count = "multiple" if multiple else "single"
    return gr.File(label=label, file_types=UPLOAD_TYPES, type="filepath", elem_id=elem_id, file_count=count)


def picture(label: str, **options) -> gr.Image:
    """An output image, served as PNG (lossless)."""
    return gr.Image(label=label, format="png", interactive=False, **options)


def window_controls() -> list:
    """Level, width (display [0, 1]) and invert: the radiologist's window."""
    level, width = gr.Slider(0, 1, value=0.5, label="Level"), gr.Slider(0.05, 1, value=1, label="Width")
    return [level, width, gr.Checkbox(label="Invert")]


def generate_tab(model: AppModel) -> list:
    """The Generate tab; returns the widgets that follow the loaded model: [sampler, steps, guidance, upscale]."""
    d = model.studio.sampling

    @notify
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
        manifest,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        return model.generate(
            report,
            negative=negative,
            sampler=sampler,
            steps=steps,
            guidance=guidance,
            seed=None if random_seed else int(seed),
            count=count,
            upscale=upscale,
            screen_manifest=manifest if private else None,
            session=session(request),
            progress=bar(progress),
        )

    def recall(files, evt: gr.SelectData):
        p = model.recall(files[evt.index])
        return *p.values(), False, files[evt.index]

    with gr.Tab("Generate"), gr.Row():
        with gr.Column(scale=2):
            value = (
                "FINDINGS: Large right pleural effusion. No pneumothorax.\nIMPRESSION: Large right pleural effusion."
            )
            report = gr.Textbox(label="Report", lines=4, value=value)
            with gr.Accordion("Structured helper", open=False):
                with gr.Row():
                    finding = gr.Dropdown(["none", *phantom.FINDINGS], value="pleural_effusion", label="Finding")
                    side = gr.Radio(list(phantom.SIDES), value="right", label="Side (patient's)")
                    severity = gr.Radio(list(phantom.SEVERITIES), value="large", label="Severity")
                devices = gr.CheckboxGroup(list(phantom.DEVICES), label="Devices")
                gr.Button("Write report").click(model.compose, [finding, side, severity, devices], report)
            negative = gr.Textbox(label="Negative report (steer away from)", value="")
            with gr.Row():
                sampler = gr.Dropdown(list(model.studio.samplers), value=d.sampler, label="Sampler")
                steps = gr.Slider(1, LIMITS.ui_max_steps, value=d.num_steps, step=1, label="Steps")
                guidance = gr.Slider(0, LIMITS.ui_max_guidance, value=d.guidance_scale, step=0.5, label="Guidance")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                random_seed = gr.Checkbox(value=True, label="Random seed")
                count = gr.Slider(1, LIMITS.ui_max_images, value=1, step=1, label="Images")
                upscale = gr.Checkbox(
                    value=d.upscale and model.studio.super_resolution is not None,
                    interactive=model.studio.super_resolution is not None,
                    label=f"Super-resolution to {model.studio.output_size} px",
                )
            with gr.Accordion("Adapters (LoRA from python -m training.finetune or the Train tab)", open=False):
                adapters = gr.Markdown(model.adapter_listing())
                with gr.Row():
                    adapter_folder = gr.Textbox(label="Adapter folder", scale=3)
                    strength = gr.Slider(-2, 2, value=1.0, step=0.05, label="Weight")
                with gr.Row():
                    loaded = gr.Dropdown([], label="Loaded adapter")
                    load_adapter, set_weight = gr.Button("Load"), gr.Button("Set weight")
                    unload = gr.Button("Unload")
            with gr.Accordion("Privacy filter", open=False):
                gr.Markdown(
                    "Screen every image against the training set and replace any that resembles a training "
                    "image (privacy-enhancing sampling, Packhäuser et al. 2023)."
                )
                with gr.Row():
                    private = gr.Checkbox(value=False, label="Screen and replace")
                    manifest = gr.Textbox(label="Training manifest", value=PHANTOM_MANIFEST)
            with gr.Row():
                run, stop = gr.Button("Generate", variant="primary"), gr.Button("Stop")
        with gr.Column(scale=3):
            gallery = gr.Gallery(
                label="SYNTHETIC images", columns=2, format="png", height=640, object_fit="contain", elem_id="gallery"
            )
            files = gr.File(label="PNG (16-bit, parameters in the file)", file_count="multiple", interactive=False)
            selected = gr.Textbox(visible=False)
            with gr.Row():
                to_dicom = gr.Button("Export selected as DICOM (Secondary Capture, synthetic)")
                to_study = gr.Button("Export all as one DICOM study (zip)")
                dicom = gr.File(label="DICOM", interactive=False)
    inputs = [report, negative, sampler, steps, guidance, seed, random_seed, count, upscale, private, manifest]
    run.click(generate, inputs, [gallery, files, seed], concurrency_id="model")
    stop.click(stopper(model), None, None, queue=False)
    gallery.select(recall, [files], [report, negative, sampler, steps, guidance, seed, random_seed, selected])
    to_dicom.click(notify(model.export_dicom), selected, dicom)
    to_study.click(notify(model.export_study), files, dicom)

    def names(listing, loaded):
        return listing, gr.Dropdown(choices=loaded, value=loaded[-1] if loaded else None)

    load_adapter.click(
        notify(lambda f, w: names(*model.load_adapter(f, w))), [adapter_folder, strength], [adapters, loaded]
    )
    set_weight.click(notify(model.set_adapter_weight), [loaded, strength], adapters)
    unload.click(notify(lambda n: names(*model.unload_adapter(n))), loaded, [adapters, loaded])
    return [sampler, steps, guidance, upscale]


def inpaint_tab(model: AppModel) -> None:
    first = EDIT_PRESETS["remove device"]

    @notify
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
        return model.inpaint(
            radiograph,
            editor_mask(editor),
            keep_mask=editor_keep_mask(editor),
            report=report,
            preset=preset,
            strength=float(strength),
            fill=fill,
            grow_px=int(grow_px),
            feather_px=int(feather_px),
            num_steps=int(steps),
            seed=int(seed),
            resample_jumps=int(jumps),
            session=session(request),
            progress=bar(progress),
        )

    def load_upload(path, level, width, invert):
        radiograph = upload_reader(model)(path)
        return radiograph, model.windowed(radiograph, level, width, invert)

    def preset_values(name):
        p = EDIT_PRESETS[name]
        return p.strength, p.fill, p.grow_px, p.feather_px, gr.Textbox(placeholder=p.report)

    with gr.Tab("Inpaint"):
        radiograph = gr.State()
        with gr.Row():
            with gr.Column():
                upload = upload_box("Radiograph (PNG, JPEG, TIFF or DICOM)", "inpaint-upload")
                with gr.Row():
                    level, width, invert = window_controls()
                brush = gr.Brush(colors=[(EDIT_BRUSH, 0.5), (KEEP_BRUSH, 0.5)], color_mode="fixed", default_size=16)
                editor = gr.ImageEditor(
                    type="numpy",
                    image_mode="RGBA",
                    format="png",
                    layers=False,
                    transforms=(),
                    fixed_canvas=False,
                    brush=brush,
                    eraser=gr.Eraser(default_size=16),
                    label="Paint what to regenerate (green) and what must not change (blue: keep)",
                    height=560,
                    sources=(),
                    elem_id="inpaint-editor",
                )
                report = gr.Textbox(label="Report for the region (optional)", placeholder=first.report)
                with gr.Row():
                    preset = gr.Dropdown(list(EDIT_PRESETS), value="remove device", label="Preset")
                    strength = gr.Slider(0.05, 1, value=first.strength, label="Strength")
                    fill = gr.Radio(list(EDIT_FILLS), value=first.fill, label="Start from (inside the mask)")
                    grow = gr.Slider(0, LIMITS.ui_max_mask_px, value=first.grow_px, step=1, label="Grow (px)")
                    feather = gr.Slider(0, LIMITS.ui_max_mask_px, value=first.feather_px, step=1, label="Feather (px)")
                with gr.Row():
                    default_steps = model.studio.sampling.num_steps
                    steps = gr.Slider(1, LIMITS.ui_max_steps, value=default_steps, step=1, label="Steps")
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                    jumps = gr.Slider(0, LIMITS.ui_max_resample_jumps, value=0, step=1, label="RePaint resampling")
                with gr.Row():
                    run, stop = gr.Button("Inpaint", variant="primary"), gr.Button("Stop")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", type="numpy", format="png", elem_id="inpaint-slider")
                difference = gr.Image(
                    label="Difference (x4)", format="png", interactive=False, elem_id="inpaint-difference"
                )
                files = gr.File(
                    label="Result in the original bit depth (PNG) and as DICOM (derived)",
                    file_count="multiple",
                    interactive=False,
                )
    upload.change(load_upload, [upload, level, width, invert], [radiograph, editor])
    for trigger in (level.release, width.release, invert.change):
        trigger(model.windowed, [radiograph, level, width, invert], editor)
    preset.change(preset_values, preset, [strength, fill, grow, feather, report])
    inputs = [radiograph, editor, report, preset, strength, fill, grow, feather, steps, seed, jumps]
    run.click(inpaint, inputs, [slider, difference, files], concurrency_id="model")
    stop.click(stopper(model), None, None, queue=False)


def outpaint_tab(model: AppModel) -> None:
    @notify
    def outpaint(radiograph, left, right, top, bottom, report, seeds, request: gr.Request, progress=gr.Progress()):
        return model.outpaint(
            radiograph,
            seeds=seeds,
            left=int(left),
            right=int(right),
            top=int(top),
            bottom=int(bottom),
            report=report,
            session=session(request),
            progress=bar(progress),
        )

    with gr.Tab("Outpaint"), gr.Row():
        with gr.Column():
            upload, preview, state = upload_box("Radiograph", "outpaint-upload"), picture("Input"), gr.State()
            with gr.Row():
                margins = [
                    gr.Slider(0, 512, value=v, step=8, label=n)
                    for n, v in zip(("Left", "Right", "Top", "Bottom"), (0, 0, 64, 0))
                ]
            report, seeds = gr.Textbox(label="Report (optional)"), gr.Slider(1, 4, value=2, step=1, label="Seeds")
            run = gr.Button("Outpaint", variant="primary")
        gallery = gr.Gallery(
            label="Edited (kept pixels exact)",
            format="png",
            columns=2,
            object_fit="contain",
            elem_id="outpaint-gallery",
        )
    upload.change(
        lambda path: (r := upload_reader(model)(path), model.windowed(r, 0.5, 1.0, False)), upload, [state, preview]
    )
    run.click(outpaint, [state, *margins, report, seeds], gallery, concurrency_id="model")


def interpolate_tab(model: AppModel) -> None:
    @notify
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
        return model.interpolate(
            start,
            end,
            mode=mode,
            frames=frames,
            report=report,
            seed=int(seed_a),
            session=session(request),
            progress=bar(progress),
        )

    with gr.Tab("Interpolate"), gr.Row():
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
                image_a, image_b = upload_box("Start image"), upload_box("End image")
            start, end = gr.State(), gr.State()
            report = gr.Textbox(label="Report (seed and image modes)")
            frames = gr.Slider(2, LIMITS.ui_max_frames, value=8, step=1, label="Frames")
            run = gr.Button("Interpolate", variant="primary")
        with gr.Column():
            strip = gr.Gallery(label="Frames (SYNTHETIC)", columns=4, format="png", elem_id="interpolate-frames")
            gif = gr.File(label="Animated GIF", interactive=False)
    image_a.change(upload_reader(model), image_a, start, api_name="interpolate_start_image")
    image_b.change(upload_reader(model), image_b, end, api_name="interpolate_end_image")
    inputs = [mode, report_a, report_b, seed_a, seed_b, start, end, report, frames]
    run.click(interpolate, inputs, [strip, gif], concurrency_id="model")


def review_tab(model: AppModel) -> None:
    def screen_synthetic(synthetic, manifest, progress=gr.Progress()):
        return model.screen_synthetic(synthetic, manifest, bar(progress))

    with gr.Tab("Review"):
        gr.Markdown("Real and synthetic side by side through the same window/level.")
        real, synthetic = gr.State(), gr.State()
        with gr.Row():
            real_upload = upload_box("Real radiograph", "review-real-upload")
            synthetic_upload = upload_box("Synthetic radiograph", "review-synthetic-upload")
        with gr.Row():
            window = window_controls()
        with gr.Row():
            views = [picture("Real", elem_id="review-real"), picture("SYNTHETIC", elem_id="review-synthetic")]
        with gr.Accordion("Privacy screen: does the synthetic image copy a training image?", open=False):
            gr.Markdown(
                "Compares the synthetic image with every image of a training split (registered correlation of "
                "fine structure; threshold calibrated on training-versus-training pairs). Edited real images "
                "are patient images whatever the screen says."
            )
            with gr.Row():
                manifest, check = (
                    gr.Textbox(label="Training manifest", value=PHANTOM_MANIFEST),
                    gr.Button("Screen the synthetic image"),
                )
            with gr.Row():
                verdict = gr.Markdown()
                nearest = picture("Nearest training image", elem_id="review-nearest")
        with gr.Accordion("Blinded reader study", open=False):
            reader_study(model)
    shown = [real, synthetic, *window]
    real_upload.change(upload_reader(model), real_upload, real).then(model.review, shown, views)
    synthetic_upload.change(
        upload_reader(model), synthetic_upload, synthetic, api_name="review_synthetic_upload"
    ).then(model.review, shown, views)
    for control in window:
        control.change(model.review, shown, views, show_progress="hidden", trigger_mode="always_last")
    check.click(notify(screen_synthetic), [synthetic, manifest], [verdict, nearest], concurrency_id="model")


def reader_study(model: AppModel) -> None:
    gr.Markdown(
        "Each reader sees their own randomised, balanced sequence; images are prepared identically and "
        "answers are saved at once."
    )
    folder = gr.Textbox(value="runs/reader-study", label="Study folder")
    with gr.Row():
        real, synthetic = upload_box("Real images", multiple=True), upload_box("Synthetic images", multiple=True)
    status = gr.Markdown()
    gr.Button("Add cases").click(notify(model.study_add), [folder, real, synthetic], status, api_name="study_add")
    reader, current = gr.Textbox(label="Reader (a pseudonym)"), gr.State()
    case = picture("Real or synthetic?", height=560)
    with gr.Row():
        confidence = gr.Slider(1, 5, value=3, step=1, label="Confidence")
        begin, said_real, said_synthetic = gr.Button("Start / continue"), gr.Button("Real"), gr.Button("Synthetic")
    begin.click(notify(model.study_next), [folder, reader], [case, status, current], api_name="study_next")
    for button, answer in ((said_real, "real"), (said_synthetic, "synthetic")):
        record = notify(lambda f, r, c, k, a=answer: model.study_answer(f, r, c, k, a))
        button.click(
            record, [folder, reader, current, confidence], [case, status, current], api_name=f"study_answer_{answer}"
        )
    with gr.Row():
        results = gr.Button("Results")
        scores, answers = (
            gr.JSON(label="Accuracy, binomial test, sensitivity, specificity, ROC AUC"),
            gr.File(label="Answers (CSV)", interactive=False),
        )
    results.click(notify(model.study_results), folder, [scores, answers], api_name="study_results")


def synthesize_tab() -> None:
    """A whole synthetic dataset as a background job: the same code as ``python -m cxr_studio.synthesize``."""

    def start(model_dir, reports, out, per_report, seed, batch, steps, privacy, judge, dicom):
        synthesize.start_job(
            model=model_dir or DEFAULT_MODEL,
            reports=reports,
            out=out,
            per_report=int(per_report),
            seed=int(seed),
            batch_size=int(batch),
            num_steps=int(steps) or None,
            privacy_against=privacy or None,
            judge=judge or None,
            dicom_study=f"{out}/study.zip" if dicom else None,
        )
        return f"Started into `{out}`; Start again after a stop or a crash finishes the same set."

    def poll(out):
        p = synthesize.read_job(out)
        rate = f", {p['images_per_s']:.2f} images/s" if p["images_per_s"] else ""
        eta = f", ETA {p['eta_s'] / 60:.0f} min" if p["eta_s"] and p["running"] else ""
        running = " (running)" if p["running"] else ""
        return (
            f"**{p['status']}**{running}: {p['done']} of {p['total']} items{rate}{eta}",
            p["summary"],
            p["latest"],
            "\n".join(p["log"]),
        )

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
                run, stop = gr.Button("Start or finish", variant="primary"), gr.Button("Stop")
        with gr.Column():
            status, summary = (
                gr.Markdown("No job yet."),
                gr.JSON(label="Summary (made, replaced and dropped, and why)"),
            )
            latest = gr.Gallery(label="Latest batch", columns=4, height=260, format="png")
            log = gr.Code(label="Log", lines=8)
    settings = [model_dir, reports, out, per_report, seed, batch, steps, privacy, judge, dicom]
    run.click(notify(start), settings, status, api_name="synthesize_start")
    stop.click(
        lambda o: "No job is running." if jobs.stop(o, wait_s=0) else "Stopping after this batch.",
        out,
        status,
        api_name="synthesize_stop",
    )
    gr.Timer(2.0).tick(poll, out, [status, summary, latest, log], show_progress="hidden", api_name="synthesize_poll")


def train_tab(model: AppModel) -> gr.Textbox:
    def start(manifest, out, preset, ae, latent, sr, finetune, decoder, schedule, resume):
        steps = {"ae": ae, "latent": latent, "ae_decoder": decoder, "sr": sr, "sr_finetune": finetune}
        runs.start_run(
            manifest=manifest,
            out=out,
            preset=preset,
            steps=steps,
            resume=resume,
            extra_args=["--lr-schedule", schedule],
        )
        return f"Started training into `{out}`."

    def adapt_run(manifest, out, base, method, rank, max_steps, prior):
        runs.start_finetune(
            manifest=manifest, out=out, model=base, method=method, rank=rank, max_steps=max_steps, prior_report=prior
        )
        return f"Started adapting `{base or 'the bundled demo'}` into `{out}`."

    def poll(out):
        import pandas as pd

        p = runs.read_progress(out)
        eta = f", ETA {p['eta_s'] / 60:.0f} min" if p.get("eta_s") else ""
        status = (
            f"**{p['stage'] or '—'}**: {p['status']}, step {p['step']}/{p['max_steps']}{eta}; stages {p['stages']}"
        )
        return status, pd.DataFrame(p["losses"], columns=["step", "loss"]), "\n".join(p["log"]), p["latest_samples"]

    with gr.Tab("Train"), gr.Row():
        with gr.Column():
            manifest = gr.Textbox(label="Manifest", value=PHANTOM_MANIFEST)
            with gr.Row():
                folder, count, size = (
                    gr.Textbox(value="data/phantom", label="Phantom folder"),
                    gr.Number(value=1000, precision=0, label="Images"),
                    gr.Number(value=512, precision=0, label="Size"),
                )
            gr.Button("Make a phantom set").click(notify(model.make_phantoms), [folder, count, size], manifest)
            out = gr.Textbox(label="Model folder", value="runs/my-cascade/model")
            preset = gr.Dropdown(list(PRESETS), value="demo", label="Preset")
            labels = {
                "ae": "Autoencoder steps",
                "latent": "Latent steps",
                "sr": "SR steps",
                "sr_finetune": "SR fine-tune steps",
                "ae_decoder": "Decoder fine-tune steps (encoder frozen)",
            }
            with gr.Row():
                steps = {k: gr.Number(value=CASCADE_STEPS[k], precision=0, label=label) for k, label in labels.items()}
            schedule = gr.Dropdown(list(LR_SCHEDULES), value=LR_SCHEDULES[0], label="Learning-rate schedule")
            with gr.Row():
                begin, resume, stop = gr.Button("Start", variant="primary"), gr.Button("Resume"), gr.Button("Stop")
            with gr.Accordion("Few-shot adaptation instead: an adapter for a model (writes into the folder above)"):
                with gr.Row():
                    base = gr.Textbox(label="Base model folder (empty: the bundled demo)")
                    method = gr.Radio(["lora", "full"], value="lora", label="Method")
                    rank = gr.Number(value=8, precision=0, label="LoRA rank")
                    adapt_steps = gr.Number(value=300, precision=0, label="Steps")
                prior = gr.Textbox(
                    label="Prior-preservation report (optional)", placeholder="Normal chest radiograph."
                )
                adapt = gr.Button("Start adaptation")
        with gr.Column():
            status, curve = gr.Markdown("No run yet."), gr.LinePlot(x="step", y="loss", label="Training loss")
            samples = picture("Latest sample grid")
            log = gr.Code(label="Log", lines=12)
    settings = [
        manifest,
        out,
        preset,
        *(steps[k] for k in ("ae", "latent", "sr", "sr_finetune", "ae_decoder")),
        schedule,
    ]
    adapt.click(notify(adapt_run), [manifest, out, base, method, rank, adapt_steps, prior], status)
    begin.click(notify(lambda *a: start(*a, False)), settings, status)
    resume.click(notify(lambda *a: start(*a, True)), settings, status)
    # wait_s=0: SIGTERM and return at once; False means "signalled, still finishing its step"
    stop.click(
        lambda o: (
            "No run is active." if runs.stop_run(o, wait_s=0) else "Stopping after this step (a checkpoint is saved)."
        ),
        out,
        status,
    )
    gr.Timer(2.0).tick(poll, out, [status, curve, log, samples], show_progress="hidden")
    return out


def model_tab(model: AppModel, follows: list, trained: gr.Textbox) -> None:
    """``follows``: the Generate tab's [sampler, steps, guidance, upscale], reset to each loaded model's own."""

    def load(folder):
        summary, samplers, d = model.load(folder)
        return (
            summary,
            gr.Dropdown(choices=samplers, value=d["sampler"]),
            gr.Slider(value=d["num_steps"]),
            gr.Slider(value=d["guidance_scale"]),
            gr.Checkbox(
                value=d["upscale"],
                interactive=d["has_super_resolution"],
                label=f"Super-resolution to {d['output_size']} px",
            ),
        )

    def refresh():
        return gr.Dropdown(choices=model.model_choices(), value=None), model.models_table()

    with gr.Tab("Model"):
        summary = gr.Markdown(model.summary())
        with gr.Row():
            found = gr.Dropdown(model.model_choices(), label=f"Models in {model.models}/", scale=3)
            load_found, rescan = gr.Button("Load selected", variant="primary"), gr.Button("Rescan")
        with gr.Accordion("Every folder found (family, MB, loadable, card)", open=False):
            table = gr.Dataframe(
                model.models_table(),
                headers=["folder", "family", "MB", "loadable", "card"],
                interactive=False,
                wrap=True,
            )
        with gr.Accordion("Evaluation report", open=False):
            gr.Markdown(
                "Make one with `python -m cxr_studio.evaluate --model DIR --manifest M --out REPORT_DIR` "
                "(reconstruction, realism, faithfulness, utility, device removal, privacy), then show it here."
            )
            with gr.Row():
                folder, show = gr.Textbox(label="Report folder", value="runs/eval/demo"), gr.Button("Show")
            page = gr.HTML()
        show.click(notify(model.evaluation_page), folder, page, api_name="read_evaluation")
        model_folder = gr.Textbox(label="Any model folder (empty: the bundled demo cascade)")
        outputs = [summary, *follows]
        gr.Button("Load").click(notify(load), model_folder, outputs, api_name="load_model")
        load_found.click(notify(load), found, outputs)
        rescan.click(refresh, None, [found, table])
        gr.Button("Load the trained cascade (Train tab's model folder)").click(notify(load), trained, outputs)


def phantom_tab(model: AppModel) -> None:
    with gr.Tab("Phantom"), gr.Row():
        with gr.Column():
            findings = gr.CheckboxGroup(list(phantom.FINDINGS), label="Findings")
            side = gr.Radio(list(phantom.SIDES), value="right", label="Side (patient's)")
            severity = gr.Radio(list(phantom.SEVERITIES), value="moderate", label="Severity")
            zone = gr.Radio(list(phantom.ZONES), value="lower", label="Zone")
            devices = gr.CheckboxGroup(list(phantom.DEVICES), label="Support devices")
            seed, render = (
                gr.Number(value=0, precision=0, minimum=0, label="Seed"),
                gr.Button("Render phantom", variant="primary"),
            )
        with gr.Column():
            image = picture("SYNTHETIC phantom - not a patient image", elem_id="phantom-image")
            clean = picture("Same patient without devices (SYNTHETIC)")
            report = gr.Textbox(label="Report", lines=6)
    inputs = [findings, side, severity, zone, devices, seed]
    render.click(notify(model.phantom_case), inputs, [image, clean, report], api_name="phantom_case")


def build_demo(model: AppModel) -> gr.Blocks:
    with gr.Blocks(title="CXR Studio", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(
            f"# CXR Studio {__version__}\nModel `{model.studio.model_id}`. Generated images are **synthetic** "
            "and labelled as such; edited real images are still patient images."
        )
        follows = generate_tab(model)
        inpaint_tab(model)
        outpaint_tab(model)
        interpolate_tab(model)
        review_tab(model)
        synthesize_tab()
        trained = train_tab(model)
        model_tab(model, follows, trained)
        phantom_tab(model)
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CXR Studio: a local chest radiograph studio")
    parser.add_argument(
        "--model",
        help="model folder: a CXR Studio cascade or a diffusers SD / PixArt-Sigma / Sana folder (default: demo)",
    )
    parser.add_argument(
        "--models", default="models", help="folder of model folders the Model tab lists (default models/)"
    )
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
        studio = load_model(args.model, device=args.device)
    except InputError as err:
        print(f"error: cannot load the model: {err}", file=sys.stderr)
        return 2
    print(f"CXR Studio {__version__}: model {studio.model_id} on {studio.device}")
    build_demo(AppModel(studio, models=args.models)).queue(**QUEUE).launch(
        **launch_settings(args.host, args.port, auth)
    )
    return 0


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
