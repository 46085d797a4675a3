"""CXR Studio: make and edit chest radiographs with a cascaded latent diffusion model.

Public API. Scripts, the training code and the app import from here only. The model classes load
lazily, so ``import cxr_studio`` stays cheap for tools that only read images or make phantoms.
"""

from __future__ import annotations

import importlib
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

__all__ = ["InputError", "Radiograph", "read_radiograph", "read_png_parameters", "save_png", "__version__", *_LAZY]

if TYPE_CHECKING:
    from cxr_studio.config import PRESETS, SamplingDefaults, StudioConfig
    from cxr_studio.diffusion.sampling import GenerationCancelled
    from cxr_studio.models.report_encoder import TruncationWarning
    from cxr_studio.pipeline.studio import CXRStudio, GenerationResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cxr_studio' has no attribute {name!r}")
