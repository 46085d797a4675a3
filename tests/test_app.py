"""The Gradio layer: builds, handlers map widget values, launch settings, and the thin-app rule."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from load_app import generate_inputs

import app
import cxr_studio
from cxr_studio.app_model import MAX_UPLOAD, editor_keep_mask, editor_mask

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_app_never_imports_torch():
    assert "torch" not in imported_modules(ROOT / "app.py")


def test_library_never_imports_the_ui_or_training():
    for path in (ROOT / "cxr_studio").rglob("*.py"):
        forbidden = imported_modules(path) & {"gradio", "training", "app"}
        assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"


def test_demo_builds_one_row_of_tabs_that_holds_every_widget(studio):
    """The title, then one set of tabs, then only the invisible timers: a widget built outside its tab (a button
    after a tab's block) splits the tabs in two and shows under every tab."""
    demo = app.build_demo(app.AppModel(studio))
    assert isinstance(demo, gr.Blocks)
    kinds = [type(child).__name__ for child in demo.children]
    assert kinds[:2] == ["Markdown", "Tabs"] and set(kinds[2:]) <= {"Timer"}, kinds
    tabs = [tab.label for tab in demo.children[1].children]
    assert tabs == [
        "Generate",
        "Inpaint",  # outpainting of the same upload too
        "Interpolate",
        "Review",
        "Synthesize",
        "Train",
        "Model",
        "Phantom",
    ]


def test_launch_settings_are_local_and_private():
    settings = app.launch_settings("127.0.0.1", 7860, None)
    assert settings["server_name"] == "127.0.0.1" and settings["share"] is False
    assert settings["run_history"] is False and settings["enable_monitoring"] is False
    assert settings["max_file_size"] == MAX_UPLOAD and settings["strict_cors"] is True


def test_editor_mask_is_the_union_of_painted_alpha():
    layer = np.zeros((40, 30, 4), np.uint8)
    layer[5:10, 5:10, 3] = 127  # what the see-through brush (opacity 0.5) really paints: the browser test found it
    other = np.zeros((40, 30, 4), np.uint8)
    other[20:22, 0:3, 3] = 255
    mask = editor_mask({"background": None, "layers": [layer, other], "composite": None})
    assert mask.shape == (40, 30) and (mask > 0).sum() == 25 + 6
    from cxr_studio.editing.masks import to_mask

    assert to_mask(mask, (40, 30)).sum() == 25 + 6  # the library's half-range threshold keeps the stroke
    from cxr_studio import InputError

    with pytest.raises(InputError, match="paint"):
        editor_mask({"background": None, "layers": [], "composite": None})


@pytest.fixture(scope="module")
def client(studio):
    from gradio_client import Client

    demo = app.build_demo(app.AppModel(studio)).queue()
    _, url, _ = demo.launch(
        prevent_thread_lock=True, **{**app.launch_settings("127.0.0.1", None, None), "server_port": None}
    )
    yield Client(url, verbose=False)
    demo.close()


def test_generate_through_the_api_returns_pngs_with_parameters_after_live_previews(client, studio):
    from PIL import Image

    from cxr_studio import read_png_parameters, read_radiograph

    report = "Large left pleural effusion."
    inputs = generate_inputs(
        report, sampler="ddim", steps=3, guidance=2.0, seed=7, count=2, upscale=True, side_contrast=True
    )
    job = client.submit(*inputs, api_name="/generate")
    gallery, files, seed, _ = job.result()
    previews = [update[3] for update in job.outputs()[:-1]]
    # every other step of both stages and each stage's last: 3 + sr steps, at half the first stage's size
    assert len(previews) == 2 + (studio.config.sampling.sr_num_steps + 1) // 2
    assert all(Image.open(p).size == (studio.config.image_size // 2,) * 2 for p in previews)
    assert seed == 7 and len(gallery) == 2
    paths = [f if isinstance(f, str) else f["path"] if isinstance(f, dict) else f for f in files]
    parameters = read_png_parameters(paths[1])
    assert (
        parameters["seed"] == 8
        and parameters["synthetic"] is True
        and parameters["report"] == "Large left pleural effusion."
        and parameters["side_contrast"] is True
    )
    assert read_radiograph(paths[0]).bit_depth == 16


def test_phantom_handler_through_the_api(client):
    image, _clean, report = client.predict(
        ["pleural_effusion"], "left", "large", "lower", ["pacemaker"], 4, api_name="/phantom_case"
    )
    assert "left pleural effusion" in report.lower() and "pacemaker" in report.lower()
    from PIL import Image

    assert Image.open(image).size == (512, 512)


def test_bad_input_becomes_a_notification(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="less than minimum"):  # the widget's own range check
        client.predict(*generate_inputs("x", sampler="ddim", steps=0, guidance=2.0, seed=7), api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum"):  # the seed's range, from the library's limits
        client.predict(*generate_inputs("x", sampler="ddim", steps=2, guidance=2.0, seed=2**70), api_name="/generate")
    with pytest.raises(AppError, match="characters"):  # the library's InputError, shown as is
        long = generate_inputs("x" * 20_001, sampler="ddim", steps=2, guidance=2.0, seed=7)
        client.predict(*long, api_name="/generate")


def test_auth_must_be_user_colon_password(capsys):
    assert app.main(["--auth", "nopassword"]) == 2
    assert "USER:PASS" in capsys.readouterr().err


def test_a_missing_model_folder_is_one_clear_line(tmp_path, capsys):
    assert app.main(["--model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "cannot load the model" in err and "Traceback" not in err


def launch(studio):
    from gradio_client import Client

    demo = app.build_demo(app.AppModel(studio)).queue()
    _, url, _ = demo.launch(
        prevent_thread_lock=True, **{**app.launch_settings("127.0.0.1", None, None), "server_port": None}
    )
    return demo, Client(url, verbose=False)


@pytest.mark.slow
def test_a_drawn_layout_through_the_api_puts_the_finding_in_its_box(tmp_path):
    """Through gradio_client, with the bundled cascade: one report naming a left lung mass and one seed, first with no
    layout, then with the mass's box drawn low in the left lung; the change between the two images lies in the box,
    and the second image records its box."""
    from gradio_client import handle_file
    from layout_checks import change_in_boxes
    from PIL import Image

    from cxr_studio import load_default, read_png_parameters, read_radiograph
    from cxr_studio.app_model import AppModel, annotation_for
    from cxr_studio.layout import LayoutItem

    bundle = load_default()
    canvas = AppModel(bundle, cache=tmp_path).layout_canvas("")
    Image.fromarray(canvas["image"]).save(tmp_path / "outline.png")
    box = (0.62, 0.48, 0.8, 0.66)
    drawn_boxes = annotation_for([LayoutItem("Mass", box, "left")], canvas["image"])["boxes"]
    drawn = {
        "image": handle_file(str(tmp_path / "outline.png")),
        "boxes": [{k: v for k, v in b.items() if k != "color"} for b in drawn_boxes],  # the page sends no colour
    }
    demo, client = launch(bundle)
    try:
        images = []
        for mode, boxes in (("none", None), ("drawn", drawn)):
            inputs = generate_inputs(
                "Large left lung mass.", sampler="unipc", steps=10, guidance=2.0, seed=3, layout_mode=mode,
                layout_boxes=boxes,
            )  # fmt: skip
            _, files, _, _ = client.predict(*inputs, api_name="/generate")
            png = files[0] if isinstance(files[0], str) else files[0]["path"]
            images.append(read_radiograph(png).display)
        assert read_png_parameters(png)["layout"][0]["box"] == pytest.approx(list(box), abs=0.01)
    finally:
        demo.close()
    in_box, elsewhere = change_in_boxes(images[0], images[1], [box])
    assert in_box > 3 * elsewhere, (in_box, elsewhere)


def test_inpaint_through_the_api_keeps_a_16_bit_upload_after_live_previews(client, studio, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    from cxr_studio import read_radiograph

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, (83, 97), dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "upload.png")
    layer = np.zeros((83, 97, 4), np.uint8)
    layer[30:50, 40:60] = (0, 255, 102, 127)  # the see-through brush: only the alpha counts
    Image.fromarray(layer, "RGBA").save(tmp_path / "stroke.png")
    client.predict(
        handle_file(str(tmp_path / "upload.png")), api_name="/inpaint_upload"
    )  # keeps the radiograph in the session
    editor = {"background": None, "layers": [handle_file(str(tmp_path / "stroke.png"))], "composite": None, "id": None}
    job = client.submit(editor, "", "replace region", 1.0, "original", 0, 2, 4, 5, 0, api_name="/inpaint")
    _, _, files, _ = job.result()
    previews = [update[3] for update in job.outputs()[:-1]]  # 4 steps: the window's estimate every second
    assert len(previews) == 2 and all(Image.open(p).size == (studio.config.image_size // 2,) * 2 for p in previews)
    png = next(f for f in files if str(f).endswith(".png"))
    result = read_radiograph(png)
    assert result.bit_depth == 16 and result.pixels.shape == (83, 97) and result.pixels.dtype == np.uint16
    outside = np.ones((83, 97), bool)
    outside[30 - 6 : 50 + 6, 40 - 6 : 60 + 6] = False  # the stroke grown by nothing, feathered by 2
    assert np.array_equal(result.pixels[outside], pixels[outside])
    assert not np.array_equal(result.pixels[30:50, 40:60], pixels[30:50, 40:60])


def test_a_reader_study_answer_survives_a_restart(studio, tmp_path):
    from PIL import Image

    images = []
    for k in range(4):
        path = tmp_path / f"image{k}.png"
        Image.fromarray(np.full((40, 40), 60 * k, np.uint8)).save(path)
        images.append(str(path))
    folder = str(tmp_path / "study")
    demo, client = launch(studio)
    try:
        from gradio_client import handle_file

        files = [handle_file(p) for p in images]
        assert "4 cases" in client.predict(folder, files[:2], files[2:], api_name="/study_add")
        _, status = client.predict(folder, "reader-a", api_name="/study_next")
        assert status == "Case 1 of 4"
        _, status = client.predict(folder, "reader-a", 4, api_name="/study_answer_real")
        assert status == "Case 2 of 4"
    finally:
        demo.close()
    demo, client = launch(studio)  # a new server process state: only the SQLite file carries the answer over
    try:
        _, status = client.predict(folder, "reader-a", api_name="/study_next")
        assert status == "Case 2 of 4"
        results, _ = client.predict(folder, api_name="/study_results")
        assert results["answers"] == 1
    finally:
        demo.close()


@pytest.mark.slow
def test_simultaneous_users_all_finish_and_the_queue_stays_healthy(studio):
    from load_app import run_load

    result = run_load(studio, users=4, rounds=1, steps=2)
    assert result["requests"] == 12 and not result["failures"], result["failures"]
    assert (
        result["ok"] + result["busy"] + result["skipped_after_busy_upload"] == 12
        and result["ok"] >= 1
        and result["healthy_after"]
    )


def test_startup_refuses_an_unsafe_environment(monkeypatch, capsys):
    from cxr_studio import environment

    assert environment._version("2.13.0+cpu") == (2, 13, 0) and environment._version("6.31.0rc1") == (6, 31, 0)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    assert app.main([]) == 2
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in capsys.readouterr().err
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    monkeypatch.setattr(environment.metadata, "version", lambda name: "3.0.1" if name == "pydicom" else "99.0")
    assert app.main([]) == 2
    assert "pydicom 3.0.1 is older than 3.0.2" in capsys.readouterr().err


def test_the_server_serves_no_file_outside_its_cache(client):
    import urllib.error
    import urllib.request

    for path in ("/etc/passwd", "../../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", str(ROOT / "app.py")):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{client.src.rstrip('/')}/gradio_api/file={path}", timeout=10)
        assert info.value.code in (403, 404), path


def test_review_privacy_screen_and_the_evaluation_report(client, tmp_path):
    from gradio_client import handle_file

    from cxr_studio.data.phantom import write_dataset

    manifest = write_dataset(tmp_path / "phantom", n=30, size=64, seed=0, workers=1, quiet=True)
    import csv

    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    copied = next(r for r in rows if r["split"] == "train")  # a training image itself: must be flagged
    unseen = next(r for r in rows if r["split"] != "train")  # another patient: must pass
    client.predict(handle_file(str(manifest.parent / copied["path"])), api_name="/review_synthetic_upload")
    text, nearest = client.predict(str(manifest), api_name="/screen_synthetic")
    assert "FLAGGED" in text and nearest
    client.predict(handle_file(str(manifest.parent / unseen["path"])), api_name="/review_synthetic_upload")
    text, _ = client.predict(str(manifest), api_name="/screen_synthetic")
    assert "passes the screen" in text
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no evaluation report"):
        client.predict(str(tmp_path), api_name="/read_evaluation")
    (tmp_path / "index.html").write_text("<h1>Evaluation of tiny</h1>")
    assert "Evaluation of tiny" in client.predict(str(tmp_path), api_name="/read_evaluation")


def test_interpolate_between_two_uploaded_images(client, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    for name, value in (("a.png", 40), ("b.png", 200)):
        Image.fromarray(np.full((48, 48), value, np.uint8)).save(tmp_path / name)
    client.predict(handle_file(str(tmp_path / "a.png")), api_name="/interpolate_start_image")
    client.predict(handle_file(str(tmp_path / "b.png")), api_name="/interpolate_end_image")
    frames, gif = client.predict("image", "", "", 0, 1, "", 3, api_name="/interpolate")
    assert len(frames) == 3 and all("SYNTHETIC" in f["caption"] for f in frames)
    assert Image.open(gif).format == "GIF" and Image.open(gif).n_frames >= 3


def test_synthesize_tab_runs_the_command_as_a_job_with_progress(client, studio, tmp_path):
    """Start through the API, poll until done: the set and its summary; bad input is a notification."""
    from gradio_client.exceptions import AppError

    studio.save_pretrained(tmp_path / "tiny")
    (tmp_path / "reports.txt").write_text("Left pneumothorax.\nCardiomegaly.\n")
    out = tmp_path / "set"
    with pytest.raises(AppError, match="does not exist"):
        client.predict(
            "", str(tmp_path / "nope.txt"), str(out), 1, 0, 2, 0, "", "", False, api_name="/synthesize_start"
        )
    settings = [str(tmp_path / "tiny"), str(tmp_path / "reports.txt"), str(out), 3, 0, 2, 2, "", "", False]
    assert "Started" in client.predict(*settings, api_name="/synthesize_start")
    deadline = time.time() + 120
    status = ""
    while time.time() < deadline and (not status.startswith("**done**") or "(running)" in status):
        time.sleep(0.5)
        status, summary, latest, log = client.predict(str(out), api_name="/synthesize_poll")
    assert status.startswith("**done**") and "6 of 6" in status, (status, log)
    assert summary["images"] == 6 and len(latest) == 2  # the last batch
    assert len(list((out / "images").glob("*.png"))) == 6
    assert "No job" in client.predict(str(out), api_name="/synthesize_stop")


def test_the_app_model_acts_without_a_server(studio, tmp_path):
    """Every action is a method with plain values in and out: no widgets, no server."""
    from cxr_studio.app_model import AppModel
    from cxr_studio.config import PREVIEW_SAMPLING
    from cxr_studio.imaging import read_png_parameters

    model = AppModel(studio, cache=tmp_path)
    gallery, files, first = model.generate(
        "Left pneumothorax.", negative="", sampler="ddim", steps=2, guidance=2.0, seed=5, count=2, upscale=False
    )
    assert first == 5 and [read_png_parameters(f)["seed"] for f in files] == [5, 6]
    assert all(caption.startswith("SYNTHETIC") for _, caption in gallery)
    recalled = model.recall(files[1])
    assert {k: v for k, v in recalled.items() if k != "layout_boxes"} == {
        "report": "Left pneumothorax.",
        "negative_report": "",
        "side_contrast": False,
        "sampler": "ddim",
        "num_steps": 2,
        "guidance_scale": 2.0,
        "seed": 6,
        "layout_mode": "none",  # the tiny model takes no layout: none was drawn
    }
    assert recalled["layout_boxes"]["boxes"] == []
    # Preview (fast): the library's preview settings over the form's steps and super-resolution
    _, fast, _ = model.generate(
        "Left effusion.", negative="", sampler="ddim", steps=9, guidance=2, seed=5, count=1, upscale=True, fast=True
    )
    fast_parameters = read_png_parameters(fast[0])
    assert fast_parameters["num_steps"] == PREVIEW_SAMPLING["num_steps"] and fast_parameters["upscale"] is False
    assert fast_parameters["size"] == studio.config.image_size
    assert model.export_dicom(files[0]).endswith(".dcm") and model.export_study(files).endswith(".zip")
    image, clean, report = model.phantom_case(["pleural_effusion"], "left", "large", "lower", ["pacemaker"], 3)
    assert "left" in report.lower() and Path(image).is_file() and Path(clean).is_file()
    assert "effusion" in model.compose("pleural_effusion", "right", "small", []).lower()
    with pytest.raises(cxr_studio.InputError, match="upload a radiograph"):
        model.inpaint(None, {"layers": [np.zeros((8, 8, 4), np.uint8)]})
    with pytest.raises(cxr_studio.InputError, match="both endpoints"):
        model.interpolate(mode="image", frames=3, start=None, end="x")
    assert model.review(None, None, 0.5, 1.0, False) == (None, None)
    # Stop in one session stops that session's run only
    other, mine = model.callback("other", None), model.callback("mine", None)
    model.request_stop("mine")
    assert mine(1, 2) is True and other(1, 2) is False


def test_every_handler_gets_the_arguments_it_declares(studio):
    """Gradio warns at build time when a handler's parameters do not match its inputs (a Stop lambda without a
    ``gr.Request`` annotation silently never received the session): building the app must not warn so."""
    import types
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.build_demo(app.AppModel(studio))
    mismatched = [str(w.message) for w in caught if "arguments for function" in str(w.message)]
    assert not mismatched, mismatched
    model = app.AppModel(studio)
    mine, other = model.callback("abc", None), model.callback("other", None)
    with gr.Blocks() as demo:
        app.run_button("Generate", model)  # the Stop beside it is its one event, wired to this session's run
    (stop,) = demo.fns.values()
    stop.fn({}, types.SimpleNamespace(session_hash="abc"))
    assert mine(1, 2) is True and other(1, 2) is False


def test_the_blue_brush_marks_what_must_not_change():
    layer = np.zeros((40, 30, 4), np.uint8)
    layer[5:20, 5:20] = (0, 255, 102, 127)  # green: regenerate
    keep = np.zeros((40, 30, 4), np.uint8)
    keep[10:14, 0:30] = (51, 153, 255, 127)  # blue: keep, painted over part of the green stroke
    value = {"background": None, "layers": [layer, keep], "composite": None}
    edit, kept = editor_mask(value), editor_keep_mask(value)
    assert kept.sum() == 4 * 30 and not (edit & kept).any()
    assert edit.sum() == 15 * 15 - 4 * 15
    assert editor_keep_mask({"background": None, "layers": [layer], "composite": None}) is None


def test_the_models_folder_lists_every_family_and_says_why_one_is_refused(studio, tmp_path):
    import json

    import tiny_diffusers

    from cxr_studio import forms
    from cxr_studio.app_model import AppModel

    models = tmp_path / "models"
    tiny_diffusers.build("StableDiffusionPipeline", models / "roentgen-tiny")
    (models / "roentgen-tiny" / "README.md").write_text("---\nlicense: other\n---\n# RoentGen tiny\nA test model.\n")
    studio.save_pretrained(models / "org" / "cascade")
    (models / "flux").mkdir()
    (models / "flux" / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    model = AppModel(studio, cache=tmp_path / "cache", models=models)
    choices = {path: label for label, path in model.model_choices()}
    assert set(choices) == {str(models / "roentgen-tiny"), str(models / "org" / "cascade")}
    assert "StableDiffusionPipeline" in choices[str(models / "roentgen-tiny")]
    table = {row[0]: row for row in model.models_table()}
    assert table["flux"][3] == "FluxPipeline is not supported" and table["cascade"][1] == "CXR Studio cascade"
    assert table["roentgen-tiny"][4].startswith("# RoentGen tiny")
    summary = model.load(str(models / "roentgen-tiny"))
    assert "StableDiffusionPipeline" in summary and "A test model." in summary and "unet" in summary
    fields = {f.name: f for f in forms.generate_form(model.studio)}  # the Generate form follows the model
    assert fields["sampler"].choices == tuple(model.studio.samplers) and fields["guidance"].value == 7.5
    assert fields["upscale"].value is False and fields["upscale"].interactive is False
    _, files, _ = model.generate(
        "Left pneumothorax.", negative="", sampler="dpmpp", steps=2, guidance=3.0, seed=5, count=1, upscale=False
    )
    from cxr_studio.imaging import read_png_parameters

    assert read_png_parameters(files[0])["model"] == model.studio.model_id
    assert model.studio.model_id.startswith("roentgen-tiny@")


def test_a_diffusers_model_runs_through_the_launched_app(studio, tmp_path):
    """Switch to a tiny Stable Diffusion folder without restarting, then generate and inpaint (keep mask) there."""
    import tiny_diffusers
    from gradio_client import handle_file
    from PIL import Image

    from cxr_studio import read_png_parameters, read_radiograph

    folder = tiny_diffusers.build("StableDiffusionPipeline", tmp_path / "sd")
    demo, client = launch(studio)
    try:
        loaded = client.predict(str(folder), api_name="/load_model")
        summary, _, _, guidance, upscale, side_contrast, layout_mode = loaded
        assert "StableDiffusionPipeline" in summary  # the widgets follow the model's own defaults
        assert guidance["value"] == 7.5 and upscale["value"] is False and upscale["interactive"] is False
        assert side_contrast["value"] is False and layout_mode["value"] == "none"  # it takes no layout
        inputs = generate_inputs("Large left pleural effusion.", sampler="dpmpp", steps=2, guidance=3.0, seed=7)
        _, files, _, _ = client.predict(*inputs, api_name="/generate")
        png = files[0] if isinstance(files[0], str) else files[0]["path"]
        assert read_png_parameters(png)["model"].startswith("sd@") and read_radiograph(png).pixels.shape == (32, 32)
        pixels = np.random.default_rng(0).integers(0, 65536, (48, 48), dtype=np.uint16)
        Image.fromarray(pixels).save(tmp_path / "upload.png")
        layer = np.zeros((48, 48, 4), np.uint8)
        layer[10:30, 10:30] = (0, 255, 102, 127)
        layer[18:22, 0:48] = (51, 153, 255, 127)  # the keep brush across the edit
        Image.fromarray(layer, "RGBA").save(tmp_path / "stroke.png")
        client.predict(handle_file(str(tmp_path / "upload.png")), api_name="/inpaint_upload")
        editor = {
            "background": None,
            "layers": [handle_file(str(tmp_path / "stroke.png"))],
            "composite": None,
            "id": None,
        }
        _, _, files, _ = client.predict(
            editor, "", "replace region", 1.0, "original", 0, 2, 2, 5, 0, api_name="/inpaint"
        )
        result = read_radiograph(next(f for f in files if str(f).endswith(".png"))).pixels
        assert np.array_equal(result[18:22], pixels[18:22])  # kept, bit for bit
        assert np.array_equal(result[36:], pixels[36:]) and not np.array_equal(
            result[10:18, 10:30], pixels[10:18, 10:30]
        )
    finally:
        demo.close()


def test_every_form_field_is_a_keyword_of_its_action(studio):
    """A form and the action it feeds cannot drift apart: each field names a parameter of that action."""
    import inspect

    from cxr_studio import forms
    from cxr_studio.app_model import AppModel

    model = AppModel(studio)
    pairs = [
        (forms.generate_form(studio) + forms.PRIVACY_FORM, model.generate),
        (forms.COMPOSE_FORM, model.compose),
        (forms.inpaint_form(studio), model.inpaint),
        (forms.OUTPAINT_FORM, model.outpaint),
        (forms.INTERPOLATE_FORM, model.interpolate),
        (forms.synthesize_form(4), model.synthesize_start),
        (forms.PHANTOM_FORM, model.phantom_case),
        (forms.PHANTOM_SET_FORM, model.make_phantoms),
        (forms.WINDOW_FORM, model.review),
        (forms.WINDOW_FORM, model.windowed),
        (forms.ADAPTER_FORM, model.load_adapter),
        (forms.STUDY_FORM, model.study_answer),
        (forms.train_form(), model.train_start),
        (forms.ADAPT_FORM, model.adapt_start),
    ]
    tasks = [forms.INTERPOLATE_TASK, forms.PHANTOM_TASK]  # a tab of one action, named in the data
    pairs += [(task.fields, getattr(model, task.action)) for task in tasks]
    for task in tasks:  # inputs feed, views show
        assert not {f.kind for f in task.fields} & set(forms.VIEWS) and {f.kind for f in task.views} <= set(
            forms.VIEWS
        )
    for fields, action in pairs:
        accepted = set(inspect.signature(action).parameters)
        assert {f.name for f in fields} <= accepted, (action.__name__, {f.name for f in fields} - accepted)
        for f in fields:
            if f.kind == "slider":
                assert f.low <= f.value <= f.high, f
            if f.kind in ("choice", "radio"):
                assert f.value in f.choices, f
    with pytest.raises(ValueError, match="kind"):
        forms.Field("x", "colour", "X")
