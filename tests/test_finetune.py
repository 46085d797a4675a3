"""Few-shot adaptation: LoRA adapters (and full fine-tuning) of every family's denoiser, in diffusers' format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_diffusers
import torch
from safetensors import safe_open

from cxr_studio import CXRStudio, InputError, load_model
from cxr_studio.pipeline.adapters import ADAPTER_FILE
from training.finetune import main as finetune

REPORT = "Large left pleural effusion."


def run(model, manifest, out, *extra: str) -> int:
    return finetune(
        [
            *(["--model", str(model)] if model else []),
            *("--manifest", str(manifest), "--out", str(out), "--max-steps", "4", "--batch-size", "2"),
            *("--lr", "5e-3", "--warmup-steps", "1", "--sample-every", "4", "--checkpoint-every", "2"),
            *("--sample-steps", "2", "--log-every", "1", "--finetune-images", "8", *extra),
        ]
    )


@pytest.fixture(scope="module", params=["cascade", *tiny_diffusers.KINDS])
def base(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param) / "base"
    if request.param == "cascade":
        CXRStudio.from_preset("tiny", seed=0).save_pretrained(folder)
        return folder
    return tiny_diffusers.build(request.param, folder)


def pixels(studio) -> np.ndarray:
    return studio.generate(REPORT, seed=3, num_steps=3, upscale=False).pixels


def test_a_lora_adapter_trains_saves_in_diffusers_format_and_loads_back(base, manifest, tmp_path):
    out = tmp_path / "adapter"
    assert (
        run(base, manifest, out, "--rank", "4", "--prior-report", "Normal chest radiograph.", "--prior-images", "2")
        == 0
    )
    studio = load_model(base)
    with safe_open(str(out / ADAPTER_FILE), framework="pt") as handle:
        keys, metadata = list(handle.keys()), handle.metadata()
    component = "unet" if "UNet" in type(studio.family.denoiser).__name__ else "transformer"
    assert keys and all(k.startswith(f"{component}.") and ".lora." in k for k in keys)  # diffusers' LoRA keys
    assert (
        metadata["cxr_studio_base_model"] == studio.model_id
        and json.loads(metadata["lora_adapter_metadata"])[f"{component}.r"] == 4
    )
    card = json.loads((out / "adapter_card.json").read_text())
    assert card["base_model"] == studio.model_id and card["method"] == "lora"
    before = pixels(studio)
    adapter = studio.load_adapter(out, name="effusion")
    adapted = pixels(studio)
    assert not np.array_equal(adapted, before)
    result = studio.generate(REPORT, seed=3, num_steps=3, upscale=False)
    assert result.parameters["adapters"] == [adapter.as_parameters()] and adapter.weight == 1.0
    # a studio that shares the weights (other sampling defaults) knows the adapter too
    assert studio.with_sampling({"num_steps": 2}).generate(REPORT, seed=3, upscale=False).parameters["adapters"]
    studio.set_adapter_weight("effusion", 0.0)
    np.testing.assert_allclose(pixels(studio), before, atol=1e-6)  # weight 0: the base model
    studio.set_adapter_weight("effusion", 1.0)
    assert np.array_equal(pixels(studio), adapted)
    with pytest.raises(InputError, match="already loaded"):
        studio.load_adapter(out, name="effusion")
    studio.unload_adapter("effusion")
    np.testing.assert_allclose(pixels(studio), before, atol=1e-6)  # Sana's attention rounds differently by 1e-7
    assert "adapters" not in studio.generate(REPORT, seed=3, num_steps=2, upscale=False).parameters
    with pytest.raises(InputError, match="no adapter named"):
        studio.unload_adapter("effusion")


def test_an_adapter_is_refused_on_another_base_model(base, manifest, tmp_path):
    out = tmp_path / "adapter"
    assert run(base, manifest, out, "--rank", "2") == 0
    other = tmp_path / "other"
    if (base / "studio_config.json").is_file():
        CXRStudio.from_preset("tiny", seed=1).save_pretrained(other)
    else:
        tiny_diffusers.build(load_model(base).family_name, other, seed=1)
    with pytest.raises(InputError, match="was trained on"):
        load_model(other).load_adapter(out)
    with pytest.raises(InputError, match="no LoRA adapter"):
        load_model(base).load_adapter(tmp_path)


def test_diffusers_own_loader_reads_our_stable_diffusion_adapter(manifest, tmp_path):
    """Other tools can use the adapter: diffusers' load_lora_weights gives the same denoiser as ours."""
    from diffusers import StableDiffusionPipeline

    base = tiny_diffusers.build("StableDiffusionPipeline", tmp_path / "sd")
    assert run(base, manifest, tmp_path / "adapter", "--rank", "4") == 0
    studio = load_model(base)
    studio.load_adapter(tmp_path / "adapter")
    pipe = StableDiffusionPipeline.from_pretrained(base)
    pipe.load_lora_weights(str(tmp_path / "adapter"))
    x, t = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    embeds, _ = studio.family.encode_reports([REPORT])
    with torch.no_grad():
        ours = studio.family.denoiser(x, t, encoder_hidden_states=embeds).sample
        theirs = pipe.unet(x, t, encoder_hidden_states=embeds).sample
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_full_fine_tuning_writes_a_model_folder_that_loads(manifest, tmp_path):
    base = tmp_path / "base"
    CXRStudio.from_preset("tiny", seed=0).save_pretrained(base)
    assert run(base, manifest, tmp_path / "full", "--method", "full") == 0
    tuned, original = load_model(tmp_path / "full"), load_model(base)
    changed = [
        not torch.equal(a, b)
        for a, b in zip(tuned.latent_unet.state_dict().values(), original.latent_unet.state_dict().values())
    ]
    assert any(changed)
    assert all(
        torch.equal(a, b)
        for a, b in zip(tuned.autoencoder.state_dict().values(), original.autoencoder.state_dict().values())
    )


