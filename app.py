"""CXR Studio front-end: ``python app.py [--model DIR] [--models DIR] [--port N] [--host H] [--auth USER:PASS]``.

Wiring only: each button calls a method of :class:`cxr_studio.app_model.AppModel` with the widgets' values by name;
inputs and views are the data of :mod:`cxr_studio.forms`. The command line and the launch settings live here."""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import functools
import inspect
import itertools
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

# Offline and private by design: set before gradio is imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="cxr-studio-"))  # private, cleaned by delete_cache

import gradio as gr
from gradio_image_annotation import image_annotator

from cxr_studio import InputError, __version__, forms, synthesize
from cxr_studio.app_model import MAX_UPLOAD, MODEL_COLUMNS, QUEUE, AppModel
from cxr_studio.diffusion.sampling import GenerationCancelled
from cxr_studio.environment import environment_problems
from cxr_studio.forms import CSS
from cxr_studio.model_folders import load_model

WHOLE = {"format": "png", "object_fit": "contain"}  # a radiograph is letterboxed in a gallery, never cropped
picture = functools.partial(gr.Image, format="png", interactive=False)  # an image shown, never edited
uploads = functools.partial(gr.File, file_types=forms.UPLOAD_TYPES, type="filepath", file_count="multiple")


def wire(event, action, widgets: dict, outputs, *, run: bool = False, **options):
    """``event`` calls ``action`` with the widgets' values as keyword arguments (gradio's dict form of inputs), and
    with what else it asks for by name: a ``progress`` bar, this browser ``session`` (whose Stop stops this session's
    run only), a ``warn`` notification, a live ``preview`` (an image file to show while it runs: the last output
    shows it, and the action's own values fill the others). ``run``: a model call, one at a time."""
    takes = inspect.signature(action).parameters

    def arguments(values: dict, request: gr.Request, progress: gr.Progress) -> dict:
        given = {name: values[w] for name, w in widgets.items()}
        bar = lambda step, total, what: progress((step, total), desc=what, unit="steps")
        asked = {"progress": bar, "session": AppModel.session_of(request), "warn": gr.Warning}
        return given | {name: value for name, value in asked.items() if name in takes}

    def handler(values: dict, request: gr.Request, progress=gr.Progress()):
        with shown_as_notification():
            return action(**arguments(values, request, progress))

    def streaming(values: dict, request: gr.Request, progress=gr.Progress()):
        shown, outcome = queue.SimpleQueue(), {}
        given = arguments(values, request, progress) | {"preview": shown.put}

        def work() -> None:
            try:
                outcome["value"] = action(**given)
            except Exception as err:  # noqa: BLE001 - any failure is raised again on the page's side below
                outcome["error"] = err
            finally:
                shown.put(None)

        # the copied context carries gradio's event into the thread, so the progress bar still moves
        threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True).start()
        while (path := shown.get()) is not None:
            yield *[gr.skip()] * (len(outputs) - 1), path
        with shown_as_notification():
            if "error" in outcome:
                raise outcome["error"]
        yield *outcome["value"], gr.skip()

    if run:
        options.setdefault("concurrency_id", "model")
    return event(streaming if "preview" in takes else handler, set(widgets.values()), outputs, **options)


@contextlib.contextmanager
def shown_as_notification():
    """The library's refusals and a pressed Stop as a notification on the page, without a traceback."""
    try:
        yield
    except (InputError, GenerationCancelled) as err:
        raise gr.Error(str(err), title="Stopped" if isinstance(err, GenerationCancelled) else "Error") from None


def form(fields: tuple[forms.Field, ...], model: AppModel | None = None) -> dict[str, gr.Component]:
    """A widget per field of :mod:`cxr_studio.forms`, keyed by its action's keyword; ``model`` reads uploads."""
    widgets = {}
    for row, group in itertools.groupby(fields, key=lambda f: f.row):
        with gr.Row() if row else contextlib.nullcontext():
            widgets |= {f.name: widget(f, model) for f in group}
    return widgets


