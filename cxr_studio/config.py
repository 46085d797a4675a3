"""Every setting of the cascade, once: frozen dataclasses saved with every model folder, and named presets.

A :class:`StudioConfig` fully describes a cascade (architecture, noise schedules, sampling defaults);
``to_dict``/``from_dict`` round-trip it through the ``studio_config.json`` that every saved model carries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cxr_studio.errors import InputError
from cxr_studio.layout import LAYOUT_GROUPS

SAMPLERS = ("ddim", "dpmpp", "unipc")
LR_SCHEDULES = ("constant", "cosine")  # after the warm-up: constant, or cosine decay to 0 at the last step
# Steps per stage of a whole cascade run (python -m training.train_cascade and the app's Train tab); 0 skips one.
CASCADE_STEPS = {"ae": 1000, "latent": 3000, "ae_decoder": 0, "sr": 600, "sr_finetune": 200}
# The fast preview (generate(**PREVIEW_SAMPLING), the app's "Preview (fast)"): the model's own sampler at 3 steps,
# without super-resolution. Under trailing spacing the steps sit at t = 999, 666, 333, so a cascade that guides at
# t <= 500 (the demo) runs 4 UNet passes; a model that guides at every step runs 6.
PREVIEW_SAMPLING = {"num_steps": 3, "upscale": False}
# every evaluation command's --preview
PREVIEW_HELP = "measure the fast preview (the app's Preview (fast): config.PREVIEW_SAMPLING) instead of the defaults"


@dataclass(frozen=True)
class AutoencoderConfig:
    """diffusers ``AutoencoderKL``: downsampling factor ``2 ** (len(block_out_channels) - 1)``."""

    block_out_channels: tuple[int, ...] = (128, 256, 512)  # Cheff: 3 levels -> factor 4
    layers_per_block: int = 2
    latent_channels: int = 3  # Cheff: 3; Medfusion found 8 keeps fine devices better
    norm_num_groups: int = 32
    mid_block_attention: bool = True  # the CompVis encoder Cheff uses always has mid-block attention
    scaling_factor: float = 1.0  # latents are multiplied by this before diffusion (set from data: 1 / latent std)

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


@dataclass(frozen=True)
class ReportEncoderConfig:
    """A transformers ``BertModel`` trained from scratch on reports, and its WordPiece tokenizer."""

    vocab_size: int = 4096  # upper bound; the trained tokenizer may be smaller
    hidden_size: int = 512  # = the latent UNet's cross-attention width
    num_layers: int = 6
    num_heads: int = 8
    intermediate_size: int = 2048
    max_tokens: int = 150  # Cheff: reports are truncated to 150 tokens


@dataclass(frozen=True)
class LatentUNetConfig:
    """diffusers ``UNet2DConditionModel`` denoising latents with cross-attention to the report."""

    block_out_channels: tuple[int, ...] = (224, 448, 896, 896)
    layers_per_block: int = 2
    attention_levels: tuple[bool, ...] = (False, True, True, True)  # cross-attention per level
    num_heads: int = 8
    norm_num_groups: int = 32
    coordinate_channels: int = 0  # 2: column and row coordinates beside the latents (where "left" is)
    # one input map per item group of cxr_studio.layout (where each finding goes), after the coordinates: 0 or 8
    layout_channels: int = 0


@dataclass(frozen=True)
class SuperResConfig:
    """diffusers ``UNet2DModel`` fed ``cat([noisy high-res, upsampled low-res])`` (SR3, as in Cheff)."""

    factor: int = 4  # 256 -> 1024 in Cheff
    block_out_channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 512, 512)
    layers_per_block: int = 2
    attention_levels: tuple[bool, ...] = (False, False, False, True, True, True, True, True)
    attention_head_dim: int = 32
    norm_num_groups: int = 8
    noise_augmentation: float = 0.1  # max fraction of the schedule used to noise the low-res condition in training


@dataclass(frozen=True)
class ScheduleConfig:
    """A DDPM training schedule in diffusers terms (samplers are built from the same betas)."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"  # CompVis "linear" = sqrt-spaced = diffusers "scaled_linear"
    beta_start: float = 0.0015
    beta_end: float = 0.0295  # Cheff 7.6: 0.0195 leaves structure in x_T
    prediction_type: str = "epsilon"
    # Lin et al. 2024: rescale the betas so the last step is pure noise (alpha_bar_T = 0). With epsilon
    # prediction alpha_bar_T ~ 3e-6 makes x0 = (x - sqrt(1 - a) eps) / sqrt(a) amplify the noise error ~580x
    # at the first step; zero terminal SNR needs v-prediction (epsilon carries no information there).
    rescale_betas_zero_snr: bool = False
    timestep_spacing: str = "trailing"  # every sampler's steps; "trailing" starts at t = T - 1 (Lin et al.)


