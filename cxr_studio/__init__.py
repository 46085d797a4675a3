"""CXR Studio: make and edit chest radiographs with a cascaded latent diffusion model.

Public API. Scripts, the training code and the app import from here only. The model classes load
lazily, so ``import cxr_studio`` stays cheap for tools that only read images or make phantoms.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxr_studio.errors import InputError
from cxr_studio.imaging import Radiograph, read_png_parameters, read_radiograph, save_png

__version__ = "0.2.0"

_LAZY = {
    "CXRStudio": "cxr_studio.pipeline.studio",
    "GenerationResult": "cxr_studio.pipeline.studio",
    "GenerationCancelled": "cxr_studio.diffusion.sampling",
    "StudioConfig": "cxr_studio.config",
    "SamplingDefaults": "cxr_studio.config",
    "PRESETS": "cxr_studio.config",
    "TruncationWarning": "cxr_studio.models.report_encoder",
}

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    # the lazy attributes (_LAZY), spelled out so that tools see them
    "CXRStudio",
    "GenerationCancelled",
    "GenerationResult",
    "InputError",
    "Radiograph",
    "SamplingDefaults",
    "StudioConfig",
    "TruncationWarning",
    "__version__",
    "load_default",
    "read_png_parameters",
    "read_radiograph",
    "save_png",
]
assert set(__all__) >= set(_LAZY)

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo"  # the bundled demo cascade


def load_default(*, device: str | None = None) -> CXRStudio:
    """The bundled demo cascade (trained on the phantom set; see assets/demo/MODEL_CARD.md), loaded offline."""
    from cxr_studio.pipeline.studio import CXRStudio

    if not (DEFAULT_MODEL / "model_index.json").is_file():
        raise InputError(
            f"the bundled demo cascade is missing from {DEFAULT_MODEL}; reinstall CXR Studio, or train it with "
            "'bash training/train_demo.sh' and copy runs/demo/model there."
        )
    return CXRStudio.from_pretrained(DEFAULT_MODEL, device=device)


if TYPE_CHECKING:
    from cxr_studio.config import PRESETS, SamplingDefaults, StudioConfig
    from cxr_studio.diffusion.sampling import GenerationCancelled
    from cxr_studio.models.report_encoder import TruncationWarning
    from cxr_studio.pipeline.studio import CXRStudio, GenerationResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cxr_studio' has no attribute {name!r}")