view = functools.partial  # a view kind's component, with the options it always has
SHOWN = {"image": picture, "markdown": gr.Markdown, "json": gr.JSON, "html": gr.HTML, "code": view(gr.Code, lines=10)}
SHOWN |= {"gallery": view(gr.Gallery, **WHOLE), "before_after": view(gr.ImageSlider, type="numpy", format="png")}
SHOWN |= {"file": view(gr.File, interactive=False), "files": view(gr.File, file_count="multiple", interactive=False)}
SHOWN |= {"curve": view(gr.LinePlot, x="step", y="loss"), "lines": view(gr.Textbox, lines=6, interactive=False)}


def widget(f: forms.Field, model: AppModel | None = None) -> gr.Component:
    common = {"label": f.label, "value": f.value, "elem_id": f.elem_id or None}
    if f.kind == "radiograph":
        return upload(model, f.label, f.elem_id)[0]
    if f.kind == "layout":  # f.value: the report whose rule's layout the canvas starts with
        canvas, colours = model.layout_canvas(f.value) if model else None, list(forms.LAYOUT_COLOURS)
        return image_annotator(
            canvas, label_list=list(f.choices), label_colors=colours, sources=[], image_type="numpy",
            label=f.label, elem_id=f.elem_id or None, interactive=f.interactive, height=520, box_min_size=4,
            show_download_button=False, show_clear_button=False, use_default_label=True,
        )  # fmt: skip
    if f.kind in SHOWN:
        return SHOWN[f.kind](**common, **({"columns": f.columns} if f.columns else {}))
    common["interactive"] = f.interactive
    if f.kind in ("text", "report"):
        return gr.Textbox(lines=4 if f.kind == "report" else 1, placeholder=f.placeholder or None, **common)
    if f.kind == "number":
        return gr.Number(precision=0, minimum=f.low, maximum=f.high, **common)
    if f.kind == "slider":
        return gr.Slider(f.low, f.high, step=f.step, **common)
    kinds = {"check": gr.Checkbox, "choice": gr.Dropdown, "radio": gr.Radio, "checks": gr.CheckboxGroup}
    return kinds[f.kind](**({"choices": list(f.choices)} if f.choices else {}), **common)


def views(fields: tuple[forms.Field, ...]) -> list[gr.Component]:
    """An action's values shown (see :data:`cxr_studio.forms.VIEWS`) in a column, in the order it returns them."""
    with gr.Column():
        return list(form(fields).values())


def upload(model: AppModel, label: str, elem_id: str):
    """A radiograph upload (PNG, JPEG, TIFF or DICOM) read into a state -> (state, the read event to chain on).
    Its API name follows its page handle: ``inpaint-upload`` is ``/inpaint_upload``."""
    box, state = uploads(label=label, elem_id=elem_id, file_count="single"), gr.State()
    return state, wire(box.change, model.read_upload, {"path": box}, state, api_name=elem_id.replace("-", "_"))


def rebuilt(form_for, names, value):
    """The named fields of ``form_for(value)`` as new widgets: an update that resets them to that form's values."""
    by_name = {f.name: f for f in form_for(value)}
    return [widget(by_name[name]) for name in names]


def run_button(label: str, model: AppModel) -> gr.Button:
    """The action's button, beside a Stop for this browser session's run only."""
    with gr.Row():
        run, stop = gr.Button(label, variant="primary"), gr.Button("Stop")
    wire(stop.click, model.request_stop, {}, None, queue=False)
    return run


def task(model: AppModel, spec: forms.Task) -> None:
    """A tab of one action: its form and button on the left, its views on the right."""
    with gr.Tab(spec.title), gr.Row():
        with gr.Column():
            w, run = form(spec.fields, model), gr.Button(spec.button, variant="primary")
        shown = views(spec.views)
    wire(run.click, getattr(model, spec.action), w, shown, run=spec.run, api_name=spec.action)


