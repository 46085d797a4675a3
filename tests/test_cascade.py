"""The cascade on the tiny preset: stage shapes and ranges, determinism, guidance, samplers, persistence."""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings

import numpy as np
import pytest
import torch

from cxr_studio import (
    CXRStudio,
    GenerationCancelled,
    InputError,
    StudioConfig,
    TruncationWarning,
    read_png_parameters,
    save_png,
)
from cxr_studio.checkpoints import write_checksums
from cxr_studio.config import PRESETS, SAMPLERS, ScheduleConfig, preset
from cxr_studio.diffusion.guidance import classifier_free_guidance, clip_predicted_sample
from cxr_studio.diffusion.objectives import training_target
from cxr_studio.diffusion.sampling import denoise
from cxr_studio.diffusion.schedules import PREDICTION_TYPES, make_sampler, training_scheduler

REPORT = "Large right pleural effusion. No pneumothorax."


def assert_nearly_equal(a: np.ndarray, b: np.ndarray) -> None:
    """Batched and single convolutions round differently in the last bits, and the random tiny model
    saturates many pixels to 0 or 1, where such a difference can flip one: allow a handful of pixels."""
    assert np.mean(np.abs(a - b) > 1e-3) < 0.01


@pytest.fixture(scope="module")
def saved(studio, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    studio.save_pretrained(path)
    return path


def test_every_stage_has_the_documented_shape_and_range(studio):
    config = studio.config
    embeds, mask = studio.encode_report([REPORT, ""])
    assert embeds.shape[0] == 2 and embeds.shape[2] == config.report_encoder.hidden_size
    assert mask.shape == embeds.shape[:2] and mask[1].sum() == 2  # the empty report is [CLS] [SEP]
    latents = studio.sample_latents(REPORT, seed=0)
    assert latents.shape == (1, config.autoencoder.latent_channels, config.latent_size, config.latent_size)
    image = studio.decode(latents)
    assert image.shape == (1, 1, config.image_size, config.image_size)
    assert image.min() >= -1 and image.max() <= 1
    assert studio.encode(np.random.default_rng(0).random((50, 40)).astype(np.float32)).shape == latents.shape
    upscaled = studio.upscale(np.random.default_rng(1).random((40, 40)).astype(np.float32), seed=0)
    assert upscaled.size == (config.output_size, config.output_size) and upscaled.mode == "L"


def test_generate_returns_images_seeds_and_parameters(studio):
    result = studio.generate(REPORT, seed=5, num_images=2)
    size = studio.config.output_size
    assert [im.size for im in result.images] == [(size, size)] * 2
    assert [im.size for im in result.low_res] == [(studio.config.image_size,) * 2] * 2
    assert result.pixels.shape == (2, size, size) and result.pixels.dtype == np.float32
    assert 0 <= result.pixels.min() and result.pixels.max() <= 1
    assert result.seeds == [5, 6]
    p = result.parameters
    assert p["report"] == REPORT and p["synthetic"] is True and p["model"] == studio.model_id
    assert p["num_steps"] == studio.config.sampling.num_steps and p["sampler"] == studio.config.sampling.sampler
    assert studio.generate(REPORT, upscale=False, seed=0).images[0].size == (studio.config.image_size,) * 2


def test_same_seed_same_image_and_each_image_reproducible_alone(studio):
    batch = studio.generate(REPORT, seed=11, num_images=3)
    again = studio.generate(REPORT, seed=11, num_images=3)
    assert np.array_equal(batch.pixels, again.pixels)
    alone = studio.generate(REPORT, seed=batch.seeds[2])
    assert_nearly_equal(alone.pixels[0], batch.pixels[2])
    other = studio.generate(REPORT, seed=12)
    assert not np.array_equal(other.pixels[0], batch.pixels[0])


def test_random_seed_is_recorded_and_reproduces(studio):
    result = studio.generate(REPORT, upscale=False)
    again = studio.generate(REPORT, seed=result.seeds[0], upscale=False)
    assert np.array_equal(result.pixels, again.pixels)


def test_guidance_on_and_off(studio):
    def image(**kwargs):
        return studio.generate(REPORT, seed=3, upscale=False, **kwargs).pixels

    guided, unguided = image(guidance_scale=4.0), image(guidance_scale=1.0)
    assert not np.allclose(guided, unguided)
    # without guidance the negative report is not used; with guidance it steers the image
    assert np.array_equal(unguided, image(guidance_scale=1.0, negative_report="cardiomegaly"))
    assert not np.allclose(guided, image(guidance_scale=4.0, negative_report="cardiomegaly"))
    # guidance 0 is the unconditional model: the report no longer matters
    assert np.allclose(
        image(guidance_scale=0.0), studio.generate("Normal chest.", seed=3, upscale=False, guidance_scale=0.0).pixels
    )


def test_side_contrast_guides_a_sided_report_away_from_its_mirror_image(studio):
    """With ``side_contrast`` a sided report without a negative is the same image as with its mirror image as the
    negative; a report without a side and an explicit negative are as before; the parameters say which."""
    contrast = studio.with_sampling({"side_contrast": True})

    def image(model, report, **kwargs):
        result = model.generate(report, seed=3, num_images=2, upscale=False, guidance_scale=3.0, **kwargs)
        return result.pixels, result.parameters

    left, parameters = image(contrast, "Large left pleural effusion.")
    assert parameters["side_contrast"] is True and parameters["negative_report"] == ""
    assert np.array_equal(
        left, image(studio, "Large left pleural effusion.", negative_report="Large right pleural effusion.")[0]
    )
    assert not np.allclose(left, image(studio, "Large left pleural effusion.")[0])
    assert image(studio, "Large left pleural effusion.")[1]["side_contrast"] is False
    per_call, parameters = image(studio, "Large left pleural effusion.", side_contrast=True)  # the model's default off
    assert np.array_equal(per_call, left) and parameters["side_contrast"] is True
    for report, negative in (("Cardiomegaly.", ""), ("Large left pleural effusion.", "Edema.")):
        assert np.array_equal(
            image(contrast, report, negative_report=negative)[0], image(studio, report, negative_report=negative)[0]
        )
    # synthesis batches mix reports: each gets its own negative
    batch = contrast.generate_batch(["Right pneumothorax.", "Cardiomegaly."], seeds=[1, 2], upscale=False)
    alone = studio.generate("Right pneumothorax.", seed=1, upscale=False, negative_report="Left pneumothorax.")
    assert_nearly_equal(batch.pixels[0], alone.pixels[0])
    assert_nearly_equal(batch.pixels[1], studio.generate("Cardiomegaly.", seed=2, upscale=False).pixels[0])


def test_guidance_in_a_limited_interval_guides_only_the_low_noise_steps():
    """``guidance_max_timestep``: above it one conditional pass of B, at or below it the guided pass of 2B."""
    import dataclasses

    config = preset("tiny")
    never, always = (
        CXRStudio.from_config(
            config.replace(sampling=dataclasses.replace(config.sampling, guidance_max_timestep=limit)), seed=0
        )
        for limit in (-1, config.latent_schedule.num_train_timesteps - 1)
    )
    plain = CXRStudio.from_config(config, seed=0)

    def image(studio, guidance_scale):
        return studio.generate(REPORT, seed=3, upscale=False, guidance_scale=guidance_scale).pixels

    assert np.array_equal(image(always, 4.0), image(plain, 4.0))  # every step guided, as without the setting
    assert np.array_equal(image(never, 4.0), image(plain, 1.0))  # no step guided: the conditional model alone
    assert never.generate(REPORT, seed=3, upscale=False).parameters["guidance_max_timestep"] == -1  # recorded
    batches = []
    plain.latent_unet.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    embeds, mask = plain.family.encode_reports([REPORT, ""])
    (report, negative), (report_mask, negative_mask) = embeds.chunk(2), mask.chunk(2)
    guided = classifier_free_guidance(
        plain.family.predict, [report, report_mask], [negative, negative_mask], 4.0, max_timestep=500
    )
    x = torch.randn(1, *plain.family.latent_shape)
    guided(x, torch.tensor(700)), guided(x, torch.tensor(500))
    assert batches == [1, 2]
    # a model folder keeps the setting; one written before it existed guides at every step
    assert StudioConfig.from_dict(never.config.to_dict()).sampling.guidance_max_timestep == -1
    old = plain.config.to_dict()
    del old["sampling"]["guidance_max_timestep"]
    assert StudioConfig.from_dict(old).sampling.guidance_max_timestep is None


def test_long_reports_are_truncated_with_a_warning(studio):
    limit = studio.config.report_encoder.max_tokens
    with pytest.warns(TruncationWarning, match=r"were dropped \(limit"):
        embeds, _mask = studio.encode_report(REPORT * 20)
    assert embeds.shape[1] == limit
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        studio.encode_report(REPORT)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_with_the_training_betas(studio, sampler):
    result = studio.generate(REPORT, seed=0, sampler=sampler, sr_sampler=sampler)
    assert np.isfinite(result.pixels).all()
    schedule = studio.config.latent_schedule
    assert torch.allclose(make_sampler(sampler, schedule).betas, training_scheduler(schedule).betas)


SR_COSINE = {"num_train_timesteps": 2000, "beta_schedule": "squaredcos_cap_v2"}


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_training_target_is_what_recovers_the_clean_sample(kind):
    schedule = training_scheduler(ScheduleConfig(prediction_type=kind, **SR_COSINE))
    generator = torch.Generator().manual_seed(0)
    sample, noise = torch.rand(3, 1, 8, 8, generator=generator) * 2 - 1, torch.randn(3, 1, 8, 8, generator=generator)
    t = torch.tensor([5, 900, 1500])  # at 1999 epsilon inverts through 1/sqrt(alpha_bar) ~ 1e4: float error only
    target = training_target(schedule, sample, noise, t)
    a = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    expected = {"epsilon": noise, "v_prediction": a.sqrt() * noise - (1 - a).sqrt() * sample, "sample": sample}[kind]
    torch.testing.assert_close(target, expected)
    # the scheduler's own inversion of that target gives back the clean sample
    x_t = schedule.add_noise(sample, noise, t)
    for i in range(3):
        step = schedule.step(target[i : i + 1], int(t[i]), x_t[i : i + 1], generator=generator)
        torch.testing.assert_close(step.pred_original_sample, sample[i : i + 1], atol=2e-3, rtol=0)


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_an_exact_denoiser_is_sampled_to_its_target_by_every_sampler(kind, sampler):
    """A denoiser that always predicts the right output for a fixed target must end on that target, from pure
    noise, in a few steps, for every sampler and prediction type (the sampler reads the type from the
    schedule), with the clean-sample clip on: the path the SR stage samples."""
    config = ScheduleConfig(prediction_type=kind, **SR_COSINE)
    schedule = training_scheduler(config)
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(1, 1, 16, 16, generator=generator) * 1.6 - 0.8

    def exact(x, t):
        a = schedule.alphas_cumprod[t]
        eps = (x - a.sqrt() * target) / (1 - a).sqrt()
        return {"epsilon": eps, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * target, "sample": target}[kind]

    scheduler = make_sampler(sampler, config, clip=1.0)
    fn = (
        exact
        if scheduler.config.get("clip_sample")
        else clip_predicted_sample(exact, schedule.alphas_cumprod, 1.0, prediction_type=kind)
    )
    out = denoise(fn, torch.randn(target.shape, generator=generator), scheduler, 8)
    assert (out - target).abs().max() < 0.02


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_clip_predicted_sample_clips_only_what_is_out_of_range(kind):
    schedule = training_scheduler(ScheduleConfig(prediction_type=kind))
    a = schedule.alphas_cumprod[300]
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    x0 = torch.linspace(-3, 3, 16).view(1, 1, 4, 4)  # half of it beyond +-1
    eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
    output = {"epsilon": eps, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "sample": x0}[kind]
    clipped = clip_predicted_sample(lambda x_, t_: output, schedule.alphas_cumprod, 1.0, prediction_type=kind)(
        x, torch.tensor(300)
    )
    implied = schedule.step(clipped, 300, x).pred_original_sample
    torch.testing.assert_close(implied, x0.clamp(-1, 1), atol=1e-4, rtol=0)


def test_unknown_prediction_type_is_refused():
    schedule = training_scheduler(ScheduleConfig())
    schedule.register_to_config(prediction_type="flow")
    with pytest.raises(InputError, match="prediction type 'flow'"):
        training_target(schedule, torch.zeros(1), torch.zeros(1), torch.tensor([0]))


def test_cheff_noise_schedules():
    config = preset("cheff")
    latent = training_scheduler(config.latent_schedule)
    # CompVis 'linear' (sqrt-spaced) 0.0015 -> 0.0295: alpha_bar_T = 3.15e-6 leaves no image in x_T (Cheff 7.6)
    assert math.isclose(latent.betas[-1].item(), 0.0295, rel_tol=1e-5)
    assert math.isclose(latent.alphas_cumprod[-1].item(), 3.15e-6, rel_tol=0.02)
    sr = training_scheduler(config.sr_schedule)
    assert len(sr.betas) == 2000 and sr.config.beta_schedule == "squaredcos_cap_v2"


def test_the_live_preview_shows_each_stage_converging_on_the_image_without_changing_it(studio):
    plain = studio.generate(REPORT, seed=0)
    shown = []
    previewed = studio.generate(REPORT, seed=0, preview=lambda *shows: shown.append(shows))
    assert np.array_equal(previewed.pixels, plain.pixels)  # watching changes nothing
    c, half = studio.config.sampling, studio.config.image_size // 2
    total = c.num_steps + c.sr_num_steps
    steps = [step for _, step, _ in shown]
    assert steps == sorted(steps) and steps[-1] == total and c.num_steps in steps
    assert all(p.shape == (half, half) and 0 <= p.min() and p.max() <= 1 and t == total for p, _, t in shown)
    # the last estimate of each stage is that stage's result, reduced to the preview's size
    reduce = lambda image: torch.nn.functional.interpolate(
        torch.from_numpy(image)[None, None], size=(half, half), mode="area"
    )[0, 0].numpy()
    low_res = np.asarray(previewed.low_res[0], dtype=np.float32) / 255
    at_stage_end = {step: p for p, step, _ in shown}
    assert np.abs(at_stage_end[total] - reduce(previewed.pixels[0])).max() < 1e-3
    first_stage = np.abs(at_stage_end[c.num_steps] - reduce(low_res)).mean()
    first_noise = np.abs(shown[0][0] - reduce(low_res)).mean()
    assert first_stage < first_noise  # the estimate converges on the image


def test_callback_reports_progress_and_can_stop(studio):
    calls = []
    studio.generate(REPORT, seed=0, callback=lambda step, total: calls.append((step, total)))
    total = studio.config.sampling.num_steps + studio.config.sampling.sr_num_steps
    assert calls == [(i, total) for i in range(1, total + 1)]
    with pytest.raises(GenerationCancelled):
        studio.generate(REPORT, seed=0, callback=lambda step, total: step >= 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_steps": 0},
        {"num_steps": 10**6},
        {"num_steps": 2.5},
        {"guidance_scale": float("nan")},
        {"guidance_scale": -1.0},
        {"sampler": "euler"},
        {"num_images": 0},
        {"num_images": 17},
        {"seed": -1},
        {"seed": 2**64},
        {"seed": 1.5},
    ],
)
def test_bad_parameters_raise_input_error(studio, kwargs):
    with pytest.raises(InputError):
        studio.generate(REPORT, **kwargs)


