"""CXR Studio front-end: ``python app.py [--model DIR] [--models DIR] [--port N] [--host H] [--auth USER:PASS]``.

Widgets and wiring only: what each button does is a method of :class:`cxr_studio.app_model.AppModel` (or of
``training.runs`` for the Train tab), called with the widgets' values by name and tested without a server; the
inputs are the forms of :mod:`cxr_studio.forms` and the page's limits and launch settings come from the library.
Every image served is PNG, every generated one labelled synthetic.
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
from cxr_studio.app_model import MAX_UPLOAD, QUEUE, AppModel, from_command_line, launch_settings
from cxr_studio.diffusion.sampling import GenerationCancelled
from training import runs

__all__ = ["MAX_UPLOAD", "QUEUE", "AppModel", "build_demo", "launch_settings", "main"]
WHOLE = {"format": "png", "object_fit": "contain"}  # a radiograph is letterboxed in a gallery, never cropped
picture = functools.partial(gr.Image, format="png", interactive=False)  # an image shown, never edited
uploads = functools.partial(gr.File, file_types=forms.UPLOAD_TYPES, type="filepath", file_count="multiple")


def wire(event, action, widgets: dict, outputs, *, run: bool = False, **options):
    """``event`` calls ``action`` with the widgets' values as keyword arguments (gradio's dict form of inputs);
    ``run``: a model call, one at a time, with a progress bar and (if it takes ``session``) this session's Stop."""
    stoppable = "session" in inspect.signature(action).parameters

    def handler(values: dict, request: gr.Request, progress=gr.Progress()):
        given = {name: values[w] for name, w in widgets.items()}
        if run:
            given["progress"] = lambda step, total, what: progress((step, total), desc=what, unit="steps")
            if stoppable:
                given["session"] = AppModel.session_of(request)
        try:
            return action(**given)
        except InputError as err:  # the library's message as a notification; no traceback reaches the page
            raise gr.Error(str(err)) from None
        except GenerationCancelled as err:
            raise gr.Error(f"Stopped: {err}.", title="Stopped") from None

    if run:
        options.setdefault("concurrency_id", "model")
    return event(handler, set(widgets.values()), outputs, **options)


def stopper(model: AppModel):
    """Stop, for this browser session's run only (gradio hands over the request by its annotation)."""

    def stop(request: gr.Request) -> None:
        model.request_stop(AppModel.session_of(request))

    return stop


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


def upload(model: AppModel, label: str, elem_id: str | None = None, *, api_name: str | None = None):
    """A radiograph upload (PNG, JPEG, TIFF or DICOM) read into a state -> (state, the read event to chain on)."""
    box, state = uploads(label=label, elem_id=elem_id, file_count="single"), gr.State()

    def read(path: str | None):
        radiograph, warning = model.read_upload(path)
        if warning:
            gr.Warning(warning)
        return radiograph

    return state, wire(box.change, read, {"path": box}, state, api_name=api_name)


def rebuilt(form_for, names, value):
    """The named fields of ``form_for(value)`` as new widgets: an update that resets them to that form's values."""
    by_name = {f.name: f for f in form_for(value)}
    return [widget(by_name[name]) for name in names]


def run_button(label: str, model: AppModel) -> gr.Button:
    """The action's button, beside a Stop for this browser session's run only."""
    with gr.Row():
        run, stop = gr.Button(label, variant="primary"), gr.Button("Stop")
    stop.click(stopper(model), None, None, queue=False)
    return run


def listed(action):
    """An adapter action -> the listing, and a menu of the loaded adapters with the newest chosen."""

    def handler(**values):
        text, names = action(**values)
        return text, gr.Dropdown(choices=names, value=names[-1] if names else None)

    return handler


