"""CXR Studio front-end: ``python app.py [--model DIR] [--models DIR] [--port N] [--host H] [--auth USER:PASS]``.

Widgets and wiring only: what each button does is a method of :class:`cxr_studio.app_model.AppModel` (or of
``training.runs`` for the Train tab), called with the widgets' values by name and tested without a server;
defaults and ranges come from the library. Every image served is PNG, every generated one labelled synthetic.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import os
import sys
import tempfile

# Offline and private by design: set before gradio is imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="cxr-studio-"))  # private, cleaned by delete_cache

import gradio as gr

from cxr_studio import InputError, __version__, forms, synthesize
from cxr_studio.app_model import EDIT_BRUSH, KEEP_BRUSH, AppModel, from_command_line
from cxr_studio.config import EDIT_PRESETS
from cxr_studio.diffusion.sampling import GenerationCancelled
from training import runs

__all__ = ["AppModel", "build_demo", "launch_settings", "main"]
QUEUE = {"max_size": 16, "default_concurrency_limit": 1}  # one model call at a time (CPU or one GPU), 16 waiting
MAX_UPLOAD = "200mb"
UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom"]
# A lone gallery image is sized to the column's width, taller than the box: capping the tile keeps it whole.
CSS = "#gallery .thumbnail-lg { max-height: 600px; }"
WHOLE = {"format": "png", "object_fit": "contain"}  # a radiograph is letterboxed in a gallery, never cropped


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


def session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def wire(event, action, widgets: dict, outputs, *, run: bool = False, **options):
    """``event`` calls ``action`` with the widgets' values as keyword arguments (gradio's dict form of inputs);
    ``run``: a model call, one at a time, with a progress bar and (if it takes ``session``) this session's Stop."""
    stoppable = "session" in inspect.signature(action).parameters

    def handler(values: dict, request: gr.Request, progress=gr.Progress()):
        given = {name: values[w] for name, w in widgets.items()}
        if run:
            given["progress"] = lambda step, total, what: progress((step, total), desc=what, unit="steps")
            if stoppable:
                given["session"] = session(request)
        return action(**given)

    if run:
        options.setdefault("concurrency_id", "model")
    return event(notify(handler), set(widgets.values()), outputs, **options)


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
    return gr.Image(label=label, format="png", interactive=False, **options)


# The inpainting canvas: the upload drawn in (PNG), painted with a green (regenerate) and a blue (keep) brush
BRUSH = {"colors": [(EDIT_BRUSH, 0.5), (KEEP_BRUSH, 0.5)], "color_mode": "fixed", "default_size": 16}
EDITOR = {"type": "numpy", "image_mode": "RGBA", "format": "png", "layers": False, "transforms": (), "sources": ()}
EDITOR |= {"fixed_canvas": False, "height": 560, "elem_id": "inpaint-editor"}
EDITOR["label"] = "Paint what to regenerate (green) and what must not change (blue: keep)"


def form(fields: tuple[forms.Field, ...]) -> dict[str, gr.Component]:
    """A widget per field (see :mod:`cxr_studio.forms`), keyed by the action's keyword; a field's row groups it."""
    widgets = {}
    for row, group in itertools.groupby(fields, key=lambda f: f.row):
        with gr.Row() if row else contextlib.nullcontext():
            widgets |= {f.name: widget(f) for f in group}
    return widgets


def widget(f: forms.Field) -> gr.Component:
    common = {"label": f.label, "value": f.value, "interactive": f.interactive}
    if f.kind in ("text", "report"):
        return gr.Textbox(lines=4 if f.kind == "report" else 1, placeholder=f.placeholder or None, **common)
    if f.kind == "number":
        return gr.Number(precision=0, minimum=f.low, maximum=f.high, **common)
    if f.kind == "slider":
        return gr.Slider(f.low, f.high, step=f.step, **common)
    kinds = {"check": gr.Checkbox, "choice": gr.Dropdown, "radio": gr.Radio, "checks": gr.CheckboxGroup}
    return kinds[f.kind](**({"choices": list(f.choices)} if f.choices else {}), **common)