def generate_tab(model: AppModel) -> dict:
    """The Generate tab; returns the widgets that follow the loaded model (sampler, steps, guidance, upscale)."""
    with gr.Tab("Generate"), gr.Row():
        with gr.Column(scale=2):
            fields = forms.generate_form(model.studio)
            panel = lambda names: tuple(f for f in fields if f.name in names)
            main = tuple(f for f in fields if f.name not in forms.GENERATE_LAYOUT + forms.GENERATE_ADVANCED)
            w = form(main[:1])
            with gr.Accordion("Structured helper", open=False):
                helper, write = form(forms.COMPOSE_FORM), gr.Button("Write report")
            w |= form(main[1:])
            with gr.Accordion("Layout: where each finding goes", open=model.studio.takes_layout):
                w |= form(panel(forms.GENERATE_LAYOUT), model)
                from_report = gr.Button("Boxes from the report (the rule's layout)")
            with gr.Accordion("Advanced", open=False):
                w |= form(panel(forms.GENERATE_ADVANCED))
            with gr.Accordion("Adapters (LoRA from python -m training.finetune or the Train tab)", open=False):
                listing, adapter = gr.Markdown(model.adapter_listing()), form(forms.ADAPTER_FORM)
                with gr.Row():
                    load, set_weight, unload = gr.Button("Load"), gr.Button("Set weight"), gr.Button("Unload")
            with gr.Accordion("Privacy filter: replace any image that resembles a training image", open=False):
                w |= form(forms.PRIVACY_FORM)
            run = run_button("Generate", model)
        with gr.Column(scale=3):
            preview = picture(label="Live preview: the current estimate while it runs", elem_id="preview", height=256)
            gallery = gr.Gallery(label="SYNTHETIC images", columns=2, height=640, elem_id="gallery", **WHOLE)
            files = gr.File(label="PNG (16-bit, parameters in the file)", file_count="multiple", interactive=False)
            selected = gr.Textbox(visible=False)
            with gr.Row():
                to_dicom, to_study = gr.Button("Selected as DICOM (synthetic)"), gr.Button("All as one DICOM study")
                dicom = gr.File(label="DICOM", interactive=False)
    wire(write.click, model.compose, helper, w["report"])
    wire(from_report.click, model.layout_canvas, {"report": w["report"]}, w["layout_boxes"], api_name="layout_canvas")
    # the progress bar over the gallery only: the preview stays in sight while it runs
    wire(run.click, model.generate, w, [gallery, files, w["seed"], preview], run=True, api_name="generate",
         show_progress_on=[gallery])  # fmt: skip

    def recall(paths, evt: gr.SelectData):
        return *model.recall(paths[evt.index]).values(), False, paths[evt.index]

    recalled = ("report", "negative", "side_contrast", "sampler", "steps", "guidance", "seed", "layout_mode")
    recall_into = [w[k] for k in (*recalled, "layout_boxes")]
    gallery.select(recall, [files], [*recall_into, w["random_seed"], selected])
    wire(to_dicom.click, model.export_dicom, {"png": selected}, dicom)
    wire(to_study.click, model.export_study, {"pngs": files}, dicom)
    wire(load.click, model.load_adapter, adapter, listing)
    wire(set_weight.click, model.set_adapter_weight, adapter, listing)
    wire(unload.click, model.unload_adapter, {"folder": adapter["folder"]}, listing)
    return {k: w[k] for k in ("sampler", "steps", "guidance", "upscale", "side_contrast", "layout_mode")}


def inpaint_tab(model: AppModel) -> None:
    """Inpainting with a brush, and outpainting of the same upload."""
    with gr.Tab("Inpaint"), gr.Row():
        with gr.Column():
            radiograph, read = upload(model, "Radiograph", "inpaint-upload")
            window = form(forms.WINDOW_FORM)
            editor = gr.ImageEditor(**forms.EDITOR, brush=gr.Brush(**forms.BRUSH), eraser=gr.Eraser(default_size=16))
            w = {"radiograph": radiograph, "editor": editor} | form(forms.inpaint_form(model.studio))
            run = run_button("Inpaint", model)
            with gr.Accordion("Outpaint: grow the canvas of the same radiograph", open=False):
                margins, grow = {"radiograph": radiograph} | form(forms.OUTPAINT_FORM), gr.Button("Outpaint")
        with gr.Column():
            preview = picture(label="Live preview: the edited window", elem_id="inpaint-preview", height=200)
            inpainted, outpainted = views(forms.INPAINT_VIEWS), views(forms.OUTPAINT_VIEWS)
    shown = {"radiograph": radiograph} | window
    for trigger in (read.then, window["level"].release, window["width"].release, window["invert"].change):
        wire(trigger, model.windowed, shown, editor)
    follow = ("strength", "fill", "grow_px", "feather_px")
    preset = functools.partial(rebuilt, lambda p: forms.inpaint_form(model.studio, preset=p), follow)
    wire(w["preset"].change, preset, {"value": w["preset"]}, [w[k] for k in follow])
    wire(run.click, model.inpaint, w, [*inpainted, preview], run=True, api_name="inpaint",
         show_progress_on=inpainted[:1])  # fmt: skip
    wire(grow.click, model.outpaint, margins, outpainted, run=True, api_name="outpaint")