def generate_tab(model: AppModel) -> dict:
    """The Generate tab; returns the widgets that follow the loaded model (sampler, steps, guidance, upscale)."""
    with gr.Tab("Generate"), gr.Row():
        with gr.Column(scale=2):
            w = form(forms.generate_form(model.studio)[:1])
            with gr.Accordion("Structured helper", open=False):
                helper, write = form(forms.COMPOSE_FORM), gr.Button("Write report")
            w |= form(forms.generate_form(model.studio)[1:])
            with gr.Accordion("Adapters (LoRA from python -m training.finetune or the Train tab)", open=False):
                listing, adapter = gr.Markdown(model.adapter_listing()), form(forms.ADAPTER_FORM)
                with gr.Row():
                    name = gr.Dropdown([], label="Loaded adapter")
                    load, set_weight, unload = gr.Button("Load"), gr.Button("Set weight"), gr.Button("Unload")
            with gr.Accordion("Privacy filter: replace any image that resembles a training image", open=False):
                w |= form(forms.PRIVACY_FORM)
            run = run_button("Generate", model)
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="SYNTHETIC images", columns=2, height=640, elem_id="gallery", **WHOLE)
            files = gr.File(label="PNG (16-bit, parameters in the file)", file_count="multiple", interactive=False)
            selected = gr.Textbox(visible=False)
            with gr.Row():
                to_dicom, to_study = gr.Button("Selected as DICOM (synthetic)"), gr.Button("All as one DICOM study")
                dicom = gr.File(label="DICOM", interactive=False)
    wire(write.click, model.compose, helper, w["report"])
    wire(run.click, model.generate, w, [gallery, files, w["seed"]], run=True, api_name="generate")

    def recall(paths, evt: gr.SelectData):
        return *model.recall(paths[evt.index]).values(), False, paths[evt.index]

    recall_into = [w[k] for k in ("report", "negative", "sampler", "steps", "guidance", "seed", "random_seed")]
    gallery.select(recall, [files], [*recall_into, selected])
    wire(to_dicom.click, model.export_dicom, {"png": selected}, dicom)
    wire(to_study.click, model.export_study, {"pngs": files}, dicom)
    wire(load.click, listed(model.load_adapter), adapter, [listing, name])
    wire(set_weight.click, model.set_adapter_weight, {"name": name, "weight": adapter["weight"]}, listing)
    wire(unload.click, listed(model.unload_adapter), {"name": name}, [listing, name])
    return {k: w[k] for k in ("sampler", "steps", "guidance", "upscale")}


def inpaint_tab(model: AppModel) -> None:
    with gr.Tab("Inpaint"), gr.Row():
        with gr.Column():
            radiograph, read = upload(
                model, "Radiograph (PNG, JPEG, TIFF or DICOM)", "inpaint-upload", api_name="load_upload"
            )
            window = form(forms.WINDOW_FORM)
            editor = gr.ImageEditor(**forms.EDITOR, brush=gr.Brush(**forms.BRUSH), eraser=gr.Eraser(default_size=16))
            w = {"radiograph": radiograph, "editor": editor} | form(forms.inpaint_form(model.studio))
            run = run_button("Inpaint", model)
        with gr.Column():
            compare = gr.ImageSlider(label="Before / after", type="numpy", format="png", elem_id="inpaint-slider")
            difference = picture(label="Difference (x4)", elem_id="inpaint-difference")
            label = "Result in the original bit depth (PNG) and as DICOM (derived)"
            files = gr.File(label=label, file_count="multiple", interactive=False)
    shown = {"radiograph": radiograph} | window
    wire(read.then, model.windowed, shown, editor)
    for trigger in (window["level"].release, window["width"].release, window["invert"].change):
        wire(trigger, model.windowed, shown, editor)
    follow = ("strength", "fill", "grow_px", "feather_px")
    preset = functools.partial(rebuilt, lambda p: forms.inpaint_form(model.studio, preset=p), follow)
    wire(w["preset"].change, preset, {"value": w["preset"]}, [w[k] for k in follow])
    wire(run.click, model.inpaint, w, [compare, difference, files], run=True, api_name="inpaint")