def window_controls() -> list:
    """Level, width (display [0, 1]) and invert: the radiologist's window."""
    return [
        gr.Slider(0, 1, value=0.5, label="Level"),
        gr.Slider(0.05, 1, value=1, label="Width"),
        gr.Checkbox(label="Invert"),
    ]


def run_button(label: str, model: AppModel) -> gr.Button:
    """The action's button, beside a Stop for this browser session's run only."""
    with gr.Row():
        run, stop = gr.Button(label, variant="primary"), gr.Button("Stop")
    stop.click(stopper(model), None, None, queue=False)
    return run


def generate_tab(model: AppModel) -> dict:
    """The Generate tab; returns the widgets that follow the loaded model (sampler, steps, guidance, upscale)."""
    with gr.Tab("Generate"), gr.Row():
        with gr.Column(scale=2):
            w = form(forms.generate_form(model.studio)[:1])
            with gr.Accordion("Structured helper", open=False):
                helper, write = form(forms.COMPOSE_FORM), gr.Button("Write report")
            w |= form(forms.generate_form(model.studio)[1:])
            with gr.Accordion("Adapters (LoRA from python -m training.finetune or the Train tab)", open=False):
                adapters = gr.Markdown(model.adapter_listing())
                with gr.Row():
                    folder, weight = gr.Textbox(label="Adapter folder"), gr.Slider(-2, 2, value=1.0, label="Weight")
                    loaded = gr.Dropdown([], label="Loaded adapter")
                    load, set_weight, unload = gr.Button("Load"), gr.Button("Set weight"), gr.Button("Unload")
            with gr.Accordion("Privacy filter: replace any image that resembles a training image", open=False):
                w |= form(forms.PRIVACY_FORM)
            run = run_button("Generate", model)
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="SYNTHETIC images", columns=2, height=640, elem_id="gallery", **WHOLE)
            files = gr.File(label="PNG (16-bit, parameters in the file)", file_count="multiple", interactive=False)
            selected = gr.Textbox(visible=False)
            with gr.Row():
                to_dicom = gr.Button("Export selected as DICOM (synthetic)")
                to_study = gr.Button("All as one DICOM study")
                dicom = gr.File(label="DICOM", interactive=False)
    wire(write.click, model.compose, helper, w["report"])
    wire(run.click, model.generate, w, [gallery, files, w["seed"]], run=True, api_name="generate")

    def recall(paths, evt: gr.SelectData):
        return *model.recall(paths[evt.index]).values(), False, paths[evt.index]

    recall_into = [w[k] for k in ("report", "negative", "sampler", "steps", "guidance", "seed", "random_seed")]
    gallery.select(recall, [files], [*recall_into, selected])
    to_dicom.click(notify(model.export_dicom), selected, dicom)
    to_study.click(notify(model.export_study), files, dicom)

    def listed(listing, names):
        return listing, gr.Dropdown(choices=names, value=names[-1] if names else None)

    load.click(notify(lambda f, x: listed(*model.load_adapter(f, x))), [folder, weight], [adapters, loaded])
    set_weight.click(notify(model.set_adapter_weight), [loaded, weight], adapters)
    unload.click(notify(lambda n: listed(*model.unload_adapter(n))), loaded, [adapters, loaded])
    return {k: w[k] for k in ("sampler", "steps", "guidance", "upscale")}