def test_report_must_be_text(studio):
    with pytest.raises(InputError, match="must be text"):
        studio.generate(None)  # type: ignore[arg-type]


def test_parameters_travel_in_the_png(studio, tmp_path):
    result = studio.generate(REPORT, seed=9, num_images=2)
    save_png(tmp_path / "x.png", result.pixels[1], bit_depth=16, parameters=result.parameters_for(1), synthetic=True)
    read = read_png_parameters(tmp_path / "x.png")
    assert read["seed"] == 9 + 1 and read["synthetic"] is True and read["report"] == REPORT
    again = studio.generate(
        read["report"], seed=read["seed"], num_steps=read["num_steps"], guidance_scale=read["guidance_scale"]
    )
    assert_nearly_equal(again.pixels[0], result.pixels[1])


def test_save_then_load_gives_identical_outputs(studio, saved):
    loaded = CXRStudio.from_pretrained(saved)
    assert loaded.config == studio.config
    assert loaded.model_id.startswith("tiny@") and loaded.model_id == studio.model_id
    for name, module in studio.components().items():  # the weights come back bit for bit
        if name != "tokenizer":
            original, reloaded = module.state_dict(), loaded.components()[name].state_dict()
            assert original.keys() == reloaded.keys() and all(torch.equal(original[k], reloaded[k]) for k in original)
    assert loaded.tokenizer.get_vocab() == studio.tokenizer.get_vocab()
    # outputs: CPU kernels may round differently for differently aligned weight memory, so compare before
    # the random tiny model saturates its pixels to 0 or 1
    assert torch.allclose(loaded.sample_latents(REPORT, seed=4), studio.sample_latents(REPORT, seed=4), atol=1e-5)
    assert not any(name.endswith((".bin", ".pt", ".ckpt", ".pth")) for _, _, files in os.walk(saved) for name in files)
    index = json.loads((saved / "model_index.json").read_text())
    assert index["latent_unet"] == ["diffusers", "UNet2DConditionModel"]