def review_tab(model: AppModel) -> None:
    """Real and synthetic side by side, the privacy screen of one image, and the blinded reader study."""
    with gr.Tab("Review"):
        with gr.Row():
            real, read_real = upload(model, "Real image (side by side, one window)", "review-real-upload")
            synthetic, read = upload(model, "Synthetic image", "review-synthetic-upload")
        window, side_by_side = form(forms.WINDOW_FORM), views(forms.REVIEW_VIEWS)
        with gr.Accordion("Privacy screen: does the synthetic image copy a training image?", open=False):
            gr.Markdown(forms.SCREEN_NOTE)
            with gr.Row():
                screen, check = form(forms.SCREEN_FORM), gr.Button("Screen")
            verdict = views(forms.SCREEN_VIEWS)
        with gr.Accordion("Blinded reader study", open=False):
            gr.Markdown("Each reader sees their own randomised, balanced sequence; answers are saved at once.")
            w = form(forms.STUDY_FORM)
            with gr.Row():
                cases = {"real": uploads(label="Real images"), "synthetic": uploads(label="Synthetic images")}
            status, current, case = gr.Markdown(), gr.State(), picture(label="Real or synthetic?", height=560)
            with gr.Row():
                add, begin, says_real, says_synthetic, results = map(gr.Button, forms.STUDY_BUTTONS)
            scores = views(forms.STUDY_RESULTS_VIEWS)
    shown = {"real": real, "synthetic": synthetic} | window
    for event in (read_real.then, read.then, *(control.change for control in window.values())):
        wire(event, model.review, shown, side_by_side, show_progress="hidden", trigger_mode="always_last")
    screen["synthetic"] = synthetic
    wire(check.click, model.screen_synthetic, screen, verdict, run=True, api_name="screen_synthetic")
    folder, shown = {"folder": w["folder"]}, [case, status, current]
    wire(add.click, model.study_add, folder | cases, status, api_name="study_add")
    wire(begin.click, model.study_next, folder | {"reader": w["reader"]}, shown, api_name="study_next")
    for button, answer in ((says_real, "real"), (says_synthetic, "synthetic")):
        record = functools.partial(model.study_answer, answer=answer)
        wire(button.click, record, w | {"current": current}, shown, api_name=f"study_answer_{answer}")
    wire(results.click, model.study_results, folder, scores, api_name="study_results")


def synthesize_tab(model: AppModel) -> None:
    """A whole synthetic dataset as a background job: the same code as ``python -m cxr_studio.synthesize``."""
    with gr.Tab("Synthesize"), gr.Row():
        with gr.Column():
            w = form(forms.synthesize_form(synthesize.MAX_BATCH))
            with gr.Row():
                run, stop = gr.Button("Start or finish", variant="primary"), gr.Button("Stop")
        poll = views(forms.SYNTHESIZE_VIEWS)
    wire(run.click, model.synthesize_start, w, poll[0], api_name="synthesize_start")
    stop.click(model.synthesize_stop, w["out"], poll[0], api_name="synthesize_stop")
    gr.Timer(2.0).tick(model.synthesize_poll, w["out"], poll, show_progress="hidden", api_name="synthesize_poll")


