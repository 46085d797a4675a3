"""Startup self-check: versions with known security fixes, and settings that would weaken safe loading."""

from __future__ import annotations

import os
from importlib import metadata

# (distribution, minimum version, why)
MINIMUM = (
    ("pydicom", (3, 0, 2), "earlier versions follow path traversal in DICOMDIR (CVE-2026-32711)"),
    ("gradio", (6, 20), "earlier versions have file-access and upload advisories"),
    ("torch", (2, 10), "earlier versions are not supported"),
    ("pillow", (12, 2), "earlier versions have image-decoder advisories"),
)


def _version(text: str) -> tuple[int, ...]:
    import re

    return tuple(int(n) for n in re.findall(r"\d+", re.match(r"[\d.]*", text).group(0)))  # "6.31.0rc1" -> (6, 31, 0)


def environment_problems() -> list[str]:
    """One line per problem; an empty list means the environment is fit to run on patient data."""
    problems = []
    for distribution, minimum, why in MINIMUM:
        try:
            found = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue  # the app itself fails clearly at import if it needs a missing package
        if _version(found) < minimum:
            problems.append(
                f"{distribution} {found} is older than {'.'.join(map(str, minimum))}: {why}; "
                "pip install -r requirements.txt"
            )
    if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "").strip() not in ("", "0"):
        problems.append("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: it lets torch.load run pickled code; unset it")
    if os.environ.get("HF_HUB_OFFLINE", "1") in ("0", "false", "False"):
        problems.append(
            "HF_HUB_OFFLINE=0: CXR Studio runs offline; unset it (hub helpers switch it on only when asked)"
        )
    return problems


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), read from ``/proc/cpuinfo``'s flags.

    Without it bf16 autocast is emulated and slow: one demo latent UNet pass took 12.5 s under bf16 on an
    AVX2-only EPYC against 0.33 s in float32, so bf16 must never be what such a machine falls into."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False  # unknown: float32 is the safe side
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags
