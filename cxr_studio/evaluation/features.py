"""Feature extractors for realism metrics beyond the project's own judge.

``TorchScriptFeatures`` wraps a local TorchScript Inception-v3 such as the ``inception-2015-12-05.pt``
file that StyleGAN2-ADA and clean-fid use for FID (it needs no torchvision). CXR Studio never downloads
it: the user points to a file they have. TorchScript is compiled code, not a pickle of Python objects,
but it is still code from a file: only load one you trust.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cxr_studio.errors import InputError


class TorchScriptFeatures:
    """``images`` ``(N, 1, S, S)`` in ``[-1, 1]`` -> ``(N, D)`` features from a TorchScript network that takes
    ``(N, 3, 299, 299)`` uint8-range images (grayscale repeated to RGB, bilinear resize, as for FID)."""

    def __init__(self, path: str | os.PathLike[str], *, batch_size: int = 32) -> None:
        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"{path.name}: no such feature network file (a TorchScript .pt, e.g. inception-2015-12-05.pt)."
            )
        try:
            self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as err:
            raise InputError(f"{path.name}: not a TorchScript archive ({err}).") from err
        self.batch_size = batch_size
        self.name = f"torchscript:{path.name}"

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            x = torch.from_numpy(images[start : start + self.batch_size]).float()
            x = F.interpolate((x + 1) * 127.5, size=(299, 299), mode="bilinear", align_corners=False).repeat(
                1, 3, 1, 1
            )
            try:
                features = self.net(
                    x.round().clamp(0, 255), return_features=True
                )  # the StyleGAN / clean-fid signature
            except (RuntimeError, TypeError):
                features = self.net(x.round().clamp(0, 255))
            out.append(features.flatten(1).double().numpy())
        return np.concatenate(out)
