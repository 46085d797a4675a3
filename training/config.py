"""Training settings: one frozen dataclass, saved with every checkpoint, overridable from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxr_studio import InputError
from cxr_studio.config import LR_SCHEDULES

STAGES = ("autoencoder", "latent", "super_res", "finetune")


def option(default: Any, help: str) -> Any:
    """A TrainConfig field with its ``--help`` line (the one place that says what the option does)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """One stage's run. Every field is a ``--flag`` of the entry points (``--max-steps 500``)."""

    stage: str = option("latent", "stage to train: autoencoder, latent, super_res or finetune")
    manifest: str = option("", "the dataset: a manifest.csv (required)")
    out: str = option("runs/cascade", "model folder the stage writes into and reads earlier stages from")
    preset: str = option("demo", "architecture when the model folder does not exist yet (tiny, demo, cheff, ...)")
    max_steps: int = option(1000, "optimizer steps of this stage")
    batch_size: int = option(8, "images per batch and process (the effective batch is in the run's config.json)")
    grad_accum: int = option(1, "batches per optimizer step (gradient accumulation)")
    lr: float = option(2e-4, "peak learning rate of AdamW")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup_steps: int = option(100, "linear learning-rate warm-up, in steps")
    # on --resume with a larger --max-steps the cosine is recomputed for the new length from the current step
    lr_schedule: str = option("constant", "after the warm-up: constant, or cosine decay to 0 at --max-steps")
    clip_grad: float = option(1.0, "clip the gradient norm to this (0: no clipping)")
    ema_decay: float = option(0.999, "decay of the EMA weights, which are the ones exported for sampling")
    seed: int = option(0, "seed of the initial weights, the data order and every step's noise")
    # bf16 autocast on a CPU is opt-in: fp32 is reproducible and every bundled figure was made in it
    mixed_precision: str = option("auto", "auto (bf16 on a GPU, fp32 on a CPU), no, bf16 or fp16")
    compile: str = option("no", "torch.compile backend for each trained module's forward: no, inductor, eager, ...")
    channels_last: bool = option(False, "NHWC memory format for the trained modules (faster convolutions on some)")
    # ZeRO stage 1 through torch's ZeroRedundancyOptimizer: 8 of the 16 bytes per parameter spread over processes
    shard_optimizer: bool = option(False, "several processes: each keeps only its share of AdamW's moments")
    log_every: int = option(10, "steps between metrics.jsonl records and progress updates")
    validate_every: int = option(250, "steps between validation losses (0: never)")
    sample_every: int = option(250, "steps between sample grids (0: never)")
    checkpoint_every: int = option(250, "steps between checkpoints")
    keep_checkpoints: int = option(2, "complete checkpoints kept (older ones are deleted once a new one is complete)")
    max_bad_steps: int = option(5, "abort after this many non-finite losses in a row")
    resume: bool = option(False, "continue from the newest complete checkpoint of this run")
    # autoencoder (Cheff 7.3, Medfusion supplement)
    kl_weight: float = option(1e-6, "autoencoder: weight of the KL term")
    ssim_weight: float = option(0.25, "autoencoder: weight of the 1 - SSIM term")
    gan_weight: float = option(0.0, "autoencoder: weight of the PatchGAN hinge loss (0: no discriminator)")
    gan_start: int = option(2000, "autoencoder: step from which the discriminator is on")
    # Stable Diffusion's ft-MSE VAE: the latents stay as they are, so a latent stage trained on them stays valid
    ae_freeze_encoder: bool = option(False, "autoencoder: fine-tune the decoder alone, the encoder frozen")
    perceptual_weight: float = option(0.0, "autoencoder: weight of the LPIPS term (needs --perceptual-backbone)")
    perceptual_backbone: str = option("", "autoencoder: a local VGG16 state dict for LPIPS (never downloaded)")
    # latent diffusion
    latent_keep_encoder: bool = option(
        False, "latent: fine-tune with the model folder's tokenizer and report encoder instead of new ones"
    )
    # e.g. epsilon -> v-prediction with zero terminal SNR (Lin et al. 2024); coordinate channels added with zero
    # weights
    latent_reschedule: bool = option(
        False, "latent: fine-tune the folder's latent UNet under --preset's schedule and coordinate channels"
    )
    # the phantom, like real practice, puts 85 % of pacemakers on the left: a model learns the prior, not the report
    balance_sides: bool = option(
        False,
        "latent: draw training images so that every one-sided finding and sided device is seen as often on the "
        "patient's right as on the left (a seeded weighted draw with replacement)",
    )
    # cross-attention reaches only the coarse latent levels: a layout tells the fine ones where each finding goes
    layout: bool = option(
        False,
        "latent: train with layouts (where each finding and device goes) as input channels; a folder without "
        "layout channels gets them with zero weights, so training starts from what it draws now",
    )
    layout_truth: float = option(
        0.5,
        "latent, with --layout: fraction of examples that take the manifest's boxes column where a row has one; "
        "the rest take the rule's layout from the report (cxr_studio.layout.layout_from_report)",
    )
    layout_dropout: float = option(
        0.1, "latent, with --layout: fraction of examples whose layout is dropped on its own (report kept)"
    )
    snr_gamma: float = option(0.0, "diffusion stages: min-SNR-gamma loss weighting (0: plain MSE; 5 in the paper)")
    report_dropout: float = option(0.1, "latent: fraction of empty reports, so classifier-free guidance works")
    sample_steps: int = option(20, "denoising steps of the sample grids")
    # few-shot adaptation of any family's denoiser (python -m training.finetune); --out is the adapter folder
    model: str = option(
        "", "finetune: the base model folder, a cascade or a diffusers folder (empty: the bundled demo)"
    )
    method: str = option(
        "lora", "finetune: lora (a small adapter on the attention layers) or full (every denoiser weight)"
    )
    rank: int = option(8, "finetune: LoRA rank (adapter size; 4 to 32 is usual)")
    finetune_images: int = option(0, "finetune: train on the manifest's first N training images only (0: all)")
    # DreamBooth / RoentGen: the base model's own samples of a class report keep what it already knew
    prior_report: str = option("", "finetune: prior preservation: mix the base model's samples of this report in")
    prior_images: int = option(16, "finetune: how many prior-preservation samples to make (once, cached in the run)")
    prior_weight: float = option(1.0, "finetune: weight of the prior-preservation loss against the new images'")
    # super-resolution
    sr_crop: int = option(256, "super_res: training crop at the output size (the UNet is fully convolutional)")
    sr_low_res: str = option(
        "bicubic", "super_res: condition on bicubic downsamplings, or on autoencoder reconstructions (Cheff 7.3)"
    )
    sr_reinit: bool = option(
        False, "super_res: start from new weights of --preset's SR architecture and schedule (other stages kept)"
    )

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
        if self.method not in ("lora", "full"):
            raise InputError(f"method {self.method!r}; accepted: lora or full.")
        if self.rank < 1 or self.prior_images < 0 or self.prior_weight < 0 or self.finetune_images < 0:
            raise InputError("rank must be at least 1; prior_images, prior_weight and finetune_images at least 0.")
        if self.layout and self.stage != "latent":
            raise InputError("layout applies to the latent stage only (it conditions the latent UNet).")
        for name in ("layout_truth", "layout_dropout", "report_dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} {getattr(self, name)}: a fraction from 0 to 1 is accepted.")
        if self.balance_sides and self.stage != "latent":
            raise InputError("balance_sides applies to the latent stage only (the report's sides are its condition).")
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}.")

    @property
    def run_name(self) -> str:
        """The stage's run folder name; fine-tuning runs (Cheff's SR on autoencoder outputs, the decoder-only
        autoencoder) are runs of their own."""
        if self.stage == "super_res" and self.sr_low_res == "autoencoder":
            return "super_res_finetune"
        if self.stage == "finetune":
            return f"finetune_{self.method}"
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
    """One ``--flag`` per TrainConfig field, typed from its default, with the field's help line."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        described = f"{f.metadata['help']} (default {f.default!r})"
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=described)
        else:
            parser.add_argument(flag, type=type(f.default), default=None, help=described)


def from_arguments(args: argparse.Namespace, **fixed: Any) -> TrainConfig:
    """A TrainConfig from parsed arguments; only the flags given override the defaults."""
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    return TrainConfig(**{**values, **fixed})