@dataclass(frozen=True)
class SamplingDefaults:
    """What generate() uses when the caller does not say; the app's sliders start here."""

    num_steps: int = 25
    guidance_scale: float = 4.0
    sampler: str = "dpmpp"
    sr_num_steps: int = 20
    sr_sampler: str = "dpmpp"
    sr_noise_level: float = 0.02  # fraction of the SR schedule used to noise the low-res condition at sampling
    latent_clip: float = 5.0  # predicted clean latents are clipped to +-this (unit-variance latents); 0 = off
    # Classifier-free guidance only at timesteps t <= this (None: at every step); above it the conditional model
    # runs alone, one pass instead of two (guidance in a limited interval, Kynkaenniemi et al. 2024: guidance at
    # high noise costs realism and diversity more than it adds faithfulness)
    guidance_max_timestep: int | None = None
    # The layout (cxr_studio.layout) enters only at timesteps t >= this (None: at every step): it places the findings
    # while the image forms, and the last steps draw their texture from the report alone (with the layout at every
    # step, a large finding fills its box to the edges, with a grid texture inside)
    layout_min_timestep: int | None = None
    # Side contrast: a report that names a side, generated without a negative report, is guided away from its
    # mirror image ("Left effusion." from "Right effusion.") instead of from the empty report, so the guided
    # direction includes the side itself (generate's ``side_contrast`` overrides it per call)
    side_contrast: bool = False
    upscale: bool = True  # run super-resolution by default (off for a cascade whose SR stage is not trained enough)


@dataclass(frozen=True)
class SamplingSettings:
    """The sampling settings of one call, complete and checked: what the caller gave, else the model's
    :class:`SamplingDefaults`. Recorded in every result's parameters."""

    num_steps: int
    guidance_scale: float
    sampler: str
    sr_num_steps: int
    sr_sampler: str

    def __post_init__(self) -> None:
        from cxr_studio.limits import LIMITS, check_number, check_steps

        check_steps("num_steps", self.num_steps)
        check_steps("sr_num_steps", self.sr_num_steps)
        check_number("guidance_scale", self.guidance_scale, 0.0, LIMITS.max_guidance)
        for name in ("sampler", "sr_sampler"):
            if getattr(self, name) not in SAMPLERS:
                raise InputError(f"{name} {getattr(self, name)!r}; accepted: {', '.join(SAMPLERS)}.")

    @classmethod
    def resolve(
        cls,
        defaults: SamplingDefaults,
        *,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        sr_num_steps: int | None = None,
        sr_sampler: str | None = None,
    ) -> SamplingSettings:
        """``None`` takes the default."""
        given = {
            "num_steps": num_steps,
            "guidance_scale": guidance_scale,
            "sampler": sampler,
            "sr_num_steps": sr_num_steps,
            "sr_sampler": sr_sampler,
        }
        settings = cls(**{name: getattr(defaults, name) if value is None else value for name, value in given.items()})
        return dataclasses.replace(settings, guidance_scale=float(settings.guidance_scale))

    def as_parameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StudioConfig:
    """The whole cascade."""

    name: str = "cheff"
    image_size: int = 256  # low-resolution stage (autoencoder and latent diffusion)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    report_encoder: ReportEncoderConfig = field(default_factory=ReportEncoderConfig)
    latent_unet: LatentUNetConfig = field(default_factory=LatentUNetConfig)
    super_res: SuperResConfig = field(default_factory=SuperResConfig)
    latent_schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    sr_schedule: ScheduleConfig = field(
        default_factory=lambda: ScheduleConfig(num_train_timesteps=2000, beta_schedule="squaredcos_cap_v2")
    )
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.autoencoder.downsampling

    @property
    def output_size(self) -> int:
        return self.image_size * self.super_res.factor

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudioConfig:
        """Rebuild from ``to_dict`` output; unknown keys are an error (a config from another version). Settings
        this version no longer has are dropped where they are off (:data:`RETIRED_SETTINGS`)."""
        return _from_dict(cls, _without_retired(data), "studio config")

    def replace(self, **changes: Any) -> StudioConfig:
        return dataclasses.replace(self, **changes)