def copy_of(saved, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


def test_truncated_weights_are_named(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    weights = folder / "latent_unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InputError, match="latent_unet/diffusion_pytorch_model.safetensors is damaged or truncated"):
        CXRStudio.from_pretrained(folder)


def test_missing_component_is_named(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    shutil.rmtree(folder / "autoencoder")
    with pytest.raises(InputError, match="autoencoder/.* is missing"):
        CXRStudio.from_pretrained(folder)


def test_mismatched_component_is_named(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    other = CXRStudio.from_config(preset("tiny").replace(autoencoder=preset("demo").autoencoder, image_size=32))
    shutil.rmtree(folder / "autoencoder")
    other.autoencoder.save_pretrained(folder / "autoencoder")
    write_checksums(folder)  # a consistent listing: the mismatch itself must be caught
    with pytest.raises(InputError, match="autoencoder"):
        CXRStudio.from_pretrained(folder)


def test_pickles_symlinks_and_missing_folders_are_refused(saved, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        CXRStudio.from_pretrained(tmp_path / "nowhere")
    folder = copy_of(saved, tmp_path)
    (folder / "latent_unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(InputError, match="pickle"):
        CXRStudio.from_pretrained(folder)
    os.remove(folder / "latent_unet" / "diffusion_pytorch_model.bin")
    (folder / "escape.json").symlink_to("/etc/hostname")
    with pytest.raises(InputError, match="outside the folder"):
        CXRStudio.from_pretrained(folder)
    os.remove(folder / "escape.json")
    os.remove(folder / "sha256sums.json")
    with pytest.raises(InputError, match="sha256sums.json"):
        CXRStudio.from_pretrained(folder)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_configs_round_trip_through_json(name):
    config = preset(name)
    assert StudioConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_preset_and_config_keys():
    with pytest.raises(InputError, match="unknown preset"):
        CXRStudio.from_preset("huge")
    data = preset("tiny").to_dict()
    data["latent_unet"]["wings"] = 2
    with pytest.raises(InputError, match="wings"):
        StudioConfig.from_dict(data)


def test_hub_download_fails_clearly_offline(tmp_path, monkeypatch):
    from cxr_studio.hub import pull_from_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="could not download"):
        pull_from_hub("someone/cxr-model", tmp_path / "model")


def test_the_bundled_demo_cascade_loads_offline_and_generates(monkeypatch):
    import socket

    import cxr_studio

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    demo = cxr_studio.load_default()
    assert demo.model_id.startswith("demo@") and demo.config.name == "demo"
    expected = preset("demo")  # the preset is the bundle's architecture and size
    for part in (
        "image_size",
        "super_res",
        "latent_unet",
        "report_encoder",
        "sr_schedule",
        "latent_schedule",
        "sampling",
    ):
        assert getattr(demo.config, part) == getattr(expected, part), part
    result = demo.generate("Large right pleural effusion.", seed=0, num_steps=4, upscale=False)
    assert result.images[0].size == (256, 256) and 0.05 < result.pixels.mean() < 0.95


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_zero_terminal_snr_v_prediction_samples_to_its_target(sampler):
    """The demo preset's latent schedule ends at alpha_bar = 0 (pure noise): every sampler starts there without
    dividing by zero and an exact denoiser lands on its target, with no clipping at all."""
    config = PRESETS["demo"].latent_schedule
    schedule = training_scheduler(config)
    assert config.rescale_betas_zero_snr and float(schedule.alphas_cumprod[-1]) == 0.0
    generator = torch.Generator().manual_seed(3)
    target = torch.randn(1, 3, 16, 16, generator=generator).clamp(-3, 3)

    def exact(x, t):
        a = schedule.alphas_cumprod[t]
        return a.sqrt() * (x - a.sqrt() * target) / (1 - a).sqrt() - (1 - a).sqrt() * target

    out = denoise(exact, torch.randn(target.shape, generator=generator), make_sampler(sampler, config), 10)
    assert torch.isfinite(out).all() and (out - target).abs().max() < 0.02


def test_the_menu_offers_only_samplers_that_converge():
    """Epsilon prediction with alpha_bar_T ~ 3e-6 (the first demo schedule): DDIM only; an SD-like epsilon schedule
    (alpha_bar_T ~ 5e-3) and the zero-SNR v-prediction schedule: every sampler."""
    from cxr_studio.diffusion.schedules import converging_samplers

    assert converging_samplers(ScheduleConfig()) == ("ddim",)
    assert converging_samplers(ScheduleConfig(beta_start=0.00085, beta_end=0.012)) == SAMPLERS
    assert converging_samplers(PRESETS["demo"].latent_schedule) == SAMPLERS
    with pytest.raises(InputError, match="zero-terminal-SNR"):
        make_sampler("ddim", ScheduleConfig(rescale_betas_zero_snr=True))


def test_min_snr_gamma_weights_follow_the_prediction_type():
    """Hang et al. 2023: the x0 loss weighted by min(SNR, gamma); epsilon divides by SNR, v by SNR + 1."""
    from cxr_studio.diffusion.objectives import loss_weights, weighted_mse

    t = torch.tensor([0, 300, 999])
    for kind, divide in (("epsilon", lambda snr: snr), ("v_prediction", lambda snr: snr + 1)):
        schedule = training_scheduler(ScheduleConfig(prediction_type=kind))
        a = schedule.alphas_cumprod[t]
        snr = a / (1 - a)
        torch.testing.assert_close(loss_weights(schedule, t, snr_gamma=5.0), snr.clamp(max=5.0) / divide(snr))
        assert loss_weights(schedule, t, snr_gamma=0.0) is None
    x, y = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    assert float(weighted_mse(x, y, torch.tensor([1.0, 0.0, 2.0]))) == 1.0 and float(weighted_mse(x, y, None)) == 1.0


def test_as_preview_is_the_model_at_the_fast_preview_settings(studio):
    """Every evaluation command's --preview measures what the app's Preview (fast) draws."""
    from cxr_studio.config import PREVIEW_SAMPLING

    preview = studio.as_preview()
    result = preview.generate("Left pleural effusion.", seed=2)
    assert result.parameters["num_steps"] == PREVIEW_SAMPLING["num_steps"] and result.parameters["upscale"] is False
    np.testing.assert_array_equal(
        result.pixels, studio.generate("Left pleural effusion.", seed=2, **PREVIEW_SAMPLING).pixels
    )
