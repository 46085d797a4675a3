"""Layouts: one storage format, the rule that reads one from a report, the model's input, and every path that
carries a layout (generate, a batch, inpainting, synthesis, recall, the placement measurement)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cxr_studio import CXRStudio, InputError
from cxr_studio.data import phantom
from cxr_studio.layout import (
    LAYOUT_GROUPS,
    LayoutItem,
    center_square,
    layout_from_report,
    layout_to_json,
    parse_layout,
    rasterize,
    reframe,
)
from cxr_studio.models.latent_unet import add_input_channels, layout_channels

REPORT = "Large left pleural effusion. Right chest wall pacemaker. No pneumothorax."


@pytest.fixture(scope="module")
def laid_out() -> CXRStudio:
    """The tiny preset with layout channels added (zero weights), then those weights made non-zero so a layout
    changes what is drawn."""
    studio = CXRStudio.from_preset("tiny", seed=0)
    add_input_channels(studio.latent_unet, layout=len(LAYOUT_GROUPS))
    conv = studio.latent_unet.conv_in
    with torch.no_grad():
        conv.weight[:, -len(LAYOUT_GROUPS) :] = 0.5
    return studio


def test_a_layout_round_trips_through_its_json_and_bad_ones_say_what_is_accepted():
    layout = (LayoutItem("Nodule", (0.1, 0.2, 0.3, 0.4), "right"), LayoutItem("cardiomegaly", (0.3, 0.4, 0.7, 0.8)))
    assert parse_layout(layout_to_json(layout)) == layout
    assert parse_layout("") == () and parse_layout(None) == () and parse_layout("[]") == ()
    assert parse_layout([{"item": "Mass", "box": [0, 0, 1, 1]}])[0].group == "Mass"
    assert parse_layout([{"label": "Nodule/Mass", "box": [0, 0, 0.5, 0.5]}])[0].group == "Nodule"  # VinDr's name
    assert LayoutItem("cardiomegaly", (0, 0, 1, 1)).group is None  # stored, drawn by no channel
    for bad, said in (
        ("{", "not JSON"),
        ('{"label": "Nodule"}', "a list"),
        ([{"label": "Nodule"}], "'label' and 'box'"),
        ([{"label": "Nodule", "box": [0.5, 0.1, 0.2, 0.3]}], "0 <= x0 < x1"),
        ([{"label": "Nodule", "box": [0, 0, 2, 1]}], "x1 <= 1"),
        ([{"label": "Nodule", "box": ["a", 0, 1, 1]}], "four numbers"),
        ([{"label": "Nodule", "box": [0, 0, 1, 1], "side": "up"}], "'left', 'right'"),
    ):
        with pytest.raises(InputError, match=said):
            parse_layout(bad)


def test_rasterize_covers_each_groups_boxes_by_area_and_nothing_else():
    layout = (LayoutItem("Nodule", (0.25, 0.5, 0.5, 0.625)), LayoutItem("ecg_leads", (0, 0, 1, 1)))
    maps = rasterize(layout, 8)
    assert maps.shape == (len(LAYOUT_GROUPS), 8, 8) and maps.dtype == np.float32
    nodule = maps[LAYOUT_GROUPS.index("Nodule")]
    assert nodule.sum() == pytest.approx(0.25 * 0.125 * 64)  # the box's area in cells
    assert nodule[4, 2] == 1.0 and nodule[3, 2] == 0.0 and maps.sum() == nodule.sum()  # the lead: no group
    partial = rasterize((LayoutItem("Mass", (0.0, 0.0, 0.3, 0.3)),), 4)[LAYOUT_GROUPS.index("Mass")]
    assert partial[1, 1] == pytest.approx(0.2 * 0.2) and partial[0, 0] == 1.0  # a fifth of the cell each way
    assert not rasterize(None, 4).any() and not rasterize((), 4).any()


def test_reframing_and_the_centre_crop_map_boxes_to_the_part_kept():
    item = LayoutItem("Nodule", (0.5, 0.25, 0.75, 0.5))
    assert reframe((item,), (0.5, 0.0, 1.0, 1.0))[0].box == (0.0, 0.25, 0.5, 0.5)
    assert reframe((item,), (0.0, 0.6, 0.4, 1.0)) == ()  # outside the frame
    # a landscape image 200 x 100: its centred square is x in [50, 150] px, i.e. [0.25, 0.75] normalised
    wide = center_square((LayoutItem("Mass", (0.25, 0.0, 0.5, 1.0)),), width=200, height=100)
    assert wide[0].box == pytest.approx((0.0, 0.0, 0.5, 1.0))
    assert center_square((item,), width=64, height=64) == (item,)


def test_the_rule_places_every_sided_item_the_report_names_on_its_side_and_nothing_else():
    rule = layout_from_report(REPORT)
    assert {(i.item, i.side) for i in rule} == {("Pleural effusion", "left"), ("Pacemaker/ICD generator", "right")}
    for item in rule:  # the patient's left is the image's right
        centre = (item.box[0] + item.box[2]) / 2
        assert (centre > 0.5) == (item.side == "left")
    assert layout_from_report("No pneumothorax. Normal chest radiograph.") == ()
    assert layout_from_report("Moderate cardiomegaly. Bilateral effusions.") == layout_from_report(
        "Left effusion. Right effusion."
    )  # both sides
    upper, lower = (layout_from_report(f"Nodule in the right {z} zone.")[0].box for z in ("upper", "lower"))
    assert upper[1] < lower[1]
    small, large = (layout_from_report(f"{s} mass in the left upper zone.")[0].box for s in ("Small", "Large"))
    assert small[2] - small[0] < large[2] - large[0]


def test_the_phantom_writes_each_items_extent_and_the_rule_finds_most_of_them():
    """The phantom's boxes column: one box per finding and device, where it drew it (a pacemaker's generator on
    its side of the chest wall); the rule's box contains the drawn box's centre for nearly every sided item."""
    from cxr_studio.evaluation.placement import rule_agreement

    case = phantom.render_case(
        3,
        size=128,
        findings=(phantom.Finding("nodule", "left", "large", "upper"),),
        devices=(phantom.Device("pacemaker", "right"),),
    )
    (nodule,) = [i for i in case.layout if i.item == "Nodule"]
    (generator,) = [i for i in case.layout if i.group == "Pacemaker/ICD generator"]
    assert nodule.box[0] > 0.5 and nodule.side == "left" and generator.box[2] < 0.5
    assert nodule.box[2] - nodule.box[0] < 0.1  # a nodule, not the lung
    columns = case.manifest_columns()
    assert parse_layout(columns["boxes"]) == case.layout
    rows = [phantom.render_case(np.random.default_rng([9, i]), size=96).manifest_columns() for i in range(60)]
    agreement = rule_agreement(rows)
    assert agreement["boxes"] > 20 and agreement["contains_truth_centre"] >= 0.85


def test_generate_draws_the_layout_records_it_per_image_and_recall_restores_it(laid_out, tmp_path):
    from cxr_studio.app_model import AppModel
    from cxr_studio.imaging import save_png

    drawn = [{"label": "Nodule", "box": [0.1, 0.1, 0.3, 0.3]}]
    auto = laid_out.generate(REPORT, seed=3, upscale=False)
    none = laid_out.generate(REPORT, seed=3, upscale=False, layout=None)
    boxed = laid_out.generate(REPORT, seed=3, upscale=False, layout=drawn)
    assert auto.parameters["layout_mode"] == "auto" and none.parameters["layout_mode"] == "none"
    assert auto.parameters_for(0)["layout"] == json.loads(layout_to_json(layout_from_report(REPORT)))
    assert none.parameters_for(0)["layout"] is None and boxed.parameters["layout_mode"] == "drawn"
    assert not np.array_equal(auto.pixels, none.pixels) and not np.array_equal(boxed.pixels, auto.pixels)
    again = laid_out.generate(REPORT, seed=3, upscale=False, layout=drawn)
    assert np.array_equal(again.pixels, boxed.pixels)  # reproducible from its parameters
    batch = laid_out.generate_batch([REPORT, REPORT], seeds=[3, 3], layouts=[drawn, None], upscale=False)
    assert batch.parameters_for(0)["layout"] == boxed.parameters_for(0)["layout"]
    assert [batch.parameters_for(i)["layout"] is None for i in range(2)] == [False, True]
    np.testing.assert_allclose(batch.pixels[1], none.pixels[0], atol=2e-6)
    png = tmp_path / "boxed.png"
    save_png(png, boxed.pixels[0], parameters=boxed.parameters_for(0), synthetic=True)
    app = AppModel(laid_out, cache=tmp_path)
    recalled = app.recall(str(png))
    assert recalled["layout_mode"] == "drawn" and len(recalled["layout_boxes"]["boxes"]) == 1
    from cxr_studio.app_model import layout_from_annotation

    assert layout_from_annotation(recalled["layout_boxes"])[0].box == pytest.approx((0.1, 0.1, 0.3, 0.3), abs=0.01)
    with pytest.raises(InputError, match="one layout per report"):
        laid_out.generate_batch([REPORT], seeds=[1], layouts=[None, None])


def test_a_model_without_layout_channels_takes_auto_as_none_and_refuses_a_drawn_layout():
    plain = CXRStudio.from_preset("tiny", seed=0)
    assert layout_channels(plain.latent_unet) == 0 and not plain.takes_layout
    result = plain.generate(REPORT, seed=1, upscale=False)
    assert result.parameters["layout_mode"] == "off: the model takes no layout"
    assert result.parameters_for(0)["layout"] is None
    with pytest.raises(InputError, match="takes no layout"):
        plain.generate(REPORT, seed=1, upscale=False, layout=[{"label": "Nodule", "box": [0, 0, 0.5, 0.5]}])


def test_zero_layout_weights_draw_what_the_model_drew_before():
    """Layout channels are added with zero weights: the same images, with or without a layout."""
    plain = CXRStudio.from_preset("tiny", seed=0)
    before = plain.generate(REPORT, seed=5, upscale=False).pixels
    add_input_channels(plain.latent_unet, layout=len(LAYOUT_GROUPS))
    assert plain.takes_layout
    np.testing.assert_allclose(plain.generate(REPORT, seed=5, upscale=False).pixels, before, atol=1e-5)


def test_inpainting_adds_a_finding_where_its_box_is_and_leaves_the_rest_bit_for_bit(laid_out):
    rng = np.random.default_rng(0)
    image = (rng.random((80, 96)) * 65535).astype(np.uint16)
    mask = np.zeros(image.shape, np.uint8)
    mask[10:40, 50:90] = 255
    box = [50 / 96, 10 / 80, 90 / 96, 40 / 80]
    with_box = laid_out.inpaint(image, mask, report="Left nodule.", preset="replace region", seed=2,
                                layout=[{"label": "Nodule", "box": box, "side": "left"}])  # fmt: skip
    without = laid_out.inpaint(image, mask, report="Left nodule.", preset="replace region", seed=2)
    assert with_box.parameters["layout"][0]["label"] == "Nodule" and without.parameters["layout"] is None
    assert not np.array_equal(with_box.image, without.image)
    untouched = with_box.mask == 0
    assert np.array_equal(with_box.image[untouched], image[untouched])


def test_the_placement_measurement_pairs_the_same_noise_and_finds_the_centre_of_the_change(laid_out):
    from cxr_studio.evaluation.placement import centre_of_change, inside, measure, random_boxes

    a, b = np.zeros((100, 200)), np.zeros((100, 200))
    a[20:40, 150:170] = 1.0  # a blob drawn ...
    a[:, 10] = 1.0  # ... and a thin edge that moved
    assert centre_of_change(a, b) == pytest.approx((0.8, 0.3), abs=0.02) and centre_of_change(b, b) is None
    assert inside((0.8, 0.3), (0.7, 0.2, 0.9, 0.4)) and not inside(None, (0, 0, 1, 1))
    boxes = random_boxes("Nodule", 4, np.random.default_rng(0))
    assert [box_centre_x > 0.5 for box_centre_x in ((b.box[0] + b.box[2]) / 2 for b in boxes)] == [
        False,
        True,
        False,
        True,
    ]
    result = measure(laid_out, items=("Nodule",), boxes=2, seed=0)["Nodule"]
    assert len(result["pairs"]) == 2 and 0.0 <= result["inside"] <= 1.0
    with_item, without = result["images"]
    assert with_item.shape == without.shape and not np.array_equal(with_item, without)
    with pytest.raises(InputError, match="layout channels"):
        measure(CXRStudio.from_preset("tiny", seed=0), boxes=1)


def test_the_layout_enters_only_at_the_timesteps_its_interval_allows(laid_out):
    """``SamplingDefaults.layout_min_timestep``: above every step the layout changes nothing (the report alone);
    without it the same layout changes the image; the interval is recorded in the parameters."""
    drawn = [{"label": "Mass", "box": [0.6, 0.2, 0.8, 0.4]}]
    never = laid_out.with_sampling({"layout_min_timestep": 10_000})
    with_layout = never.generate(REPORT, seed=4, upscale=False, layout=drawn)
    assert np.array_equal(with_layout.pixels, never.generate(REPORT, seed=4, upscale=False, layout=None).pixels)
    assert with_layout.parameters["layout_min_timestep"] == 10_000
    always = laid_out.generate(REPORT, seed=4, upscale=False, layout=drawn).pixels
    assert not np.array_equal(always, laid_out.generate(REPORT, seed=4, upscale=False, layout=None).pixels)