def test_a_killed_fine_tuning_run_resumes(manifest, tmp_path):
    base = tmp_path / "base"
    CXRStudio.from_preset("tiny", seed=0).save_pretrained(base)
    assert run(base, manifest, tmp_path / "a") == 0
    assert run(base, manifest, tmp_path / "b", "--max-steps", "2") == 0
    assert run(base, manifest, tmp_path / "b", "--resume") == 0  # from step 2's checkpoint to step 4
    with (
        safe_open(str(tmp_path / "a" / ADAPTER_FILE), framework="pt") as a,
        safe_open(str(tmp_path / "b" / ADAPTER_FILE), framework="pt") as b,
    ):
        for key in a.keys():  # noqa: SIM118 (safe_open is not iterable)
            torch.testing.assert_close(a.get_tensor(key), b.get_tensor(key), atol=1e-6, rtol=1e-5)


def test_the_app_loads_weighs_and_unloads_an_adapter(manifest, tmp_path):
    from cxr_studio.app_model import AppModel

    base = tmp_path / "base"
    CXRStudio.from_preset("tiny", seed=0).save_pretrained(base)
    assert run(base, manifest, tmp_path / "adapter") == 0
    model = AppModel(load_model(base), cache=tmp_path / "cache")
    folder = str(tmp_path / "adapter")  # the page names an adapter by its folder
    assert "`adapter` x 0.5" in model.load_adapter(folder, 0.5) and list(model.studio.adapters) == ["adapter"]
    assert "`adapter` x 1.5" in model.set_adapter_weight(folder, 1.5)
    with pytest.raises(InputError, match="adapter weight"):
        model.set_adapter_weight(folder, 99)
    with pytest.raises(InputError, match="no adapter named 'other'"):
        model.unload_adapter(str(tmp_path / "other"))
    assert "base model alone" in model.unload_adapter(folder) and not model.studio.adapters
    with pytest.raises(InputError, match="adapter folder"):
        model.load_adapter("", 1.0)


@pytest.mark.slow
def test_the_train_tab_runs_an_adaptation_in_the_background(manifest, tmp_path):
    import time

    from cxr_studio import jobs

    base = tmp_path / "base"
    CXRStudio.from_preset("tiny", seed=0).save_pretrained(base)
    out = tmp_path / "adapter"
    jobs.start_finetune(
        manifest=manifest, out=out, model=str(base), rank=2, max_steps=4, extra_args=["--sample-every", "2"]
    )
    deadline = time.time() + 240
    while jobs.run_is_running(out) and time.time() < deadline:
        time.sleep(1)
    progress = jobs.read_progress(out)
    assert progress["status"] == "finished" and progress["step"] == 4 and progress["losses"], progress["log"]
    assert (out / ADAPTER_FILE).is_file() and progress["stage"] == "finetune_lora"


def test_a_new_adapter_starts_from_its_seed_whatever_was_drawn_before():
    """Two runs of one command start from the same LoRA (lora_A drawn from the run's seed, lora_B zero), whatever
    the process drew before; another seed starts elsewhere."""
    from cxr_studio.pipeline.adapters import add_lora

    def initial(seed: int, drawn_before: int) -> dict[str, torch.Tensor]:
        unet = CXRStudio.from_preset("tiny", seed=0).latent_unet
        torch.randn(drawn_before)
        add_lora(unet, rank=4, seed=seed)
        return {k: v.detach().clone() for k, v in unet.named_parameters() if "lora_" in k}

    first, again, other = initial(0, 1), initial(0, 1000), initial(1, 1)
    assert first and all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if "lora_A" in k)
    assert all(not v.any() for k, v in first.items() if "lora_B" in k)