def train_tab(model: AppModel) -> None:
    with gr.Tab("Train"), gr.Row():
        with gr.Column():
            w = form(forms.train_form())
            with gr.Accordion("A phantom set to train on", open=False):
                phantoms, make = form(forms.PHANTOM_SET_FORM), gr.Button("Make a phantom set")
            with gr.Row():
                begin, resume, stop = gr.Button("Start", variant="primary"), gr.Button("Resume"), gr.Button("Stop")
            with gr.Accordion("Few-shot adaptation instead: an adapter for a model (written into the model folder)"):
                adapt_form, adapt = form(forms.ADAPT_FORM), gr.Button("Start adaptation")
        progress = views(forms.TRAIN_VIEWS)
    status = progress[0]
    wire(make.click, model.make_phantoms, phantoms, w["manifest"])
    wire(adapt.click, model.adapt_start, adapt_form | {k: w[k] for k in ("manifest", "out")}, status)
    wire(begin.click, model.train_start, w, status)
    wire(resume.click, functools.partial(model.train_start, resume=True), w, status)
    stop.click(model.train_stop, w["out"], status)
    gr.Timer(2.0).tick(model.train_progress, w["out"], progress, show_progress="hidden")


def model_tab(model: AppModel, follows: dict) -> None:
    """``follows``: the Generate tab's widgets that are reset to each loaded model's own defaults."""

    def load(folder: str | None):
        return model.load(folder), *rebuilt(lambda _: forms.generate_form(model.studio), follows, None)

    with gr.Tab("Model"):
        summary = gr.Markdown(model.summary())
        with gr.Row():
            label = f"A model in {model.models}/ or any folder (empty: the bundled demo), e.g. the Train tab's"
            found = gr.Dropdown(model.model_choices(), value=None, label=label, allow_custom_value=True, scale=3)
            load_found, rescan = gr.Button("Load", variant="primary"), gr.Button("Rescan")
        with gr.Accordion("Every folder found (family, MB, loadable, card)", open=False):
            table = gr.Dataframe(model.models_table(), headers=list(MODEL_COLUMNS), interactive=False, wrap=True)
        with gr.Accordion("Evaluation report (python -m cxr_studio.evaluate ... --out DIR)", open=False):
            with gr.Row():
                report, show = gr.Textbox(label="Report folder", value="runs/eval/demo"), gr.Button("Show")
            page = gr.HTML()
    wire(load_found.click, load, {"folder": found}, [summary, *follows.values()], api_name="load_model")
    rescan.click(lambda: (gr.Dropdown(model.model_choices()), model.models_table()), None, [found, table])
    wire(show.click, model.evaluation_page, {"folder": report}, page, api_name="read_evaluation")


def build_demo(model: AppModel) -> gr.Blocks:
    with gr.Blocks(title="CXR Studio", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# CXR Studio {__version__}\nModel `{model.studio.model_id}`. {forms.SYNTHETIC_NOTE}")
        follows = generate_tab(model)
        inpaint_tab(model)
        task(model, forms.INTERPOLATE_TASK)
        for tab in (review_tab, synthesize_tab, train_tab):
            tab(model)
        model_tab(model, follows)
        task(model, forms.PHANTOM_TASK)
    return demo


def launch_settings(host: str, port: int | None, auth: tuple[str, str] | None) -> dict[str, Any]:
    """The server's settings: local and private (no share link, no browser run history, no monitoring page), an
    upload limit, the page's style."""
    private = {"share": False, "run_history": False, "enable_monitoring": False, "strict_cors": True, "pwa": False}
    private |= {"mcp_server": False, "ssr_mode": False, "footer_links": [], "max_file_size": MAX_UPLOAD, "css": CSS}
    return private | {"server_name": host, "server_port": port, "auth": auth}


def from_command_line(argv: Sequence[str] | None = None) -> tuple[AppModel, dict[str, Any]]:
    """``python app.py``'s options -> (the app model with its studio loaded, the server's host, port and auth).
    An unsafe environment, a bad option or a model that does not load is an ``InputError`` saying so."""
    parser = argparse.ArgumentParser(description="CXR Studio: a local chest radiograph studio")
    parser.add_argument(
        "--model", help="a CXR Studio cascade or a diffusers SD / PixArt-Sigma / Sana folder (default: demo)"
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
    if auth is not None and len(auth) != 2:
        raise InputError("--auth must be USER:PASS")
    if problems := environment_problems():
        raise InputError("this environment is not safe to run CXR Studio:\n  " + "\n  ".join(problems))
    try:
        studio = load_model(args.model, device=args.device)
    except InputError as err:
        raise InputError(f"cannot load the model: {err}") from None
    return AppModel(studio, models=args.models), {"host": args.host, "port": args.port, "auth": auth}


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