# Settings older model folders carry that this version no longer has: read where they are off (the folder computes
# what it did), refused where they are on (the weights need a mechanism this version does not have).
RETIRED_SETTINGS = {"report_encoder": ("side_tokens",), "latent_unet": ("findings_embedding",)}


def _without_retired(data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for part, names in RETIRED_SETTINGS.items():
        if not isinstance(data.get(part), dict):
            continue
        data[part] = dict(data[part])
        for name in names:
            if data[part].pop(name, False):
                raise InputError(
                    f"studio config: {part}.{name} is on; this version does not support it. Folders with it off "
                    "load; retrain or export the model without it."
                )
    return data


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(data).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise InputError(f"{where}: unknown settings {sorted(unknown)}; known: {sorted(fields)}.")
    values = {}
    for name, value in data.items():
        kind = fields[name].type
        sub = _SUBCONFIGS.get(kind if isinstance(kind, str) else kind.__name__)
        if sub is not None:
            values[name] = _from_dict(sub, value, f"{where}.{name}")
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


_SUBCONFIGS = {
    c.__name__: c
    for c in (
        AutoencoderConfig,
        ReportEncoderConfig,
        LatentUNetConfig,
        SuperResConfig,
        ScheduleConfig,
        SamplingDefaults,
    )
}


@dataclass(frozen=True)
class EditPreset:
    """Inpainting settings the UI offers by name; grow and feather in pixels of the input image."""

    strength: float  # fraction of the schedule re-run: 1 ignores what was under the mask
    grow_px: int  # the mask is dilated by this much (device edges, halos)
    feather_px: int  # blend ramp outside the grown mask
    # What the partial re-run starts from inside the mask: "original" (what is there) or "classical"
    # (scikit-image's biharmonic fill from the surroundings: the device is gone before diffusion adds texture)
    fill: str = "original"
    report: str = ""  # used when the user gives no report


INTERPOLATION_MODES = ("report", "seed", "image", "latent-blend")  # what an interpolation runs between
EDIT_FILLS = ("original", "classical")

EDIT_PRESETS: dict[str, EditPreset] = {
    # classical fill + 40 % of the schedule: the choice the device-removal benchmark made (figures in the model card)
    "remove device": EditPreset(strength=0.4, grow_px=6, feather_px=8, fill="classical", report="No support devices."),
    "subtle fix": EditPreset(strength=0.5, grow_px=2, feather_px=4),
    "replace region": EditPreset(strength=1.0, grow_px=0, feather_px=3),
}

PRESETS: dict[str, StudioConfig] = {
    # Seconds on a CPU: for tests.
    "tiny": StudioConfig(
        name="tiny",
        image_size=32,
        autoencoder=AutoencoderConfig(
            block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, mid_block_attention=False
        ),
        report_encoder=ReportEncoderConfig(
            vocab_size=512, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_tokens=96
        ),
        latent_unet=LatentUNetConfig(
            block_out_channels=(32, 64),
            layers_per_block=1,
            attention_levels=(False, True),
            num_heads=2,
            norm_num_groups=8,
        ),
        super_res=SuperResConfig(
            factor=2,
            block_out_channels=(8, 16),
            layers_per_block=1,
            attention_levels=(False, False),
            norm_num_groups=4,
        ),
        sampling=SamplingDefaults(num_steps=4, sr_num_steps=3),
    ),
    # The bundled default's first phase: 256 px first stage, x2 super-resolution to 512 px, epsilon prediction;
    # trainable on a 2-core CPU in hours (at 128 px first, "demo128", then moved to 256 px: training/train_demo.sh),
    # then moved to v-prediction ("demo", below).
    "demo_eps": StudioConfig(
        name="demo_eps",
        image_size=256,
        autoencoder=AutoencoderConfig(
            block_out_channels=(32, 64, 128), layers_per_block=1, norm_num_groups=16, mid_block_attention=False
        ),
        report_encoder=ReportEncoderConfig(
            vocab_size=1024, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512, max_tokens=96
        ),
        latent_unet=LatentUNetConfig(
            block_out_channels=(48, 96, 192),
            layers_per_block=1,
            attention_levels=(False, True, True),
            num_heads=4,
            norm_num_groups=16,
        ),
        super_res=SuperResConfig(
            factor=2,
            block_out_channels=(16, 32, 64, 128),
            layers_per_block=1,
            attention_levels=(False,) * 4,
            norm_num_groups=8,
        ),
        # v-prediction: with epsilon prediction the cosine schedule's first steps (alpha_bar ~ 1e-9) turn a
        # small noise error into a saturated image that a briefly trained SR UNet never recovers from
        sr_schedule=ScheduleConfig(
            num_train_timesteps=2000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"
        ),
        # DDIM, as the bundle: on this model DPM-Solver++ at 20 steps draws washed-out, ghostly radiographs
        # where DDIM at 25 draws the report's findings (the sample grids written during training use these)
        sampling=SamplingDefaults(num_steps=25, sampler="ddim", sr_num_steps=6, sr_sampler="ddim"),
    ),
    # The paper's sizes (Cheff 7.3): report transformer of depth 32 and width 1280.
    "cheff": StudioConfig(
        name="cheff",
        image_size=256,
        report_encoder=ReportEncoderConfig(hidden_size=1280, num_layers=32, num_heads=16, intermediate_size=5120),
    ),
}


# The demo architecture at 128 px with x4 super-resolution to 512 px: the first part of the demo's recipe
# (4x fewer latent positions, so about 4x faster to train on a CPU), later moved to 256 px.
PRESETS["demo128"] = PRESETS["demo_eps"].replace(
    name="demo128", image_size=128, super_res=dataclasses.replace(PRESETS["demo_eps"].super_res, factor=4)
)


# The bundled demo's latent stage: the demo_eps architecture with v-prediction and zero terminal SNR (Lin et al.
# 2024: the first sampling step no longer divides a noise prediction by sqrt(alpha_bar_T) ~ 0.0017, which the
# multistep solvers cannot survive), two coordinate channels beside the latents, and no clean-latent clip (under
# v-prediction the +-5 clip only bends DDIM's guided path away from the multistep solvers'). A demo_eps folder is
# fine-tuned into it with --latent-reschedule --preset demo (training/train_demo.sh, step 4). UniPC at 10 steps and
# guidance 2, guided only at t <= 500: what the sampler benchmark, the prompt sheet and the evaluation chose; layout
# channels (step 6 adds them to the trained folder), given at t >= 300; super-resolution in 2 DDIM steps (35 dB
# against 50 steps, the judge's verdicts unchanged: the benchmark's sr_samplers section).
PRESETS["demo"] = PRESETS["demo_eps"].replace(
    name="demo",
    latent_schedule=ScheduleConfig(prediction_type="v_prediction", rescale_betas_zero_snr=True),
    latent_unet=dataclasses.replace(
        PRESETS["demo_eps"].latent_unet, coordinate_channels=2, layout_channels=len(LAYOUT_GROUPS)
    ),
    sampling=dataclasses.replace(
        PRESETS["demo_eps"].sampling,
        latent_clip=0.0,
        sampler="unipc",
        num_steps=10,
        guidance_scale=2.0,
        guidance_max_timestep=500,
        layout_min_timestep=300,
        sr_num_steps=2,
    ),
)


def preset(name: str) -> StudioConfig:
    """The named preset (``tiny``, ``demo``, ``demo_eps``, ``demo128``, ``cheff``)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; accepted: {', '.join(PRESETS)}.")
    return PRESETS[name]