def inpaint_tab(model: AppModel) -> None:
    with gr.Tab("Inpaint"), gr.Row():
        with gr.Column():
            upload = upload_box("Radiograph (PNG, JPEG, TIFF or DICOM)", "inpaint-upload")
            level, width, invert = window_controls()
            w = {
                "radiograph": gr.State(),
                "editor": gr.ImageEditor(**EDITOR, brush=gr.Brush(**BRUSH), eraser=gr.Eraser(default_size=16)),
            }
            w |= form(forms.inpaint_form(model.studio))
            run = run_button("Inpaint", model)
        with gr.Column():
            compare = gr.ImageSlider(label="Before / after", type="numpy", format="png", elem_id="inpaint-slider")
            difference = picture("Difference (x4)", elem_id="inpaint-difference")
            files = gr.File(
                label="Result in the original bit depth (PNG) and as DICOM (derived)",
                file_count="multiple",
                interactive=False,
            )

    shown = [w["radiograph"], level, width, invert]
    upload.change(upload_reader(model), upload, w["radiograph"], api_name="load_upload").then(
        model.windowed, shown, w["editor"]
    )
    for trigger in (level.release, width.release, invert.change):
        trigger(model.windowed, shown, w["editor"])

    def preset_values(name):
        p = EDIT_PRESETS[name]
        return p.strength, p.fill, p.grow_px, p.feather_px, gr.Textbox(placeholder=p.report)

    w["preset"].change(
        preset_values, w["preset"], [w[k] for k in ("strength", "fill", "grow_px", "feather_px", "report")]
    )
    wire(run.click, model.inpaint, w, [compare, difference, files], run=True, api_name="inpaint")


def outpaint_tab(model: AppModel) -> None:
    with gr.Tab("Outpaint"), gr.Row():
        with gr.Column():
            upload, preview = upload_box("Radiograph", "outpaint-upload"), picture("Input")
            w = {"radiograph": gr.State()}
            w |= form(forms.OUTPAINT_FORM)
            run = gr.Button("Outpaint", variant="primary")
        gallery = gr.Gallery(label="Edited (kept pixels exact)", columns=2, elem_id="outpaint-gallery", **WHOLE)
    read = upload_reader(model)
    upload.change(lambda p: (r := read(p), model.windowed(r, 0.5, 1.0, False)), upload, [w["radiograph"], preview])
    wire(run.click, model.outpaint, w, gallery, run=True, api_name="outpaint")


def interpolate_tab(model: AppModel) -> None:
    with gr.Tab("Interpolate"), gr.Row():
        with gr.Column():
            w = form(forms.INTERPOLATE_FORM) | {"start": gr.State(), "end": gr.State()}
            with gr.Row():
                image_a, image_b = upload_box("Start image (image modes)"), upload_box("End image")
            run = gr.Button("Interpolate", variant="primary")
        with gr.Column():
            strip = gr.Gallery(label="Frames (SYNTHETIC)", columns=4, format="png", elem_id="interpolate-frames")
            gif = gr.File(label="Animated GIF", interactive=False)
    image_a.change(upload_reader(model), image_a, w["start"], api_name="interpolate_start_image")
    image_b.change(upload_reader(model), image_b, w["end"], api_name="interpolate_end_image")
    wire(run.click, model.interpolate, w, [strip, gif], run=True, api_name="interpolate")


def review_tab(model: AppModel) -> None:
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
                "Registered correlation of fine structure against every image of a training split (threshold calibrated "
                "on training-versus-training pairs). Edited real images are patient images whatever it says."
            )
            with gr.Row():
                manifest = gr.Textbox(label="Training manifest", value=forms.PHANTOM_MANIFEST)
                check = gr.Button("Screen")
            with gr.Row():
                verdict, nearest = gr.Markdown(), picture("Nearest training image", elem_id="review-nearest")
        with gr.Accordion("Blinded reader study", open=False):
            reader_study(model)
    shown = [real, synthetic, *window]
    real_upload.change(upload_reader(model), real_upload, real).then(model.review, shown, views)
    synthetic_upload.change(
        upload_reader(model), synthetic_upload, synthetic, api_name="review_synthetic_upload"
    ).then(model.review, shown, views)
    for control in window:
        control.change(model.review, shown, views, show_progress="hidden", trigger_mode="always_last")
    screen = {"synthetic": synthetic, "manifest": manifest}
    wire(check.click, model.screen_synthetic, screen, [verdict, nearest], run=True, api_name="screen_synthetic")


