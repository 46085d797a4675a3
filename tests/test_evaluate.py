"""The evaluation suite: metrics against references, the finding classifier, the privacy screen, and
``python -m cxr_studio.evaluate`` end to end on the tiny preset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxr_studio import CXRStudio
from cxr_studio.data.phantom import write_dataset
from cxr_studio.evaluation.distribution import fid, kid, precision_recall
from cxr_studio.evaluation.metrics import ms_ssim
from cxr_studio.evaluation.privacy import PrivacyScreen, plant_copies
from cxr_studio.labels import SIDE_TARGETS, TARGETS, side_target, targets_for
from cxr_studio.models.classifier import FindingClassifier


class Identity(torch.nn.Module):
    """Features are the input: lets torchmetrics score the very features we score."""

    num_features = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    return rng.normal(size=(150, 8)), rng.normal(0.3, 1.2, size=(150, 8))


def test_fid_and_kid_match_torchmetrics_on_the_same_features(features):
    tm_fid = pytest.importorskip("torchmetrics.image.fid")
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = features
    reference = tm_fid.FrechetInceptionDistance(feature=Identity(), normalize=False).double()
    reference.update(torch.from_numpy(a), real=True)
    reference.update(torch.from_numpy(b), real=False)
    assert fid(a, b) == pytest.approx(float(reference.compute()), rel=1e-9)
    reference = KernelInceptionDistance(feature=Identity(), subsets=1, subset_size=150).double()
    reference.update(torch.from_numpy(a), real=True)
    reference.update(torch.from_numpy(b), real=False)
    assert kid(a, b, subsets=1, subset_size=150)[0] == pytest.approx(float(reference.compute()[0]), rel=1e-9)


def test_distribution_metrics_known_values(features):
    a, _ = features
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3)) + [2.0, 0.0, 0.0]
    assert fid(x, y) == pytest.approx(4.0, abs=0.25)  # |mu1 - mu2|^2 with equal covariances
    assert abs(kid(x, rng.normal(size=(4000, 3)), subsets=5, subset_size=500)[0]) < 0.02
    precision, recall = precision_recall(a, a)
    assert precision == recall == 1.0
    far = precision_recall(a, a + 100.0)
    assert far == (0.0, 0.0)
    precision, recall = precision_recall(x[:300], x[:300] * 0.1)  # collapsed fakes: precise, no recall
    assert precision > 0.9 and recall < 0.3


def test_ms_ssim_matches_torchmetrics_and_known_cases():
    tm = pytest.importorskip("torchmetrics.functional.image")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 192, 192, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ours = ms_ssim(x, y, data_range=1.0)
    reference = tm.multiscale_structural_similarity_index_measure(
        x, y, data_range=1.0, reduction="none", kernel_size=11, sigma=1.5
    )
    assert torch.allclose(ours, reference.float(), atol=2e-3), (ours, reference)
    assert torch.allclose(ms_ssim(x, x, data_range=1.0), torch.ones(2))
    assert ms_ssim(x[:, :, :32, :32], y[:, :, :32, :32], data_range=1.0).shape == (2,)  # small images still scored


def test_targets_from_a_manifest_row():
    row = {
        "Pleural Effusion": "1",
        "Cardiomegaly": "-1",
        "Edema": "",
        "findings": "pleural_effusion:left:small;cardiomegaly:both:large",
        "devices": "pacemaker:right;ecg_leads;chest_tube:left",
    }
    targets, known = targets_for(row)
    assert targets[TARGETS.index("Pleural Effusion")] == 1 and known[TARGETS.index("Cardiomegaly")] == 0
    on = {name for name, value in zip(TARGETS, targets) if value and name in SIDE_TARGETS}
    assert on == {"Pleural effusion, left", "Pacemaker/ICD generator, right", "Chest tube, left"}
    assert known[[TARGETS.index(t) for t in SIDE_TARGETS]].all()
    # no findings / devices columns: their side targets are unknown, not negative
    _, known = targets_for({"Edema": "1", "findings": ""})
    assert known[side_target("Nodule", "left")] == 1 and known[side_target("Chest tube", "left")] == 0
    assert targets_for({"Edema": "1"})[1][side_target("Nodule", "right")] == 0


def test_named_side_only_counts_a_drawing_on_both_sides_as_wrong():
    """The old relative measure (p(named) > p(other)) passes a finding drawn on both sides; this one cannot."""
    from cxr_studio.evaluation.classifier import side_verdicts

    rows = [{"findings": "mass:left:large:upper", "devices": ""}] * 4 + [
        {"findings": "", "devices": "chest_tube:right"}
    ]
    p = np.zeros((5, len(TARGETS)), np.float32)
    left, right = side_target("Mass", "left"), side_target("Mass", "right")
    p[0, left] = 0.9  # named side only
    p[1, [left, right]] = 0.9, 0.8  # both sides: the relative measure calls this right
    p[2, right] = 0.9  # wrong side
    p[3, [left, right]] = 0.2, 0.1  # missed (under the threshold), relatively "right"
    p[4, side_target("Chest tube", "right")] = 0.7
    verdict = side_verdicts(p, rows, {name: 0.5 for name in TARGETS})
    mass = verdict["per_item"]["Mass"]
    assert (mass["named_side_only"], mass["both_sides"], mass["wrong_side"], mass["missed"]) == (1, 1, 1, 1)
    assert verdict["per_item"]["Chest tube"]["rate"] == 1.0 and verdict["per_item"]["Nodule"]["rate"] is None
    assert verdict["rate"] == 2 / 5 and verdict["relative_accuracy"] == 4 / 5
    # a per-target threshold moves a verdict: the chest tube at 0.7 is missed under a 0.8 cut
    strict = side_verdicts(p, rows, {**{name: 0.5 for name in TARGETS}, "Chest tube, right": 0.8})
    assert strict["per_item"]["Chest tube"]["missed"] == 1


def test_thresholds_maximise_balanced_accuracy():
    from cxr_studio.evaluation.classifier import fit_thresholds

    j = side_target("Nodule", "left")
    probabilities = np.zeros((6, len(TARGETS)), np.float32)
    probabilities[:, j] = [0.1, 0.2, 0.3, 0.35, 0.6, 0.9]
    targets = np.zeros_like(probabilities)
    targets[3:, j] = 1  # positives 0.35, 0.6, 0.9: any cut between 0.3 and 0.35 separates them
    thresholds = fit_thresholds(probabilities, targets, np.ones_like(probabilities))
    assert 0.3 < thresholds["Nodule, left"] < 0.35
    assert thresholds["Edema"] == 0.5  # no positives: the default


def test_classifier_saves_and_loads(tmp_path):
    from cxr_studio.models.classifier import ClassifierConfig

    model = FindingClassifier(ClassifierConfig(image_size=32)).eval()
    model.thresholds = {"Nodule, left": 0.25}
    x = torch.randn(2, 1, 32, 32)
    model.save(tmp_path / "judge")
    loaded = FindingClassifier.load(tmp_path / "judge")
    assert torch.equal(model(x), loaded(x)) and model.features(x).shape == (2, 256)
    assert loaded.thresholds == {"Nodule, left": 0.25}


def test_precision_recall_needs_more_images_than_neighbours():
    from cxr_studio import InputError

    with pytest.raises(InputError, match="at least 4 images in each set; got 3 real"):
        precision_recall(np.zeros((3, 4)), np.zeros((10, 4)))


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("eval") / "phantom", n=60, size=64, seed=0, workers=1, quiet=True)


def test_the_privacy_screen_flags_planted_copies_and_passes_other_patients(phantoms):
    from cxr_studio.evaluation.classifier import load_split

    train, *_ = load_split(phantoms, "train", size=64)
    test, *_ = load_split(phantoms, "test", size=64)
    screen = PrivacyScreen(train[10:])
    screen.calibrate(sample=None)
    copies = screen.screen(plant_copies(train[10:20], seed=3))
    assert np.mean([m.flagged for m in copies]) >= 0.8
    assert np.mean([m.nearest == i for i, m in enumerate(copies)]) >= 0.8  # traced to the right patient
    unseen = screen.screen(np.concatenate([train[:10], test]))  # other patients, never in the screen's set
    assert np.mean([m.flagged for m in unseen]) <= 0.1


def inception_stand_in(folder) -> str:
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)

    path = folder / "inception-stand-in.pt"
    torch.jit.script(Net()).save(str(path))
    return str(path)


def raddino_stand_in(folder: Path, *, seed: int = 0) -> Path:
    """A randomly initialised model of RadDINO's architecture (DINOv2, patch 14), small, with its preprocessor
    settings: what ``microsoft/rad-dino`` looks like on disk, never downloaded. Its figures are not RadDINO's."""
    import json

    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14, image_size=56
    )
    path = folder / "rad-dino-stand-in"
    Dinov2Model(config).save_pretrained(path)
    settings = {"crop_size": {"height": 56, "width": 56}, "image_mean": [0.53] * 3, "image_std": [0.26] * 3}
    (path / "preprocessor_config.json").write_text(json.dumps(settings))
    return path


def vgg16_stand_in(folder):
    from safetensors.torch import save_file

    from cxr_studio.evaluation.perceptual import vgg16_features

    path = folder / "vgg16.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in vgg16_features().state_dict().items()}, str(path))
    return path


def test_evaluate_command_end_to_end_on_the_tiny_preset(phantoms, tmp_path, monkeypatch):
    from cxr_studio import evaluate

    tiny = tmp_path / "tiny"
    CXRStudio.from_preset("tiny").save_pretrained(tiny)
    out = tmp_path / "report"
    code = evaluate.main(
        [
            "--model",
            str(tiny),
            "--manifest",
            str(phantoms),
            "--out",
            str(out),
            "--num-samples",
            "6",
            "--judge-size",
            "32",
            "--classifier-steps",
            "5",
            "--utility-samples",
            "6",
            "--utility-steps",
            "5",
            "--steps-sweep",
            "2,3",
            "--device-cases",
            "2",
            "--sr-images",
            "2",
            "--privacy-calibration",
            "10",
            "--inception",
            str(inception_stand_in(tmp_path)),
            "--raddino",
            str(raddino_stand_in(tmp_path)),
            "--vgg16",
            str(vgg16_stand_in(tmp_path)),
            "--sheet-seeds",
            "2",
            "--export-chexgenbench",
            str(tmp_path / "chexgenbench"),
        ]
    )
    assert code == 0
    check_chexgenbench_layout(tmp_path / "chexgenbench", samples=6)
    report = json.loads((out / "report.json").read_text())
    page = (out / "index.html").read_text()
    # the judge's own figures on real images come first; a judge under 97 % named-side-only is flagged as void
    judge_real = report["classifier_on_real_test"]
    assert judge_real["valid"] == (judge_real["laterality"]["rate"] >= 0.97)
    assert ("its laterality verdicts on samples mean nothing" in page) == (not judge_real["valid"])
    assert report["judge_thresholds_from"] == "val split"
    sheet = report["prompt_sheet"]
    assert (
        sheet["laterality_real"]["cases"] == sheet["laterality_samples"]["cases"] == 16 * 2
    )  # 8 items x 2 sides x 2 seeds
    assert set(sheet["laterality_samples"]["per_item"]) == set(report["faithfulness"]["laterality"]["per_item"])
    assert page.count("prompt sheet") == 0 and "Prompt sheet" in page and "pleural effusion, left" in page
    # the sheet's own command with the saved judge: the same real phantoms, the same verdicts, and its samples judged
    from cxr_studio.evaluation import prompt_sheet

    png = tmp_path / "sheet.png"
    assert (
        prompt_sheet.main(
            ["--model", str(tiny), "--out", str(png), "--seeds", "2", "--judge", str(out / "classifier")]
        )
        == 0
    )
    quick = json.loads(png.with_suffix(".json").read_text())
    assert quick["laterality_real"] == sheet["laterality_real"]
    assert quick["laterality_samples"]["cases"] == sheet["laterality_samples"]["cases"]
    assert Image.open(png).height == (8 + 3) * (32 + 16)  # tiles at the judge's 32 px
    assert "How this compares" in page and "Sana 0.6B" in page and "the phantom is not MIMIC-CXR" in page
    assert "<b>this model</b>" in page  # our RadDINO-space row (the stand-in's, named as such) heads the table
    for key in (
        "reconstruction",
        "realism",
        "realism_inception",
        "realism_raddino",
        "realism_per_finding",
        "diversity",
        "faithfulness",
        "against_steps",
        "utility",
        "device_removal",
        "privacy",
    ):
        assert key in report, key
    rows = report["reconstruction"]
    assert 0 <= rows["autoencoder"]["ms_ssim"] <= 1 and rows["autoencoder"]["lpips"] >= 0
    for row in ("autoencoder_plus_super_resolution", "autoencoder_plus_bicubic"):  # against the real 64 px originals
        assert rows[row]["images"] == 2 and rows[row]["size"] == 64 and rows[row]["lpips"] >= 0
    assert report["realism"]["fid"] >= 0 and 0 <= report["realism"]["precision"] <= 1
    # FID's floor at the samples' count: as many real validation images as samples, against the test images
    assert report["realism"]["fid_real_same_size_reference"] > 0
    assert report["realism"]["fid_real_same_size_images"].endswith("real images (val split) against the test images")
    assert [s["steps"] for s in report["against_steps"]] == [2, 3]
    assert "<svg" in (out / "index.html").read_text() and "data:image/png;base64," in (out / "index.html").read_text()
    assert (out / "classifier" / "model.safetensors").is_file()
    assert evaluate.main(["--model", str(tiny), "--manifest", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2


def test_a_small_manifest_is_an_input_error_that_says_how_many(tmp_path, capsys):
    """Regression: 32 phantoms with --num-samples 8 crashed with an IndexError inside precision/recall."""
    from cxr_studio import evaluate

    small = write_dataset(tmp_path / "small", n=32, size=64, seed=0, workers=1, quiet=True)
    tiny = tmp_path / "tiny"
    CXRStudio.from_preset("tiny").save_pretrained(tiny)
    code = evaluate.main(
        [
            "--model",
            str(tiny),
            "--manifest",
            str(small),
            "--out",
            str(tmp_path / "r"),
            "--num-samples",
            "8",
            "--judge-size",
            "32",
            "--classifier-steps",
            "2",
        ]
    )
    assert code == 2
    assert "need at least 4 of each" in capsys.readouterr().err


def test_privacy_enhancing_sampling_replaces_flagged_images(phantoms):
    from cxr_studio.evaluation.classifier import load_split
    from cxr_studio.evaluation.privacy import generate_private

    studio = CXRStudio.from_preset("tiny")
    train, *_ = load_split(phantoms, "train", size=32)
    screen = PrivacyScreen(train)
    screen.calibrate(sample=None)
    result, rejected = generate_private(
        studio, "Small left pleural effusion.", screen=screen, num_images=2, seed=5, upscale=False
    )
    assert len(result.seeds) == 2 and result.parameters["privacy_screen"]["rejected_seeds"] == rejected
    screen.threshold = -1.0  # every image looks like a training image: nothing may pass
    from cxr_studio import InputError

    with pytest.raises(InputError, match="resembled training images"):
        generate_private(studio, "x", screen=screen, num_images=1, seed=0, max_rounds=2, upscale=False)


def test_benchmark_scaling_section_and_plots(tmp_path):
    from cxr_studio import benchmark

    tiny = tmp_path / "tiny"
    CXRStudio.from_preset("tiny").save_pretrained(tiny)
    scaling = benchmark.bench_scaling(str(tiny), steps_grid=(2, 4), batches=(1, 2), sizes=(32, 64))
    assert set(scaling["seconds_vs_steps"]) == {2, 4} and set(scaling["decode_seconds_vs_size"]) == {32, 64}
    assert all(v["images_per_s"] > 0 for v in scaling["batch"].values())
    paths = benchmark.write_plots({"scaling": scaling}, tmp_path / "plots")
    assert len(paths) == 3 and all(p.read_text().startswith("<svg") for p in paths)


def test_the_sr_steps_benchmark_converges_on_its_reference(tmp_path):
    from cxr_studio import benchmark

    tiny = tmp_path / "tiny"
    CXRStudio.from_preset("tiny").save_pretrained(tiny)
    table = benchmark.bench_sr_samplers(str(tiny), images=2, steps_grid=(1, 8), reference_steps=8)
    ddim = {row["steps"]: row for row in table["results"].values() if row["sampler"] == "ddim"}
    assert ddim[8]["psnr_db"] > 100  # the reference itself: the same noise, the same input, the same steps
    assert ddim[1]["psnr_db"] < ddim[8]["psnr_db"] and len(table["results"]) == 6


def test_a_local_torchscript_feature_network(tmp_path):
    from cxr_studio import InputError
    from cxr_studio.evaluation.features import TorchScriptFeatures

    class Tiny(torch.nn.Module):  # stands in for inception-2015-12-05.pt: uint8-range RGB 299 px -> features
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1)

    torch.jit.script(Tiny()).save(str(tmp_path / "net.pt"))
    extractor = TorchScriptFeatures(tmp_path / "net.pt")
    images = np.stack([np.full((1, 32, 32), -1.0, np.float32), np.full((1, 32, 32), 1.0, np.float32)])
    features = extractor(images)
    assert features.shape == (2, 2) and features[0, 0] == pytest.approx(0.0) and features[1, 0] == pytest.approx(255.0)
    (tmp_path / "pickle.pt").write_bytes(b"\x80\x04not torchscript")
    with pytest.raises(InputError, match="not a TorchScript archive"):
        TorchScriptFeatures(tmp_path / "pickle.pt")


def test_similarity_rows_tell_blur_from_sharpness():
    from cxr_studio.evaluation.report import _similarity
    from cxr_studio.models.super_res_unet import upsample

    generator = torch.Generator().manual_seed(0)
    high = upsample(torch.rand(2, 1, 16, 16, generator=generator) * 1.6 - 0.8, 4)  # smooth structure at 64 px
    blurred = upsample(torch.nn.functional.avg_pool2d(high, 8), 8)
    noisy = (high + 0.1 * torch.randn(high.shape, generator=generator)).clamp(-1, 1)
    assert _similarity(high, high)["sharpness_ratio"] == pytest.approx(1.0)
    assert _similarity(high, blurred)["sharpness_ratio"] < 0.8
    assert _similarity(high, noisy)["sharpness_ratio"] > 1.2
    assert _similarity(high, high)["ssim"] == pytest.approx(1.0) and _similarity(high, high)["mse"] == 0


def test_raddino_features_from_a_local_folder_only(tmp_path):
    from cxr_studio import InputError
    from cxr_studio.evaluation.features import RadDinoFeatures

    extractor = RadDinoFeatures(raddino_stand_in(tmp_path))
    images = np.random.default_rng(0).uniform(-1, 1, (5, 1, 40, 40)).astype(np.float32)
    features = extractor(images)
    assert features.shape == (5, 32) and features.dtype == np.float64 and np.isfinite(features).all()
    assert np.array_equal(features, extractor(images))  # deterministic
    assert not np.allclose(features[0], features[1])  # the image matters
    assert extractor.name.startswith("raddino:") and len(extractor.sha256) == 64 and extractor.size == 56
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(InputError, match="pickle, which is never loaded"):
        RadDinoFeatures(pickled)


def test_density_and_coverage_follow_naeem_et_al_and_catch_mode_collapse():
    from cxr_studio.evaluation.distribution import _radii, prdc

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(60, 4)), rng.normal(0.2, 1.1, size=(50, 4))
    got = prdc(real, fake, k=5)
    # the definitions, written out with loops
    radii = _radii(real, 5)
    inside = [[np.linalg.norm(f - r) <= radius for r, radius in zip(real, radii)] for f in fake]
    assert got["density"] == pytest.approx(sum(map(sum, inside)) / (5 * len(fake)))
    assert got["coverage"] == pytest.approx(np.mean([any(row[i] for row in inside) for i in range(len(real))]))
    same = prdc(real, real, k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0 and 0.8 < same["density"] < 1.5
    # the known-bad case: every generated image a copy of one real image (mode collapse) is "precise",
    # but coverage and recall expose it
    collapsed = prdc(real, np.repeat(real[:1], 50, 0), k=5)
    assert collapsed["precision"] == 1.0 and collapsed["coverage"] < 0.15 and collapsed["recall"] < 0.15
    assert prdc(real, real + 100.0, k=5) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_fid_and_kid_in_the_raddino_space_match_torchmetrics(tmp_path):
    """torchmetrics computing FID and KID with the same (stand-in) RadDINO as its feature network."""
    pytest.importorskip("torchmetrics.image.fid")
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from cxr_studio.evaluation.features import RadDinoFeatures

    extractor = RadDinoFeatures(raddino_stand_in(tmp_path))

    class AsModule(torch.nn.Module):
        num_features = 32

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(extractor(x.numpy()))

    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (40, 1, 28, 28)).astype(np.float32)
    fake = np.clip(real * 0.5 + rng.normal(0, 0.3, real.shape), -1, 1).astype(np.float32)
    ours_fid = fid(extractor(real), extractor(fake))
    ours_kid = kid(extractor(real), extractor(fake), subsets=1, subset_size=40)[0]
    for metric, ours in (
        (FrechetInceptionDistance(feature=AsModule(), normalize=False).double(), ours_fid),
        (KernelInceptionDistance(feature=AsModule(), subsets=1, subset_size=40).double(), ours_kid),
    ):
        metric.update(torch.from_numpy(real), real=True)
        metric.update(torch.from_numpy(fake), real=False)
        value = metric.compute()
        assert ours == pytest.approx(float(value[0] if isinstance(value, tuple) else value), rel=1e-6)


def check_chexgenbench_layout(folder: Path, *, samples: int) -> None:
    """Read the export the way CheXGenBench's metrics/fid.py does: pandas CSVs, image paths joined to the
    image folder, PIL's convert("RGB"), the labels dict through ast.literal_eval (conditional mode)."""
    import ast

    import pandas as pd
    from PIL import Image

    from cxr_studio.labels import CHEXPERT_LABELS

    synthetic = pd.read_csv(folder / "prompt_INFO.csv")
    real = pd.read_csv(folder / "real_test.csv")
    assert {"id", "annotated_prompt", "img_savename", "synthetic_filename", "chexpert_labels"} <= set(synthetic)
    assert {"path", "annotated_prompt", "chexpert_labels"} <= set(real) and len(synthetic) == samples
    for name in synthetic["img_savename"]:
        image = Image.open(folder / "images" / name)
        assert image.mode == "L"  # 8-bit: the benchmark's convert("RGB") would saturate 16-bit to white
        rgb = np.asarray(image.convert("RGB"))
        assert 0 < rgb.mean() < 255 and rgb.std() > 0
    for path in real["path"]:
        assert Path(path).is_absolute() and Path(path).is_file()
    for labels in [*synthetic["chexpert_labels"], *real["chexpert_labels"]]:
        parsed = ast.literal_eval(labels)
        assert set(parsed) == set(CHEXPERT_LABELS) and all(v in (None, 1.0, 0.0, -1.0) for v in parsed.values())
    # conditional mode finds a finding's synthetic rows through the real prompts that have it: the prompts match
    assert synthetic["annotated_prompt"].isin(set(real["annotated_prompt"])).all()


def test_a_synthetic_set_exports_in_chexgenbench_layout(studio, tmp_path):
    from cxr_studio.data.manifest import COLUMNS, read_manifest, write_manifest
    from cxr_studio.evaluation import chexgenbench
    from cxr_studio.synthesize import main as synthesize

    phantoms = write_dataset(tmp_path / "phantoms", n=40, size=64, seed=0, quiet=True)
    studio.save_pretrained(tmp_path / "tiny")
    rows = [r for r in read_manifest(phantoms) if r["split"] == "test"][:4]  # test reports, as the benchmark uses
    write_manifest(tmp_path / "reports.csv", rows, extra=tuple(k for k in rows[0] if k not in COLUMNS))
    argv = [
        "--model",
        str(tmp_path / "tiny"),
        "--reports",
        str(tmp_path / "reports.csv"),
        "--out",
        str(tmp_path / "set"),
    ]
    assert synthesize(argv) == 0
    argv = ["--synthetic", str(tmp_path / "set"), "--real-manifest", str(phantoms), "--out", str(tmp_path / "cgb")]
    assert chexgenbench.main(argv) == 0
    check_chexgenbench_layout(tmp_path / "cgb", samples=len(rows))


def test_per_finding_figures_compare_like_with_like():
    """CheXGenBench's conditional mode: for each label, real positives against samples whose report has it."""
    from cxr_studio.evaluation.report import per_finding
    from cxr_studio.labels import CHEXPERT_LABELS

    rng = np.random.default_rng(0)
    blank = dict.fromkeys(CHEXPERT_LABELS, "0")
    real_rows = [blank | {"Pleural Effusion": "1"}] * 40 + [blank | {"Cardiomegaly": "1"}] * 40 + [blank] * 3
    real = np.concatenate([rng.normal(0, 1, (40, 4)), rng.normal(5, 1, (40, 4)), rng.normal(0, 1, (3, 4))])
    fake_rows = [blank | {"Pleural Effusion": "1"}] * 30 + [blank | {"Cardiomegaly": "1"}] * 30
    # samples for effusion look like real effusions; samples for cardiomegaly look like effusions too (wrong)
    fake = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(0, 1, (30, 4))])
    rows = per_finding(real, real_rows, fake, fake_rows)
    effusion, heart = rows["Pleural Effusion"], rows["Cardiomegaly"]
    assert (effusion["real"], effusion["samples"]) == (40, 30) and effusion["fid"] < 1.0 and heart["fid"] > 50
    assert effusion["coverage"] > 0.8 and heart["coverage"] == 0.0
    assert rows["Edema"] == {"real": 0, "samples": 0}  # too few: counts only
