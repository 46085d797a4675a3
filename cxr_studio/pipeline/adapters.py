"""LoRA adapters on a family's denoiser (peft, with diffusers' adapter utilities), saved in diffusers' LoRA format.

peft's functions are used directly rather than diffusers' ``PeftAdapterMixin``, which PixArt's transformer lacks.

An adapter folder holds ``pytorch_lora_weights.safetensors``: keys ``{component}.{module}.lora_A/B.weight``
(``unet.`` for UNets, ``transformer.`` for PixArt-Sigma and Sana), as ``load_lora_weights`` of diffusers'
pipelines and other tools read them, with safetensors metadata naming the base model (name and hash), the
component, rank and alpha. Loading an adapter onto another base model is an :class:`InputError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.utils.peft_utils import delete_adapter_layers, set_adapter_layers, set_weights_and_activate_adapters
from safetensors import safe_open
from safetensors.torch import save_file

from cxr_studio.errors import InputError
from cxr_studio.files import replacing, sha256_file

ADAPTER_FILE = "pytorch_lora_weights.safetensors"
# the attention projections of every supported denoiser (UNet2DConditionModel, PixArt and Sana transformers)
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
# The adapter being trained ("training" is taken by nn.Module); a loaded adapter never takes this name
TRAINING_NAME = "finetuning"


@dataclass(frozen=True)
class Adapter:
    """A loaded adapter: its folder, weight file hash, base model and strength."""

    name: str
    path: Path
    sha256: str
    base_model: str
    weight: float = 1.0

    def as_parameters(self) -> dict[str, object]:
        return {"name": self.name, "sha256": self.sha256[:12], "weight": self.weight, "base_model": self.base_model}


def loaded_adapters(denoiser: torch.nn.Module) -> dict[str, Adapter]:
    """The adapters loaded onto ``denoiser`` by name (the registry travels with the module that holds their layers)."""
    return denoiser.__dict__.setdefault("cxr_studio_adapters", {})


def component_of(denoiser: torch.nn.Module) -> str:
    """The key prefix diffusers' LoRA loaders expect for this denoiser."""
    return "unet" if "UNet" in type(denoiser).__name__ else "transformer"


def add_lora(denoiser: torch.nn.Module, *, rank: int, adapter_name: str = TRAINING_NAME, seed: int = 0) -> None:
    """A new, trainable LoRA of ``rank`` on the denoiser's attention projections (alpha = rank: scale 1);
    ``lora_B`` starts at zero, so the model's output is unchanged until it trains, and ``lora_A`` is drawn from
    ``seed`` (two runs of one command start from the same adapter)."""
    if not isinstance(rank, int) or rank < 1:
        raise InputError(f"LoRA rank {rank!r}; a whole number of at least 1 is accepted.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _inject(denoiser, _settings(rank), adapter_name)


def _settings(rank: int) -> dict[str, Any]:
    return {"r": rank, "lora_alpha": rank, "target_modules": list(TARGET_MODULES)}


def _inject(denoiser: torch.nn.Module, settings: dict[str, Any], adapter_name: str) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(init_lora_weights="gaussian", **settings)
    inject_adapter_in_model(config, denoiser, adapter_name=adapter_name)


def save_lora(
    denoiser: torch.nn.Module,
    folder: str | os.PathLike[str],
    *,
    base_model: str,
    rank: int,
    adapter_name: str = TRAINING_NAME,
) -> Path:
    """Write the denoiser's ``adapter_name`` LoRA to ``folder`` in diffusers' format; returns the weight file."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    component = component_of(denoiser)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(denoiser, adapter_name=adapter_name))
    tensors = {f"{component}.{key}": value.detach().float().contiguous().cpu() for key, value in state.items()}
    metadata = {
        "cxr_studio_base_model": base_model,
        "cxr_studio_component": component,
        # keyed by component, as diffusers' save_lora_weights writes it (its loaders strip the prefix)
        "lora_adapter_metadata": json.dumps(
            {f"{component}.{k}": v for k, v in _settings(rank).items()}, sort_keys=True
        ),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ADAPTER_FILE
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_adapter(folder: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str], Path]:
    """``(state dict, metadata, weight file)`` of an adapter folder (or the weight file itself)."""
    path = Path(folder)
    path = path / ADAPTER_FILE if path.is_dir() else path
    if not path.is_file() or path.suffix != ".safetensors":
        raise InputError(f"no LoRA adapter at {folder}: a folder with {ADAPTER_FILE} (safetensors) is accepted.")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
    return state, metadata, path


def load_lora(
    denoiser: torch.nn.Module,
    folder: str | os.PathLike[str],
    *,
    name: str,
    base_model: str,
    weight: float = 1.0,
) -> Adapter:
    """Load an adapter onto the denoiser of ``base_model`` (its model id, ``name@hash``) under ``name``.

    Refused: an adapter trained on another base model (by its recorded base), or one for another component."""
    state, metadata, path = read_adapter(folder)
    recorded = metadata.get("cxr_studio_base_model")
    if recorded and recorded != base_model:
        raise InputError(
            f"the adapter in {folder} was trained on {recorded}, not on the loaded model {base_model}; load "
            "that model first, or train an adapter for this one (python -m training.finetune)."
        )
    component = component_of(denoiser)
    if not any(key.startswith(f"{component}.") for key in state):
        raise InputError(f"the adapter in {folder} holds no {component} weights; it belongs to another kind of model.")
    if name == TRAINING_NAME:
        raise InputError(f"{name!r} is the name of the adapter being trained; choose another name.")
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict

    peft_state = convert_unet_state_dict_to_peft(
        {key[len(component) + 1 :]: value for key, value in state.items() if key.startswith(f"{component}.")}
    )
    recorded_settings = json.loads(metadata.get("lora_adapter_metadata", "{}"))
    settings = {k[len(component) + 1 :]: v for k, v in recorded_settings.items() if k.startswith(f"{component}.")}
    if not settings:  # another tool's adapter without metadata: rank from the weights, alpha = rank
        rank = next(v.shape[0] for k, v in peft_state.items() if "lora_A" in k)
        modules = sorted({k.split(".lora_A")[0].split(".")[-1] for k in peft_state if "lora_A" in k})
        settings = {"r": rank, "lora_alpha": rank, "target_modules": modules}
    try:
        _inject(denoiser, settings, name)
        result = set_peft_model_state_dict(denoiser, peft_state, adapter_name=name)
    except (ValueError, RuntimeError, KeyError) as err:  # shapes or module names of another architecture
        delete_adapter_layers(denoiser, name)
        raise InputError(f"the adapter in {folder} does not fit this model's {component}: {err}") from err
    if getattr(result, "unexpected_keys", None):
        delete_adapter_layers(denoiser, name)
        raise InputError(
            f"the adapter in {folder} names layers this model does not have ({result.unexpected_keys[0]}, ...)."
        )
    return Adapter(name=name, path=path, sha256=sha256_file(path), base_model=recorded or "unknown", weight=weight)


def apply_weights(denoiser: torch.nn.Module, adapters: dict[str, Adapter]) -> None:
    """Activate exactly ``adapters`` at their weights (none: the base model)."""
    if not adapters:
        set_adapter_layers(denoiser, enabled=False)
        return
    set_adapter_layers(denoiser, enabled=True)
    set_weights_and_activate_adapters(denoiser, list(adapters), [a.weight for a in adapters.values()])


def remove(denoiser: torch.nn.Module, name: str) -> None:
    """Delete adapter ``name``'s layers from the denoiser."""
    delete_adapter_layers(denoiser, name)