def reader_study(model: AppModel) -> None:
    gr.Markdown("Each reader sees their own randomised, balanced sequence; answers are saved at once.")
    folder = gr.Textbox(value="runs/reader-study", label="Study folder")
    with gr.Row():
        real, synthetic = upload_box("Real images", multiple=True), upload_box("Synthetic images", multiple=True)
    status = gr.Markdown()
    gr.Button("Add cases").click(notify(model.study_add), [folder, real, synthetic], status, api_name="study_add")
    reader, current = gr.Textbox(label="Reader (a pseudonym)"), gr.State()
    case = picture("Real or synthetic?", height=560)
    with gr.Row():
        confidence, begin = gr.Slider(1, 5, value=3, step=1, label="Confidence"), gr.Button("Start / continue")
        said_real, said_synthetic = gr.Button("Real"), gr.Button("Synthetic")
    begin.click(notify(model.study_next), [folder, reader], [case, status, current], api_name="study_next")
    for button, answer in ((said_real, "real"), (said_synthetic, "synthetic")):
        record = notify(lambda f, r, c, k, a=answer: model.study_answer(f, r, c, k, a))
        button.click(
            record, [folder, reader, current, confidence], [case, status, current], api_name=f"study_answer_{answer}"
        )
    with gr.Row():
        results = gr.Button("Results")
        scores = gr.JSON(label="Accuracy, binomial test, sensitivity, specificity, ROC AUC")
        answers = gr.File(label="Answers (CSV)", interactive=False)
    results.click(notify(model.study_results), folder, [scores, answers], api_name="study_results")


def synthesize_tab(model: AppModel) -> None:
    """A whole synthetic dataset as a background job: the same code as ``python -m cxr_studio.synthesize``."""
    with gr.Tab("Synthesize"), gr.Row():
        with gr.Column():
            w = form(forms.synthesize_form(synthesize.MAX_BATCH))
            with gr.Row():
                run, stop = gr.Button("Start or finish", variant="primary"), gr.Button("Stop")
        with gr.Column():
            status = gr.Markdown("No job yet.")
            summary = gr.JSON(label="Summary (made, replaced and dropped, and why)")
            latest = gr.Gallery(label="Latest batch", columns=4, height=260, format="png")
            log = gr.Code(label="Log", lines=8)
    wire(run.click, model.synthesize_start, w, status, api_name="synthesize_start")
    stop.click(model.synthesize_stop, w["out"], status, api_name="synthesize_stop")
    poll = [status, summary, latest, log]
    gr.Timer(2.0).tick(model.synthesize_poll, w["out"], poll, show_progress="hidden", api_name="synthesize_poll")


def train_tab(model: AppModel) -> gr.Textbox:
    with gr.Tab("Train"), gr.Row():
        with gr.Column():
            w = form(runs.train_form())
            with gr.Accordion("A phantom set to train on", open=False):
                phantoms, make = form(forms.PHANTOM_SET_FORM), gr.Button("Make a phantom set")
            with gr.Row():
                begin, resume, stop = gr.Button("Start", variant="primary"), gr.Button("Resume"), gr.Button("Stop")
            with gr.Accordion("Few-shot adaptation instead: an adapter for a model (written into the model folder)"):
                adapt_form, adapt = form(runs.ADAPT_FORM), gr.Button("Start adaptation")
        with gr.Column():
            status, curve = gr.Markdown("No run yet."), gr.LinePlot(x="step", y="loss", label="Training loss")
            samples, log = picture("Latest sample grid"), gr.Code(label="Log", lines=12)
    wire(make.click, model.make_phantoms, phantoms, w["manifest"])
    wire(adapt.click, runs.start_adaptation, adapt_form | {k: w[k] for k in ("manifest", "out")}, status)
    wire(begin.click, runs.start_training, w, status)
    wire(resume.click, functools.partial(runs.start_training, resume=True), w, status)
    stop.click(runs.stop_view, w["out"], status)

    gr.Timer(2.0).tick(runs.progress_view, w["out"], [status, curve, log, samples], show_progress="hidden")
    return w["out"]


def model_tab(model: AppModel, follows: dict, trained: gr.Textbox) -> None:
    """``follows``: the Generate tab's widgets that are reset to each loaded model's own defaults."""

    def load(folder):
        summary, fields = model.load(folder), {f.name: f for f in forms.generate_form(model.studio)}
        return summary, *(widget(fields[name]) for name in follows)

    with gr.Tab("Model"):
        summary = gr.Markdown(model.summary())
        with gr.Row():
            found = gr.Dropdown(model.model_choices(), label=f"Models in {model.models}/", scale=3)
            load_found, rescan = gr.Button("Load selected", variant="primary"), gr.Button("Rescan")
        with gr.Accordion("Every folder found (family, MB, loadable, card)", open=False):
            headers = ["folder", "family", "MB", "loadable", "card"]
            table = gr.Dataframe(model.models_table(), headers=headers, interactive=False, wrap=True)
        with gr.Accordion(
            "Evaluation report (python -m cxr_studio.evaluate --model DIR --manifest M --out DIR)", open=False
        ):
            with gr.Row():
                folder, show = gr.Textbox(label="Report folder", value="runs/eval/demo"), gr.Button("Show")
            page = gr.HTML()
        show.click(notify(model.evaluation_page), folder, page, api_name="read_evaluation")
        model_folder = gr.Textbox(label="Any model folder (empty: the bundled demo cascade)")
        outputs = [summary, *follows.values()]
        gr.Button("Load").click(notify(load), model_folder, outputs, api_name="load_model")
        load_found.click(notify(load), found, outputs)
        rescan.click(lambda: (gr.Dropdown(model.model_choices()), model.models_table()), None, [found, table])
        gr.Button("Load the trained cascade (Train tab's model folder)").click(notify(load), trained, outputs)


def phantom_tab(model: AppModel) -> None:
    with gr.Tab("Phantom"), gr.Row():
        with gr.Column():
            w, render = form(forms.PHANTOM_FORM), gr.Button("Render phantom", variant="primary")
        with gr.Column():
            image = picture("SYNTHETIC phantom - not a patient image", elem_id="phantom-image")
            clean, report = picture("Same patient without devices (SYNTHETIC)"), gr.Textbox(label="Report", lines=6)
    wire(render.click, model.phantom_case, w, [image, clean, report], api_name="phantom_case")


def build_demo(model: AppModel) -> gr.Blocks:
    with gr.Blocks(title="CXR Studio", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(
            f"# CXR Studio {__version__}\nModel `{model.studio.model_id}`. Generated images are **synthetic** "
            "and labelled as such; edited real images are still patient images."
        )
        follows = generate_tab(model)
        for tab in (inpaint_tab, outpaint_tab, interpolate_tab, review_tab, synthesize_tab):
            tab(model)
        model_tab(model, follows, train_tab(model))
        phantom_tab(model)
    return demo


def main(argv: list[str] | None = None) -> int:
    try:
        model, server = from_command_line(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"CXR Studio {__version__}: model {model.studio.model_id} on {model.studio.device}")
    build_demo(model).queue(**QUEUE).launch(**launch_settings(**server))
    return 0


def launch_settings(host: str, port: int | None, auth: tuple[str, str] | None) -> dict:
    """Local and private: no share link, no browser run history, no monitoring page, an upload limit."""
    private = {"share": False, "run_history": False, "enable_monitoring": False, "strict_cors": True, "pwa": False}
    private |= {"mcp_server": False, "ssr_mode": False, "footer_links": [], "max_file_size": MAX_UPLOAD, "css": CSS}
    return private | {"server_name": host, "server_port": port, "auth": auth}


if __name__ == "__main__":
    raise SystemExit(main())
