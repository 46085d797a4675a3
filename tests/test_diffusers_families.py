"""Diffusers-format models (Stable Diffusion, PixArt-Sigma, Sana) behind the studio's calls, on tiny random
pipelines built offline from configs (tests/tiny_diffusers.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tiny_diffusers
import torch

from cxr_studio import CXRStudio, InputError, TruncationWarning
from cxr_studio.diffusion.noise import LATENT_STREAM, seeded_noise
from cxr_studio.model_folders import folder_hash, load_model
from cxr_studio.pipeline.family import sample
from cxr_studio.pipeline.studio import DiffusersStudio

REPORT = "Large left pleural effusion."


@pytest.fixture(scope="module", params=tiny_diffusers.KINDS)
def folder(request, tmp_path_factory):
    return tiny_diffusers.build(request.param, tmp_path_factory.mktemp(request.param) / "model")


@pytest.fixture(scope="module")
def family_studio(folder):
    return load_model(folder)


def radiograph(size: int = 48) -> np.ndarray:
    """A 16-bit test image larger than the families' 32 px, so editing crops a window."""
    y, x = np.mgrid[0:size, 0:size]
    return ((0.3 + 0.4 * np.sin(x / 5.0) * np.cos(y / 7.0) + 0.2) * 65535).clip(0, 65535).astype(np.uint16)


def test_each_family_samples_as_its_own_diffusers_pipeline(family_studio):
    """Same start noise, steps, guidance and solver: our loop gives the latents of the family's own __call__."""
    family = family_studio.family
    pipe = family.pipe
    noise = seeded_noise([3], family.latent_shape, stream=LATENT_STREAM, device=family.device)
    embeds, mask = family.encode_reports([REPORT, ""])
    ours = sample(family, embeds, mask, noise, num_steps=4, guidance_scale=4.5, sampler="dpmpp")
    original_scheduler = pipe.scheduler
    pipe.scheduler = family.sampler("dpmpp")
    options = {"negative_prompt": "", "latents": noise.clone(), "output_type": "latent"}
    if family.kind != "StableDiffusionPipeline":
        options |= {"use_resolution_binning": False, "clean_caption": False, "height": 32, "width": 32}
    if family.kind == "SanaPipeline":
        options["complex_human_instruction"] = None
    try:
        theirs = pipe(REPORT, num_inference_steps=4, guidance_scale=4.5, **options).images
    finally:
        pipe.scheduler = original_scheduler
    assert ours.shape == theirs.shape == (1, *family.latent_shape)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_the_live_preview_follows_ddpm_families_and_is_off_under_flow_matching(family_studio):
    shown = []
    previewed = family_studio.generate(REPORT, seed=0, num_steps=4, preview=lambda *shows: shown.append(shows))
    assert np.array_equal(previewed.pixels, family_studio.generate(REPORT, seed=0, num_steps=4).pixels)
    if family_studio.family.flow:  # Sana: no alphas to read an estimate from
        assert shown == []
    else:
        half = family_studio.image_size // 2
        assert [(p.shape, step) for p, step, _ in shown] == [((half, half), 2), ((half, half), 4)]


def test_a_guidance_interval_is_refused_rather_than_ignored(family_studio):
    with pytest.raises(InputError, match="guides at every step"):
        family_studio.with_sampling({"guidance_max_timestep": 500})
    assert family_studio.with_sampling({"guidance_max_timestep": None, "num_steps": 2}).sampling.num_steps == 2


def test_generation_is_reproducible_at_the_native_size_and_names_the_model(family_studio, folder):
    first = family_studio.generate(REPORT, seed=5, num_steps=3)
    again = family_studio.generate(REPORT, seed=5, num_steps=3)
    other = family_studio.generate(REPORT, seed=6, num_steps=3)
    assert first.pixels.shape == (1, 32, 32) and family_studio.image_size == family_studio.output_size == 32
    assert np.array_equal(first.pixels, again.pixels) and not np.array_equal(first.pixels, other.pixels)
    assert 0.0 <= first.pixels.min() and first.pixels.max() <= 1.0
    params = first.parameters_for(0)
    assert params["model"] == f"model@{folder_hash(folder)[:12]}" and params["synthetic"] is True
    assert params["upscale"] is False and params["guidance_scale"] == family_studio.sampling.guidance_scale
    with pytest.raises(InputError, match="no super-resolution"):
        family_studio.generate(REPORT, seed=5, num_steps=3, upscale=True)
    assert not hasattr(family_studio, "save_pretrained") and not hasattr(family_studio, "with_resolution")


