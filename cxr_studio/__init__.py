"""CXR Studio: make and edit chest radiographs with a cascaded latent diffusion model.

Public API. Scripts, the training code and the app import from here only. The model classes load
lazily, so ``import cxr_studio`` stays cheap for tools that only read images or make phantoms.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cxr_studio.errors import InputError
from cxr_studio.imaging import Radiograph, read_png_parameters, read_radiograph, save_png
from cxr_studio.version import __version__

_LAZY = {
    "CXRStudio": "cxr_studio.pipeline.studio",
    "DiffusersStudio": "cxr_studio.pipeline.studio",
    "Studio": "cxr_studio.pipeline.studio",
    "DEFAULT_MODEL": "cxr_studio.model_folders",
    "load_default": "cxr_studio.model_folders",
    "load_model": "cxr_studio.model_folders",
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
    "DiffusersStudio",
    "GenerationCancelled",
    "GenerationResult",
    "InputError",
    "Radiograph",
    "SamplingDefaults",
    "Studio",
    "StudioConfig",
    "TruncationWarning",
    "__version__",
    "load_default",
    "load_model",
    "read_png_parameters",
    "read_radiograph",
    "save_png",
]
assert set(__all__) >= set(_LAZY)

if TYPE_CHECKING:
    from cxr_studio.config import PRESETS, SamplingDefaults, StudioConfig
    from cxr_studio.diffusion.sampling import GenerationCancelled
    from cxr_studio.model_folders import DEFAULT_MODEL, load_default, load_model
    from cxr_studio.models.report_encoder import TruncationWarning
    from cxr_studio.pipeline.studio import CXRStudio, DiffusersStudio, GenerationResult, Studio


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cxr_studio' has no attribute {name!r}")
