"""The procedural phantom: determinism, laterality, ground truth for devices, reports, labels, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cxr_studio import InputError, read_radiograph
from cxr_studio.data import phantom
from cxr_studio.data.manifest import CHEXPERT_LABELS, read_manifest
from cxr_studio.data.phantom import Device, Finding, render_case

SIZE = 128


def render(findings=(), devices=(), seed=3, size=SIZE):
    return render_case(seed, size=size, findings=findings, devices=devices)


def halves(diff: np.ndarray) -> tuple[float, float]:
    """Sum of |diff| on the image's left half (patient's right) and right half (patient's left)."""
    half = diff.shape[1] // 2
    return float(np.abs(diff[:, :half]).sum()), float(np.abs(diff[:, half:]).sum())


def test_same_seed_same_case_and_different_seed_different_case():
    a, b, c = render_case(11, size=SIZE), render_case(11, size=SIZE), render_case(12, size=SIZE)
    assert np.array_equal(a.image, b.image) and a.report == b.report
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("size", [64, 256])
def test_shape_dtype_range(size):
    case = render_case(0, size=size)
    assert case.image.shape == case.clean.shape == case.device_mask.shape == (size, size)
    assert case.image.dtype == np.float32 and case.device_mask.dtype == bool
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    assert case.image.std() > 0.1, "a radiograph has contrast"


def test_anatomy_is_a_chest():
    case = render(size=256)
    image = case.image
    lung_right, lung_left = image[90:150, 55:85].mean(), image[90:150, 170:200].mean()
    mediastinum = image[90:150, 120:136].mean()
    air_outside = image[5:30, :10].mean()
    assert air_outside < 0.1  # no body outside the patient
    assert lung_right < mediastinum - 0.2 and lung_left < mediastinum - 0.2  # dark lungs, dense mediastinum
    assert image[220:250, 40:216].mean() > lung_right + 0.2  # abdomen below the diaphragm


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("name", ["pleural_effusion", "pneumothorax", "consolidation", "mass", "nodule"])
def test_one_sided_findings_appear_on_the_correct_side(name, side):
    """PA convention: the patient's right is the image's left."""
    finding = Finding(name, side, "large", "lower" if name in phantom.ZONED else None)
    diff = render([finding]).image - render().image
    patient_right, patient_left = halves(diff)
    if side == "right":
        assert patient_right > 3 * patient_left, (patient_right, patient_left)
    else:
        assert patient_left > 3 * patient_right, (patient_right, patient_left)


@pytest.mark.parametrize("side", ["right", "left"])
def test_atelectasis_loses_volume_on_its_side(side):
    """Volume loss pulls the mediastinum toward the collapsed side, so the change is not one-sided; the plate is."""
    diff = render([Finding("atelectasis", side, "moderate")]).image - render().image
    patient_right, patient_left = halves(np.clip(diff, 0, None))
    assert (patient_right > patient_left) == (side == "right")


def test_effusion_is_brighter_and_pneumothorax_darker():
    base = render().image
    effusion = render([Finding("pleural_effusion", "right", "large")]).image - base
    pneumothorax = render([Finding("pneumothorax", "left", "large")]).image - base
    assert effusion.sum() > 0 and pneumothorax[:, SIZE // 2 :].sum() < 0


def test_severity_orders_effusion_size():
    base = render().image
    amounts = [(render([Finding("pleural_effusion", "left", s)]).image - base).sum() for s in phantom.SEVERITIES]
    assert amounts[0] < amounts[1] < amounts[2]


def test_cardiomegaly_raises_the_cardiothoracic_ratio():
    normal = render_case(5, size=SIZE, findings=(), devices=())
    large = render_case(5, size=SIZE, findings=[Finding("cardiomegaly", severity="large")], devices=())
    assert normal.anatomy["ctr"] < 0.5 and large.anatomy["ctr"] > 0.6


def test_devices_change_only_the_device_region():
    case = render(devices=[Device("pacemaker", "left"), Device("endotracheal_tube")])
    assert case.device_mask.sum() > 50
    changed = np.abs(case.image - case.clean) > 2 / 255
    near_mask = ndimage.binary_dilation(case.device_mask, iterations=2)
    assert changed.any() and not (changed & ~near_mask).any()
    no_device = render()
    assert not no_device.device_mask.any() and np.array_equal(no_device.image, no_device.clean)


def test_the_finding_mask_covers_what_the_findings_drew_and_nothing_else():
    """A nodule's mask is a disc on its own side where the image brightened; devices and a normal chest add none."""
    base = render(devices=[Device("pacemaker", "right")])
    assert not base.finding_mask.any() and not render().finding_mask.any()
    for side in ("left", "right"):
        case = render([Finding("nodule", side, "large", "upper")], devices=[Device("pacemaker", "right")])
        patient_right, patient_left = halves(case.finding_mask.astype(float))
        assert (patient_left if side == "left" else patient_right) > 20
        assert (patient_right if side == "left" else patient_left) == 0
        brighter = case.image - base.image > 0.05
        assert brighter.any() and not (brighter & ~case.finding_mask).any()
        assert 0.002 < case.finding_mask.mean() < 0.03  # about pi * 0.06^2 / 4 of the frame


def test_pacemaker_generator_sits_on_the_requested_side():
    for side, expect_image_right in (("left", True), ("right", False)):
        mask = render(devices=[Device("pacemaker", side)]).device_mask
        upper = mask[: SIZE // 2]  # the generator sits high on the chest wall
        right_half = upper[:, SIZE // 2 + 20 :].sum()
        left_half = upper[:, : SIZE // 2 - 20].sum()
        assert (right_half > left_half) == expect_image_right


def test_labels_follow_the_findings():
    labels = render(
        [Finding("pleural_effusion", "right", "small"), Finding("nodule", "left", "small", "upper")]
    ).labels
    assert set(labels) == set(CHEXPERT_LABELS)
    assert labels["Pleural Effusion"] == labels["Lung Lesion"] == labels["Lung Opacity"] == 1
    assert labels["No Finding"] == 0 and labels["Pneumothorax"] == 0 and labels["Support Devices"] == 0
    normal = render(devices=[Device("ecg_leads")]).labels
    assert normal["No Finding"] == 1 and normal["Support Devices"] == 1 and sum(normal.values()) == 2


def test_report_sections_sides_and_negations():
    report = render([Finding("pleural_effusion", "right", "large")], [Device("chest_tube", "right")]).report
    assert report.startswith("FINDINGS:") and "\nIMPRESSION:" in report
    impression = report.split("IMPRESSION:")[1]
    assert "right" in impression and "effusion" in impression.lower() and "left" not in impression
    assert "No pleural effusion" not in report and "pneumothorax" in report.lower()  # negated, as a radiologist writes
    normal = render().report
    assert "No pneumothorax" in normal or "There is no pneumothorax" in normal


@pytest.mark.parametrize(
    "make",
    [
        lambda: Finding("fracture"),
        lambda: Finding("pleural_effusion"),
        lambda: Finding("pneumothorax", "middle"),
        lambda: Finding("edema", severity="huge"),
        lambda: Device("stent"),
        lambda: render_case(0, size=8),
        lambda: render_case(0, size=4096),
        lambda: render_case(0, findings=[Finding("edema"), Finding("edema")]),
    ],
)
def test_bad_phantom_requests(make):
    with pytest.raises(InputError):
        make()


def test_cli_writes_a_valid_manifest(tmp_path, capsys):
    out = tmp_path / "set"
    assert phantom.main(["--n", "8", "--size", "64", "--seed", "2", "--out", str(out)]) == 0
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 8
    for row in rows:
        image = read_radiograph(out / row["path"])
        assert image.pixels.shape == (64, 64) and image.bit_depth == 8
        mask = read_radiograph(out / row["device_mask_path"]).pixels
        assert (mask.max() == 255) == (row["Support Devices"] == "1")
        assert (out / row["clean_path"]).is_file()
        finding_mask = read_radiograph(out / row["finding_mask_path"]).pixels
        drawn = [f for f in row["findings"].split(";") if f and not f.startswith("cardiomegaly")]  # anatomy only
        assert (finding_mask.max() == 255) == bool(drawn), row["findings"]
        assert row["dataset"] == "phantom" and row["view"] == "PA" and row["report"].startswith("FINDINGS:")
    # splits are by patient and deterministic; case i does not depend on n
    again = tmp_path / "again"
    phantom.main(["--n", "3", "--size", "64", "--seed", "2", "--out", str(again)])
    first = read_manifest(again / "manifest.csv")
    assert [r["report"] for r in first] == [r["report"] for r in rows[:3]]
    assert [r["split"] for r in first] == [r["split"] for r in rows[:3]]
    assert np.array_equal(
        read_radiograph(again / first[0]["path"]).pixels, read_radiograph(out / rows[0]["path"]).pixels
    )


def test_cli_reports_bad_arguments(tmp_path, capsys):
    assert phantom.main(["--n", "0", "--out", str(tmp_path)]) == 2
    assert "at least one image" in capsys.readouterr().err


def test_contact_sheet_is_four_by_four():
    sheet = phantom.contact_sheet(size=64)
    assert sheet.size[0] == 4 * 64 and sheet.size[1] > 4 * 64
    assert len(phantom.SHOWCASE) == 16
    shown = {f.name for findings, _ in phantom.SHOWCASE for f in findings}
    devices = {d.name for _, ds in phantom.SHOWCASE for d in ds}
    assert shown == set(phantom.FINDINGS) and devices == set(phantom.DEVICES)


def test_the_same_patient_at_several_studies():
    """Study k > 0: the same anatomy on another day (positioning, inspiration, exposure, noise, findings may
    change); study 0 is the case the seed always gave."""
    import numpy as np

    from cxr_studio.data.phantom import render_case

    first = render_case(np.random.default_rng([0, 4]), size=64)
    assert np.array_equal(render_case(np.random.default_rng([0, 4]), size=64, study=0).image, first.image)
    later = [render_case(np.random.default_rng([0, 4]), size=64, study=k) for k in (1, 2)]
    again = render_case(np.random.default_rng([0, 4]), size=64, study=2)
    assert np.array_equal(again.image, later[1].image)  # a study is reproducible
    assert all(case.anatomy["ctr"] == first.anatomy["ctr"] for case in later)  # the patient's proportions
    assert len({round(case.anatomy["rotation_deg"], 6) for case in (first, *later)}) == 3  # positioned anew
    assert not np.array_equal(later[0].image, first.image) and not np.array_equal(later[0].image, later[1].image)
    other = render_case(np.random.default_rng([0, 5]), size=64, study=1)
    assert other.anatomy["ctr"] != first.anatomy["ctr"]


def test_a_set_with_several_studies_per_patient_keeps_each_patient_in_one_split(tmp_path):
    from cxr_studio.data.manifest import read_manifest
    from cxr_studio.data.phantom import write_dataset

    rows = read_manifest(write_dataset(tmp_path / "set", n=12, size=32, seed=0, quiet=True, studies=3))
    patients = {}
    for row in rows:
        patients.setdefault(row["patient_id"], []).append(row)
    assert len(patients) == 4 and all(len(studies) == 3 for studies in patients.values())
    assert all(len({r["split"] for r in studies}) == 1 for studies in patients.values())
    assert all(sorted(r["study_id"][-2:] for r in studies) == ["s1", "s2", "s3"] for studies in patients.values())


def test_a_held_out_finding_is_drawn_only_when_asked_for(tmp_path):
    """The hiatal hernia (few-shot adaptation's new finding) never appears in a default set; added to a case it
    changes only the pixels around the gastro-oesophageal junction, the report and the labels."""
    from cxr_studio.data import phantom
    from cxr_studio.data.manifest import read_manifest

    rng = lambda: np.random.default_rng([5, 1])
    plain = phantom.render_case(rng(), size=128, findings=(), devices=())
    hernia = phantom.Finding("hiatal_hernia", None, "large")
    case = phantom.render_case(rng(), size=128, findings=(), devices=(), add_findings=(hernia,))
    changed = np.abs(case.image - plain.image) > 1e-6
    rows, cols = np.nonzero(changed)
    assert 0 < changed.mean() < 0.05 and rows.min() > 64 and cols.mean() > 64  # low, on the patient's left
    assert "hiatal hernia" in case.report.lower() and case.labels["No Finding"] == 0
    assert "hiatal_hernia" not in phantom.FINDINGS  # never sampled
    default = read_manifest(phantom.write_dataset(tmp_path / "default", n=30, size=32, seed=0, quiet=True))
    assert not any("hiatal" in r["report"].lower() for r in default)
    added = read_manifest(
        phantom.write_dataset(tmp_path / "added", n=30, size=32, seed=0, quiet=True, add_finding="hiatal_hernia")
    )
    with_hernia = [a for a in added if "hiatal_hernia" in a["findings"]]
    assert 5 < len(with_hernia) < 25 and all("hiatal hernia" in a["report"].lower() for a in with_hernia)
    for a, d in zip(added, default):  # the cases without it are the default set's own
        if "hiatal_hernia" not in a["findings"]:
            assert a["report"] == d["report"] and a["findings"] == d["findings"]
    for a, d in zip(added, default):  # the adaptation benchmark's paired control: the same case without it
        if "hiatal_hernia" in a["findings"]:
            assert phantom.report_without_added_finding(a, seed=0) == d["report"]