def test_inpainting_pastes_back_exactly_and_never_touches_the_keep_mask(family_studio):
    image = radiograph()
    edit = np.zeros(image.shape, np.uint8)
    edit[10:30, 12:34] = 255
    keep = np.zeros(image.shape, np.uint8)
    keep[16:22, 8:40] = 255  # a "tube" across the edit
    result = family_studio.inpaint(image, edit, report=REPORT, seed=2, num_steps=3, strength=1.0, keep_mask=keep)
    assert result.image.dtype == np.uint16 and result.image.shape == image.shape
    untouched = result.mask == 0
    assert np.array_equal(result.image[untouched], image[untouched])
    assert np.array_equal(result.image[keep > 0], image[keep > 0]) and untouched[keep > 0].all()
    assert not np.array_equal(result.image[10:16, 12:34], image[10:16, 12:34])  # the edit outside the keep changed
    assert result.parameters["keep_mask"] is True
    with pytest.raises(InputError, match="keep mask covers the whole edit"):
        family_studio.inpaint(image, edit, seed=2, num_steps=3, grow_px=0, keep_mask=np.maximum(edit, keep))


def test_outpainting_and_interpolation_run_for_every_family(family_studio):
    image = radiograph(32)
    grown = family_studio.outpaint(image, left=8, top=4, report=REPORT, seed=1, num_steps=3)
    assert grown.image.shape == (36, 40) and np.array_equal(grown.image[4:, 8:], image)
    frames = family_studio.interpolate("Normal chest radiograph.", REPORT, mode="report", num_frames=3, num_steps=3)
    assert frames.pixels.shape == (3, 32, 32)
    seeds = family_studio.interpolate(1, 2, mode="seed", num_frames=3, report=REPORT, num_steps=3)
    assert seeds.pixels.shape == (3, 32, 32) and not np.array_equal(seeds.pixels[0], seeds.pixels[2])
    if family_studio.family.supports_resampling:
        between = family_studio.interpolate(image, image[::-1].copy(), mode="image", num_frames=3, num_steps=3)
        assert between.pixels.shape == (3, 32, 32)
    else:  # flow matching: no DDIM inversion, no RePaint; said, not silently approximated
        with pytest.raises(InputError, match="'report' or 'seed' mode"):
            family_studio.interpolate(image, image, mode="image", num_frames=3, num_steps=3)
        with pytest.raises(InputError, match="flow matching"):
            family_studio.inpaint(image, image > 30000, seed=1, num_steps=3, resample_jumps=1)


def test_the_sampler_menu_is_the_familys(family_studio):
    assert (
        family_studio.samplers == family_studio.family.samplers
        and family_studio.sampling.sampler in family_studio.samplers
    )
    if not family_studio.family.supports_resampling:
        assert "ddim" not in family_studio.samplers
        with pytest.raises(InputError, match="not offered"):
            family_studio.generate(REPORT, sampler="ddim", num_steps=2)


def test_bad_folders_say_what_is_wrong(folder, tmp_path):
    unknown = tmp_path / "unknown"
    shutil.copytree(folder, unknown)
    index = json.loads((unknown / "model_index.json").read_text())
    (unknown / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))
    with pytest.raises(InputError, match="FluxPipeline.*accepted: StableDiffusionPipeline"):
        load_model(unknown)
    missing = tmp_path / "missing"
    shutil.copytree(folder, missing)
    shutil.rmtree(missing / "vae")
    with pytest.raises(InputError, match="vae folder named in model_index.json is missing"):
        load_model(missing)
    pickled = tmp_path / "pickled"
    shutil.copytree(folder, pickled)
    weights = next((pickled / "vae").glob("*.safetensors"))
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(InputError, match="pickle weights only"):
        load_model(pickled)


def test_the_folder_hash_is_computed_once_without_writing_to_the_folder(folder, tmp_path):
    cache = tmp_path / "hashes.json"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    first = folder_hash(folder, cache=cache)
    assert json.loads(cache.read_text())[str(folder.resolve())]["hash"] == first
    assert folder_hash(folder, cache=cache) == first
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before and not (folder / "sha256sums.json").exists()
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    (changed / "scheduler" / "scheduler_config.json").write_text("{}")
    assert folder_hash(changed, cache=cache) != first


def test_a_report_past_the_token_limit_is_cut_with_a_warning(folder):
    family_studio = load_model(folder)
    long_report = " ".join(["left pleural effusion."] * 120)
    assert (
        family_studio.family.truncated_tokens(REPORT) == 0 and family_studio.family.truncated_tokens(long_report) > 0
    )
    with pytest.warns(TruncationWarning, match="tokens of a report are ignored"):
        family_studio.encode_report(long_report)


def test_the_keep_mask_holds_for_the_cascade_too():
    tiny_studio = CXRStudio.from_preset("tiny", seed=0)
    image = radiograph(64)
    edit = np.zeros(image.shape, np.uint8)
    edit[16:48, 16:48] = 255
    keep = np.zeros(image.shape, np.uint8)
    keep[28:36, 0:64] = 255
    result = tiny_studio.inpaint(image, edit, seed=0, num_steps=2, feather_px=6, grow_px=2, keep_mask=keep)
    assert np.array_equal(result.image[keep > 0], image[keep > 0])
    assert np.array_equal(result.image[result.mask == 0], image[result.mask == 0])
    assert not np.array_equal(result.image[16:28, 16:48], image[16:28, 16:48])
    assert not isinstance(tiny_studio, DiffusersStudio) and tiny_studio.family_name == "CXR Studio cascade"


def test_synthesis_reconstruction_and_the_privacy_filter_take_any_family(family_studio, folder, manifest, tmp_path):
    """The dataset command, the evaluation's reconstruction rows and the privacy-filtered synthesis need no
    family-specific code: a diffusers folder goes where a cascade went."""
    from cxr_studio import imaging
    from cxr_studio.data.manifest import read_manifest
    from cxr_studio.evaluation.report import reconstruction
    from cxr_studio.synthesize import main as synthesize

    reports = tmp_path / "reports.txt"
    reports.write_text("Large left pleural effusion.\nNormal chest radiograph.\n")
    out = tmp_path / "set"
    args = ["--model", str(folder), "--reports", str(reports), "--per-report", "2", "--out", str(out)]
    assert synthesize([*args, "--num-steps", "2", "--privacy-against", str(manifest)]) == 0
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 4 and {r["model"] for r in rows} == {family_studio.model_id}
    assert imaging.read_radiograph(out / rows[0]["path"]).pixels.shape == (32, 32)
    images = np.stack([imaging.to_signed(radiograph(32).astype(np.float32) / 65535)[None]] * 2)
    rows = reconstruction(family_studio, images)
    assert set(rows) == {"autoencoder"} and rows["autoencoder"]["psnr"] > 0  # no super-resolution rows


def test_a_sana_folder_with_a_flow_match_euler_scheduler_samples_with_flow_sigmas(tmp_path):
    """Some Sana folders ship FlowMatchEulerDiscreteScheduler: the solvers are built on flow sigmas with its shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    folder = tiny_diffusers.build("SanaPipeline", tmp_path / "sana")
    FlowMatchEulerDiscreteScheduler(shift=3.0).save_pretrained(folder / "scheduler")
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    family_studio = load_model(folder)
    assert family_studio.family.flow and family_studio.samplers == ("dpmpp", "unipc")
    scheduler = family_studio.family.sampler("dpmpp")
    assert scheduler.config.prediction_type == "flow_prediction" and scheduler.config.flow_shift == 3.0
    for sampler in family_studio.samplers:
        pixels = family_studio.generate(REPORT, seed=1, num_steps=3, sampler=sampler).pixels
        assert np.isfinite(pixels).all() and pixels.std() > 0