def outpaint_tab(model: AppModel) -> None:
    with gr.Tab("Outpaint"), gr.Row():
        with gr.Column():
            radiograph, read = upload(model, "Radiograph", "outpaint-upload")
            preview, w = picture(label="Input"), {"radiograph": radiograph} | form(forms.OUTPAINT_FORM)
            run = gr.Button("Outpaint", variant="primary")
        gallery = gr.Gallery(label="Edited (kept pixels exact)", columns=2, elem_id="outpaint-gallery", **WHOLE)
    wire(read.then, model.windowed, {"radiograph": radiograph}, preview)
    wire(run.click, model.outpaint, w, gallery, run=True, api_name="outpaint")


def interpolate_tab(model: AppModel) -> None:
    with gr.Tab("Interpolate"), gr.Row():
        with gr.Column():
            w = form(forms.INTERPOLATE_FORM)
            with gr.Row():
                w["start"], _ = upload(model, "Start image (image modes)", api_name="interpolate_start_image")
                w["end"], _ = upload(model, "End image", api_name="interpolate_end_image")
            run = gr.Button("Interpolate", variant="primary")
        with gr.Column():
            strip = gr.Gallery(label="Frames (SYNTHETIC)", columns=4, format="png", elem_id="interpolate-frames")
            gif = gr.File(label="Animated GIF", interactive=False)
    wire(run.click, model.interpolate, w, [strip, gif], run=True, api_name="interpolate")


def review_tab(model: AppModel) -> None:
    with gr.Tab("Review"):
        gr.Markdown("Real and synthetic side by side through the same window/level.")
        with gr.Row():
            real, read_real = upload(model, "Real radiograph", "review-real-upload")
            synthetic, read_synthetic = upload(
                model, "Synthetic radiograph", "review-synthetic-upload", api_name="review_synthetic_upload"
            )
        with gr.Row():
            window = form(forms.WINDOW_FORM)
        with gr.Row():
            views = [picture(label=name, elem_id=f"review-{name.lower()}") for name in ("Real", "SYNTHETIC")]
        with gr.Accordion("Privacy screen: does the synthetic image copy a training image?", open=False):
            gr.Markdown(forms.SCREEN_NOTE)
            with gr.Row():
                screen, check = form(forms.SCREEN_FORM), gr.Button("Screen")
            with gr.Row():
                verdict, nearest = gr.Markdown(), picture(label="Nearest training image", elem_id="review-nearest")
        with gr.Accordion("Blinded reader study", open=False):
            reader_study(model)
    shown = {"real": real, "synthetic": synthetic} | window
    for event in (read_real.then, read_synthetic.then, *(control.change for control in window.values())):
        wire(event, model.review, shown, views, show_progress="hidden", trigger_mode="always_last")
    screen["synthetic"] = synthetic
    wire(check.click, model.screen_synthetic, screen, [verdict, nearest], run=True, api_name="screen_synthetic")


def reader_study(model: AppModel) -> None:
    gr.Markdown("Each reader sees their own randomised, balanced sequence; answers are saved at once.")
    w = form(forms.STUDY_FORM)
    with gr.Row():
        cases = {"real": uploads(label="Real images"), "synthetic": uploads(label="Synthetic images")}
    status, current, case = gr.Markdown(), gr.State(), picture(label="Real or synthetic?", height=560)
    with gr.Row():
        add, begin, real, synthetic = map(gr.Button, ("Add cases", "Start / continue", "Real", "Synthetic"))
    with gr.Row():
        results = gr.Button("Results")
        scores = gr.JSON(label="Accuracy, binomial test, sensitivity, specificity, ROC AUC")
        answers = gr.File(label="Answers (CSV)", interactive=False)
    folder, shown = {"folder": w["folder"]}, [case, status, current]
    wire(add.click, model.study_add, folder | cases, status, api_name="study_add")
    wire(begin.click, model.study_next, folder | {"reader": w["reader"]}, shown, api_name="study_next")
    for button, answer in ((real, "real"), (synthetic, "synthetic")):
        record = functools.partial(model.study_answer, answer=answer)
        wire(button.click, record, w | {"current": current}, shown, api_name=f"study_answer_{answer}")
    wire(results.click, model.study_results, folder, [scores, answers], api_name="study_results")


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


