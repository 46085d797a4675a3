"""LPIPS (Zhang et al., 2018) with the VGG16 backbone: a perceptual distance for reconstructions and a loss term.

The calibrated per-channel weights of LPIPS v0.1 ship with CXR Studio (``assets/lpips``, BSD-2, 6 KB, from
the ``lpips`` package). The VGG16 backbone (528 MB of ImageNet weights) does not, and nothing downloads
it: the user points to a local copy of torchvision's ``vgg16`` state dict (``.safetensors``, or ``.pth``
read with ``weights_only=True``, never unpickled). The VGG16 feature stack is spelled out here because
torchvision has no CPU build to depend on; its layer indices match torchvision's, so its files load as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from cxr_studio.errors import InputError
from cxr_studio.files import bundled

LPIPS_WEIGHTS = bundled("lpips", "vgg_v0.1.safetensors")
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (torchvision indices)
# LPIPS' ScalingLayer: ImageNet statistics in the [-1, 1] input range
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` (same module indices), up to relu5_3."""
    layers: list[nn.Module] = []
    channels = 3
    for spec in VGG16_LAYERS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU()]
            channels = spec
    return nn.Sequential(*layers)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(
            f"{path.name}: no such VGG16 weights file (torchvision's vgg16 state dict as .safetensors or .pth)."
        )
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is the user's input, not our bug
        raise InputError(
            f"{path.name}: cannot read VGG16 weights ({type(err).__name__}); "
            "expected a state dict in .safetensors or .pth."
        ) from err


class LPIPS(nn.Module):
    """``distance(a, b)``: ``(B, 1 or 3, H, W)`` images in ``[-1, 1]`` -> ``(B,)`` LPIPS (0 = identical).

    Frozen; gradients flow to the inputs, so it serves as a loss term."""

    def __init__(
        self, backbone: str | os.PathLike[str], *, linear_weights: str | os.PathLike[str] = LPIPS_WEIGHTS
    ) -> None:
        super().__init__()
        self.features = vgg16_features()
        state = _read_state(Path(backbone))
        wanted = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")} or state
        missing = set(self.features.state_dict()) - set(wanted)
        if missing:
            raise InputError(f"{Path(backbone).name}: not a VGG16 state dict (missing {sorted(missing)[:3]}...).")
        try:
            self.features.load_state_dict({k: wanted[k] for k in self.features.state_dict()})
        except RuntimeError as err:
            raise InputError(
                f"{Path(backbone).name}: VGG16 weights of the wrong shape ({str(err).splitlines()[-1].strip()})."
            ) from err
        linear = load_file(str(linear_weights))
        for i in range(len(TAPS)):
            self.register_buffer(f"lin{i}", linear[f"lin{i}"].float())
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x.expand(-1, 3, -1, -1) - self.shift) / self.scale  # grayscale -> RGB by repetition
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))  # unit length per pixel
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        distance = torch.zeros(len(a), device=a.device, dtype=a.dtype)
        for i, (fa, fb) in enumerate(zip(self._taps(a), self._taps(b))):
            distance = distance + ((fa - fb).pow(2) * getattr(self, f"lin{i}")).sum(dim=1).mean(dim=(1, 2))
        return distance
