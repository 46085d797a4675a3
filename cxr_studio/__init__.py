"""CXR Studio: make and edit chest radiographs with a cascaded latent diffusion model.

Public API. Scripts, the training code and the app import from here only.
"""

from __future__ import annotations

from cxr_studio.errors import InputError
from cxr_studio.imaging import Radiograph, read_png_parameters, read_radiograph, save_png

__version__ = "0.1.0"

__all__ = ["InputError", "Radiograph", "read_radiograph", "read_png_parameters", "save_png", "__version__"]