def train_tab(model: AppModel) -> None:
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
            samples, log = picture(label="Latest sample grid"), gr.Code(label="Log", lines=12)
    wire(make.click, model.make_phantoms, phantoms, w["manifest"])
    wire(adapt.click, runs.start_adaptation, adapt_form | {k: w[k] for k in ("manifest", "out")}, status)
    wire(begin.click, runs.start_training, w, status)
    wire(resume.click, functools.partial(runs.start_training, resume=True), w, status)
    stop.click(runs.stop_view, w["out"], status)
    gr.Timer(2.0).tick(runs.progress_view, w["out"], [status, curve, log, samples], show_progress="hidden")


def model_tab(model: AppModel, follows: dict) -> None:
    """``follows``: the Generate tab's widgets that are reset to each loaded model's own defaults."""

    def load(folder: str):
        return model.load(folder), *rebuilt(lambda _: forms.generate_form(model.studio), follows, None)

    with gr.Tab("Model"):
        summary = gr.Markdown(model.summary())
        with gr.Row():
            found = gr.Dropdown(model.model_choices(), label=f"Models in {model.models}/", scale=3)
            load_found, rescan = gr.Button("Load selected", variant="primary"), gr.Button("Rescan")
        with gr.Accordion("Every folder found (family, MB, loadable, card)", open=False):
            headers = ["folder", "family", "MB", "loadable", "card"]
            table = gr.Dataframe(model.models_table(), headers=headers, interactive=False, wrap=True)
        with gr.Row():
            folder = gr.Textbox(
                label="Any model folder (empty: the bundled demo; the Train tab's model folder)", scale=3
            )
            load_folder = gr.Button("Load")
        with gr.Accordion("Evaluation report (python -m cxr_studio.evaluate ... --out DIR)", open=False):
            with gr.Row():
                report, show = gr.Textbox(label="Report folder", value="runs/eval/demo"), gr.Button("Show")
            page = gr.HTML()
    outputs = [summary, *follows.values()]
    wire(load_folder.click, load, {"folder": folder}, outputs, api_name="load_model")
    wire(load_found.click, load, {"folder": found}, outputs)
    rescan.click(lambda: (gr.Dropdown(model.model_choices()), model.models_table()), None, [found, table])
    wire(show.click, model.evaluation_page, {"folder": report}, page, api_name="read_evaluation")


def phantom_tab(model: AppModel) -> None:
    with gr.Tab("Phantom"), gr.Row():
        with gr.Column():
            w, render = form(forms.PHANTOM_FORM), gr.Button("Render phantom", variant="primary")
        with gr.Column():
            image = picture(label="SYNTHETIC phantom - not a patient image", elem_id="phantom-image")
            clean = picture(label="Same patient without devices (SYNTHETIC)")
            report = gr.Textbox(label="Report", lines=6)
    wire(render.click, model.phantom_case, w, [image, clean, report], api_name="phantom_case")


def build_demo(model: AppModel) -> gr.Blocks:
    with gr.Blocks(title="CXR Studio", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# CXR Studio {__version__}\nModel `{model.studio.model_id}`. {forms.SYNTHETIC_NOTE}")
        follows = generate_tab(model)
        for tab in (inpaint_tab, outpaint_tab, interpolate_tab, review_tab, synthesize_tab, train_tab):
            tab(model)
        model_tab(model, follows)
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


if __name__ == "__main__":
    raise SystemExit(main())
