"""Training settings: one frozen dataclass, saved with every checkpoint, overridable from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxr_studio import InputError

STAGES = ("autoencoder", "latent", "super_res")
LR_SCHEDULES = ("constant", "cosine")
# Steps per stage of a whole cascade run (python -m training.train_cascade and the app's Train tab); 0 skips one.
CASCADE_STEPS = {"ae": 1000, "latent": 3000, "ae_decoder": 0, "sr": 600, "sr_finetune": 200}


@dataclass(frozen=True)
class TrainConfig:
    """One stage's run. Every field is a ``--flag`` of the entry points (``--max-steps 500``)."""

    stage: str = "latent"  # autoencoder | latent | super_res
    manifest: str = ""  # the dataset (manifest.csv)
    out: str = "runs/cascade"  # model folder the stage writes into (and reads earlier stages from)
    preset: str = "demo"  # architecture when the model folder does not exist yet
    max_steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1  # optimizer step every N batches
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    # constant after the warm-up, or cosine decay to 0 at max_steps (diffusers' schedule); on --resume with a
    # larger --max-steps the cosine is recomputed for the new length from the current step
    lr_schedule: str = "constant"
    clip_grad: float = 1.0
    ema_decay: float = 0.999  # EMA weights are the ones exported for sampling
    seed: int = 0
    mixed_precision: str = (
        "auto"  # auto: bf16 on a GPU, fp32 on a CPU (reproducible; bf16 autocast is opt-in there); no | bf16 | fp16
    )
    compile: str = (
        "no"  # torch.compile backend through accelerate: no | inductor | eager | ...; compiles each module's forward
    )
    channels_last: bool = False  # NHWC memory format for the trained modules
    # several processes: each keeps only its share of AdamW's moments (ZeRO stage 1, torch's
    # ZeroRedundancyOptimizer), 8 of the 16 bytes per parameter spread over the processes (the cheff preset)
    shard_optimizer: bool = False
    log_every: int = 10
    validate_every: int = 250  # 0: never (benchmarks)
    sample_every: int = 250  # 0: never
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    max_bad_steps: int = 5  # abort after this many non-finite losses in a row
    resume: bool = False  # continue from the newest complete checkpoint of this run
    # autoencoder (Cheff 7.3, Medfusion supplement)
    kl_weight: float = 1e-6
    ssim_weight: float = 0.25
    gan_weight: float = 0.0  # PatchGAN hinge loss weight; 0 turns the discriminator off
    gan_start: int = 2000  # discriminator switched on after this warm-up
    # Decoder-only fine-tuning (Stable Diffusion's ft-MSE VAE): the encoder and hence the latents stay as they
    # are, so a latent stage already trained on them stays valid while reconstructions sharpen.
    ae_freeze_encoder: bool = False
    # LPIPS term (Medfusion's autoencoder loss): needs a local VGG16 state dict; nothing is downloaded
    perceptual_weight: float = 0.0
    perceptual_backbone: str = ""  # torchvision vgg16 weights, .safetensors or .pth
    # latent diffusion
    # fine-tuning (e.g. at a new size after ``training.export --image-size``): keep the model folder's tokenizer
    # and report encoder instead of training new ones from scratch beside the folder's latent UNet
    latent_keep_encoder: bool = False
    # fine-tune the folder's latent UNet under --preset's latent schedule (e.g. epsilon -> v-prediction with zero
    # terminal SNR, Lin et al. 2024) and coordinate channels (added with zero weights); the folder's weights start
    latent_reschedule: bool = False
    # min-SNR-gamma loss weighting (Hang et al. 2023) for both diffusion stages; 0 = plain MSE. 5 is the paper's
    snr_gamma: float = 0.0
    report_dropout: float = 0.1  # fraction of empty reports, so classifier-free guidance works
    sample_steps: int = 20
    # super-resolution
    sr_crop: int = 256  # training crop at the output resolution (the SR UNet is fully convolutional)
    sr_low_res: str = "bicubic"  # bicubic: downsampled originals; autoencoder: D(E(x)) as Cheff's fine-tuning
    # start super-resolution from new weights with --preset's SR architecture and schedule (e.g. to change
    # its prediction type) instead of the model folder's; the other stages are kept
    sr_reinit: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"stage {self.stage!r}; accepted: {', '.join(STAGES)}.")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise InputError(f"mixed_precision {self.mixed_precision!r}; accepted: auto, no, bf16, fp16.")
        if self.perceptual_weight > 0 and not self.perceptual_backbone:
            raise InputError(
                "perceptual_weight > 0 needs --perceptual-backbone: a local VGG16 state dict (torchvision's, "
                ".safetensors or .pth). CXR Studio never downloads it; leave the weight at 0 to train without LPIPS."
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr_schedule {self.lr_schedule!r}; accepted: {', '.join(LR_SCHEDULES)}.")
        if self.snr_gamma < 0:
            raise InputError(f"snr_gamma must be 0 (off) or positive, got {self.snr_gamma}.")
        if self.sr_low_res not in ("bicubic", "autoencoder"):
            raise InputError(f"sr_low_res {self.sr_low_res!r}; accepted bicubic or autoencoder.")
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}.")

    @property
    def run_name(self) -> str:
        """The stage's run folder name; fine-tuning runs (Cheff's SR on autoencoder outputs, the decoder-only
        autoencoder) are runs of their own."""
        if self.stage == "super_res" and self.sr_low_res == "autoencoder":
            return "super_res_finetune"
        if self.stage == "latent" and self.latent_reschedule:  # a new parameterisation: a fine-tuning run of its own
            return "latent_rescheduled"
        if (
            self.stage == "autoencoder" and self.ae_freeze_encoder
        ):  # decoder-only fine-tuning after the autoencoder run
            return "autoencoder_decoder"
        return self.stage

    @property
    def run_dir(self) -> Path:
        """Checkpoints, logs and sample grids of this stage, next to the model folder."""
        return Path(self.out).parent / f"{Path(self.out).name}.runs" / self.run_name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def add_arguments(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per TrainConfig field, typed from its default."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {f.default})"
            )
        else:
            parser.add_argument(flag, type=type(f.default), default=None, help=f"(default {f.default!r})")


def from_arguments(args: argparse.Namespace, **fixed: Any) -> TrainConfig:
    """A TrainConfig from parsed arguments; only the flags given override the defaults."""
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    return TrainConfig(**{**values, **fixed})
