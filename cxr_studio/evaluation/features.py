"""Feature extractors for realism metrics beyond the project's own judge; each has a ``name`` and a ``sha256``
(of its weights) that the report records.

``TorchScriptFeatures`` wraps a local TorchScript Inception-v3 such as the ``inception-2015-12-05.pt``
file that StyleGAN2-ADA and clean-fid use for FID (it needs no torchvision). TorchScript is compiled code,
not a pickle of Python objects, but it is still code from a file: only load one you trust.
``RadDinoFeatures`` loads RadDINO (``microsoft/rad-dino``, a DINOv2 ViT-B/14 trained on chest radiographs,
CheXGenBench's feature space) through transformers from a folder the user has, safetensors only. CXR Studio
never downloads either.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cxr_studio.errors import InputError
from cxr_studio.files import sha256_file


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
        self.sha256 = sha256_file(path)

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


# RadDINO's own preprocessing (its preprocessor_config.json): used when the folder has none
RADDINO_SIZE, RADDINO_MEAN, RADDINO_STD = 518, 0.5307, 0.2583


class RadDinoFeatures:
    """``images`` ``(N, 1, S, S)`` in ``[-1, 1]`` -> ``(N, D)``: the pooled CLS output (``pooler_output``) of a
    DINOv2 model (RadDINO) in a local folder (``config.json`` + ``model.safetensors``, and the
    ``preprocessor_config.json`` whose size, mean and std are applied: grayscale repeated to RGB, resized)."""

    def __init__(self, folder: str | os.PathLike[str], *, batch_size: int = 16) -> None:
        import json

        from transformers import AutoModel

        folder = Path(folder)
        weights = folder / "model.safetensors"
        if not (folder / "config.json").is_file() or not weights.is_file():
            pickled = [p.name for p in folder.glob("*.bin")] if folder.is_dir() else []
            hint = f" ({', '.join(pickled)} is a pickle, which is never loaded)" if pickled else ""
            raise InputError(
                f"{folder}: not a RadDINO folder{hint}; a transformers folder with config.json and model.safetensors "
                "(e.g. a local copy of microsoft/rad-dino) is accepted."
            )
        try:
            self.net = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
        except (OSError, ValueError) as err:
            raise InputError(f"{folder.name}: transformers could not load it ({err}).") from err
        processor = folder / "preprocessor_config.json"
        settings = json.loads(processor.read_text()) if processor.is_file() else {}
        crop = settings.get("crop_size") or settings.get("size") or {}
        self.size = (
            int(crop.get("height") or crop.get("shortest_edge") or RADDINO_SIZE)
            if isinstance(crop, dict)
            else int(crop)
        )
        self.mean = float((settings.get("image_mean") or [RADDINO_MEAN])[0])
        self.std = float((settings.get("image_std") or [RADDINO_STD])[0])
        self.batch_size = batch_size
        self.name = f"raddino:{folder.name} ({type(self.net).__name__}, {self.net.config.hidden_size}-d)"
        self.sha256 = sha256_file(weights)

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            x = (torch.from_numpy(images[start : start + self.batch_size]).float() + 1) / 2  # [0, 1]
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
            x = ((x - self.mean) / self.std).repeat(1, 3, 1, 1)
            out.append(self.net(pixel_values=x).pooler_output.double().numpy())
        return np.concatenate(out)
