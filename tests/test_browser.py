"""The app in a real browser: Playwright drives headless Chromium (Debian's, installed by .ci/run).

Opens the page, generates, uploads a 16-bit phantom with a pacemaker, paints a mask stroke over the
device, inpaints and sees the before/after; then visits every tab. Screenshots land in
``$CXR_TEST_ARTIFACTS/browser`` (default ``test-artifacts/browser``); the README shows them.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from layout_checks import change_in_boxes
from PIL import Image

import app

CHROMIUM = os.environ.get("CXR_CHROMIUM") or next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt install chromium (.ci/run does)"),
]
ARTIFACTS = (
    Path(os.environ.get("CXR_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")) / "browser"
)
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def bundle():
    import cxr_studio

    return cxr_studio.load_default()  # the bundled cascade: screenshots show real pictures


@pytest.fixture(scope="module")
def url(bundle):
    demo = app.build_demo(app.AppModel(bundle)).queue()
    _, address, _ = demo.launch(
        prevent_thread_lock=True, **{**app.launch_settings("127.0.0.1", None, None), "server_port": None}
    )
    yield address
    demo.close()


@pytest.fixture(scope="module")
def page(url):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-test.txt")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(url)
        yield tab
        browser.close()


@pytest.fixture(scope="module")
def phantom_png(tmp_path_factory):
    from cxr_studio import imaging
    from cxr_studio.data.phantom import Device, render_case

    case = render_case(np.random.default_rng(3), size=256, findings=None, devices=[Device("pacemaker", "left")])
    path = tmp_path_factory.mktemp("browser") / "radiograph.png"
    imaging.save_png(path, case.image, bit_depth=16)
    return path, case.device_mask


@pytest.fixture(scope="module")
def synthetic_png(bundle, tmp_path_factory):
    from cxr_studio import imaging

    result = bundle.generate("Large right pleural effusion.", seed=1, upscale=False)
    path = tmp_path_factory.mktemp("browser") / "synthetic.png"
    imaging.save_png(path, result.pixels[0], bit_depth=16, parameters=result.parameters_for(0))
    return path


def fetched(page, image) -> np.ndarray:
    """The pixels of an ``<img>`` the page shows, fetched as the browser fetched them."""
    source = image.get_attribute("src")
    response = page.request.get(page.evaluate("src => new URL(src, location.href).href", source))
    image = Image.open(io.BytesIO(response.body()))
    if image.mode.startswith("I"):  # the 16-bit PNGs the gallery shows as they are: to 8-bit levels
        return (np.asarray(image, dtype=np.float64) / 257).round().astype(np.int16)
    return np.asarray(image.convert("L"), dtype=np.int16)


# every image the live preview shows, in order (the page replaces its <img> as updates stream in)
WATCH_PREVIEW = """() => {
    window.previews = [];
    new MutationObserver(() => {
        const shown = document.querySelector('#preview img');
        if (shown && shown.src && window.previews.at(-1) !== shown.src) window.previews.push(shown.src);
    }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_generate(page):
    page.get_by_role("tab", name="Generate").click()
    page.get_by_label("Report").first.fill("Large right pleural effusion.")
    page.evaluate(WATCH_PREVIEW)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function("window.previews.length >= 1")
    shoot(page, "generate-preview")  # mid-run: the estimate so far
    image = page.locator("#gallery img").first
    image.wait_for()
    # the live preview showed the estimate changing while the model ran
    previews = [np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("L"), dtype=np.int16)
                for src in page.evaluate("window.previews")]  # fmt: skip
    assert len(previews) >= 3, f"{len(previews)} previews shown"
    assert np.abs(previews[0] - previews[-1]).mean() > 2, "the preview did not change during the run"
    assert image.get_attribute("alt").startswith("SYNTHETIC · seed")  # the caption carries seed and settings
    shown, frame = image.bounding_box(), page.locator("#gallery .grid-wrap").bounding_box()
    assert shown["y"] + shown["height"] <= frame["y"] + frame["height"] + 1, (
        "the radiograph runs below the gallery box"
    )
    assert image.evaluate("el => getComputedStyle(el).objectFit") == "contain"  # letterboxed, never cropped
    page.get_by_text("synthetic-seed").first.wait_for()  # the 16-bit PNG with its parameters is offered
    shoot(page, "generate")


def test_a_layout_box_drawn_elsewhere_moves_the_finding(page):
    """The Layout panel: a report naming a left lung mass, first with no layout; then the rule's box for it, dragged
    lower in the lung, drawn; from the same seed the mass appears in the dragged box (pixels, not only the page)."""
    from cxr_studio.layout import layout_from_report

    report = "Large left lung mass."
    page.get_by_role("tab", name="Generate").click()
    page.get_by_label("Report").first.fill(report)
    page.get_by_label("Random seed").first.uncheck()
    page.get_by_label("Seed", exact=True).first.fill("3")

    def generated() -> np.ndarray:
        """Generate, wait for the gallery's first image to be a new one, and fetch it."""
        shown = page.locator("#gallery img")
        before = shown.first.get_attribute("src") if shown.count() else None
        page.get_by_role("button", name="Generate", exact=True).click()
        new_image = "old => (i => i && i.getAttribute('src') !== old)(document.querySelector('#gallery img'))"
        page.wait_for_function(new_image, arg=before, timeout=TIMEOUT_MS)
        return fetched(page, shown.first)

    page.get_by_label("none", exact=True).first.check()
    first = generated()
    page.get_by_role("button", name="Boxes from the report (the rule's layout)").click()
    page.wait_for_timeout(1500)
    (old,) = [item.box for item in layout_from_report(report)]
    new = (old[0], old[1] + 0.12, old[2], old[3] + 0.12)  # the same box, lower in the same lung
    canvas = page.locator("#layout-canvas canvas").first.bounding_box()
    scale = min(canvas["width"], canvas["height"])  # the 512 px outline, fitted and centred
    left, top = canvas["x"] + (canvas["width"] - scale) / 2, canvas["y"] + (canvas["height"] - scale) / 2
    at = lambda x, y: (left + x * scale, top + y * scale)
    page.mouse.move(*at((old[0] + old[2]) / 2, (old[1] + old[3]) / 2))
    page.mouse.down()
    page.mouse.move(*at((new[0] + new[2]) / 2, (new[1] + new[3]) / 2), steps=12)
    page.mouse.up()
    page.get_by_label("drawn", exact=True).first.check()
    page.wait_for_timeout(500)
    shoot(page, "layout")
    second = generated()
    in_box, elsewhere = change_in_boxes(first, second, [new])
    assert in_box > 3 * elsewhere, (in_box, elsewhere)


def test_paint_a_stroke_and_inpaint(page, phantom_png):
    path, device = phantom_png
    page.get_by_role("tab", name="Inpaint").click()
    page.locator("#inpaint-upload input[type=file]").set_input_files(str(path))
    page.locator("#inpaint-editor canvas").last.wait_for()
    page.wait_for_timeout(2000)  # the editor draws the uploaded background
    page.get_by_role("button", name="Brush", exact=True).click()
    # One stroke over the pacemaker; the canvas element spans the editor, the image sits centred in it
    box = page.locator("#inpaint-editor canvas").last.bounding_box()
    side = min(box["width"], box["height"])
    left, top = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
    rows, cols = np.nonzero(device)
    cy, cx = rows.min() + 10, cols.max() - 12  # the generator box, top right of the lung (patient's left)
    page.mouse.move(left + side * cx / 256, top + side * cy / 256)
    page.mouse.down()
    for k in range(1, 10):
        page.mouse.move(left + side * (cx + k) / 256, top + side * (cy + k) / 256, steps=2)
    page.mouse.up()
    page.get_by_role("button", name="Inpaint", exact=True).click()
    page.locator("#inpaint-slider img").first.wait_for()
    page.locator("#inpaint-difference img").wait_for()
    page.get_by_text("edited-16bit").first.wait_for()  # the result keeps the upload's 16 bits
    shoot(page, "inpaint")
    # The pixels: fetch the result the page offers; the painted stroke changed, everything far from it did not
    link = page.locator('a[href*="edited-16bit"]').first.get_attribute("href")
    response = page.request.get(page.evaluate("href => new URL(href, location.href).href", link))
    edited = np.asarray(Image.open(io.BytesIO(response.body())))
    original = np.asarray(Image.open(path))
    assert edited.dtype == np.uint16 and edited.shape == original.shape
    changed = edited != original
    assert changed[cy - 8 : cy + 18, cx - 8 : cx + 18].mean() > 0.3  # under the stroke (and its grown edge)
    near = np.zeros_like(changed)
    near[max(0, cy - 48) : cy + 58, max(0, cx - 48) : cx + 58] = True  # the stroke, grown and feathered
    assert changed.any() and not changed[~near].any(), "pixels changed far from the painted stroke"


def test_outpaint(page, phantom_png):
    page.get_by_role("tab", name="Inpaint").click()  # the inpainting tab's upload, grown by its Outpaint panel
    clear = page.locator("#inpaint-upload button[aria-label='Clear']")
    if clear.count():  # the inpainting test's upload is still there
        clear.click()
    page.locator("#inpaint-upload input[type=file]").set_input_files(str(phantom_png[0]))
    page.wait_for_timeout(1500)
    page.get_by_text("Outpaint: grow the canvas").click()
    page.get_by_role("button", name="Outpaint", exact=True).click()
    page.locator("#outpaint-gallery img").nth(1).wait_for()  # two seeds, two surroundings
    shoot(page, "outpaint")
    # The pixels: 64 new rows on top (the form's default), the radiograph below them as uploaded, two different
    # surroundings from the two seeds
    original = np.asarray(Image.open(phantom_png[0]), dtype=np.float64)
    first, second = (fetched(page, page.locator("#outpaint-gallery img").nth(k)) for k in (0, 1))
    assert first.shape == (original.shape[0] + 64, original.shape[1]) == second.shape
    kept = np.round(original / 65535 * 255).astype(np.int16)
    assert np.abs(first[64 + 16 :] - kept[16:]).max() <= 1  # kept (the blend ramp lies in the new rows)
    assert first[:48].std() > 2 and np.abs(first[:48] - second[:48]).mean() > 1


def test_interpolate(page):
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("button", name="Interpolate", exact=True).click()
    # eight frames of the bundled cascade: about a minute alone, twice that after the other tabs' runs on a
    # 2-core machine, so this wait is longer than the others
    page.locator("#interpolate-frames img").nth(7).wait_for(timeout=3 * TIMEOUT_MS)
    shoot(page, "interpolate")
    # The pixels: eight radiographs that move from the first report's image to the second's step by step
    frames = [fetched(page, page.locator("#interpolate-frames img").nth(k)) for k in range(8)]
    steps = [np.abs(b - a).mean() for a, b in itertools.pairwise(frames)]
    assert all(f.std() > 10 for f in frames)  # radiographs, not blank tiles
    assert np.abs(frames[7] - frames[0]).mean() > max(steps)  # the ends differ more than any neighbours


def test_review_and_the_other_tabs(page, phantom_png, synthetic_png):
    page.get_by_role("tab", name="Review").click()
    page.locator("#review-real-upload input[type=file]").set_input_files(str(phantom_png[0]))
    page.locator("#review-real img").wait_for()
    page.locator("#review-synthetic-upload input[type=file]").set_input_files(str(synthetic_png))
    page.locator("#review-synthetic img").wait_for()
    shoot(page, "review")
    page.get_by_role("tab", name="Phantom").click()
    page.get_by_role("button", name="Render phantom").click()
    page.locator("#phantom-image img").wait_for()
    shoot(page, "phantom")
    page.get_by_role("tab", name="Model").click()
    loaded = page.locator("p", has_text="Loaded:")
    loaded.wait_for()
    assert "demo@" in loaded.inner_text() and "Components" in page.content()
    shoot(page, "model")
    page.get_by_role("tab", name="Train").click()
    page.get_by_role("button", name="Start", exact=True).wait_for()
    shoot(page, "train")
    assert page.locator(".toast-body.error").count() == 0  # no error notification on the way
