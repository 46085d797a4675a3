"""The three stages of the cascade as tasks for the generic loop (Cheff 7.3; Medfusion for the autoencoder loss).

Each task reads the model folder ``config.out`` (or starts from ``config.preset``), trains its part and
writes the whole cascade back with :meth:`CXRStudio.save_pretrained`, so after every stage the folder
loads with ``CXRStudio.from_pretrained``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from torch import nn
from torch.utils.data import Dataset

from cxr_studio import CXRStudio, InputError, imaging, save_png
from cxr_studio.config import StudioConfig, preset
from cxr_studio.data.dataset import EmptySplit, ManifestDataset, SuperResPairs, collate_skipping
from cxr_studio.diffusion.objectives import drop_reports, loss_weights, training_target, weighted_mse
from cxr_studio.diffusion.schedules import training_scheduler
from cxr_studio.evaluation.metrics import ssim
from cxr_studio.evaluation.perceptual import LPIPS
from cxr_studio.labels import side_balance_weights
from cxr_studio.layout import LAYOUT_GROUPS, layout_from_report, rasterize
from cxr_studio.models.latent_unet import add_input_channels, coordinate_channels, layout_channels
from cxr_studio.models.latent_unet import predict as predict_latent
from cxr_studio.models.report_encoder import build_report_encoder, tokenize_reports, train_tokenizer
from cxr_studio.models.super_res_unet import augment, augmentation_timestep, build_super_res_unet, upsample
from cxr_studio.models.super_res_unet import predict as predict_super_res
from training import latent_cache
from training.config import TrainConfig
from training.loop import run

log = logging.getLogger("training")

# Fixed reports and seeds for the latent stage's sample grids: one per column.
GRID_REPORTS = (
    "Normal chest radiograph.",
    "Large right pleural effusion.",
    "Large left pleural effusion.",
    "Large right pneumothorax.",
    "Marked cardiomegaly.",
    "Left chest wall pacemaker with leads in the right atrium and right ventricle.",
)


def load_or_create(config: TrainConfig) -> CXRStudio:
    """The cascade in ``config.out``, or a fresh one of ``config.preset`` when the folder does not exist yet."""
    if Path(config.out).is_dir():
        return CXRStudio.from_pretrained(config.out)
    log.info("creating a new %s cascade in %s", config.preset, config.out)
    return CXRStudio.from_config(preset(config.preset), seed=config.seed)


def grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of equally sized ``[0, 1]`` images -> one image."""
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


class _StageBase:
    def __init__(self, config: TrainConfig, studio: CXRStudio) -> None:
        self.config = config
        self.studio = studio

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def sample_weights(self) -> np.ndarray | None:
        return None

    def _val(self, dataset_cls, **kwargs) -> Dataset | None:
        try:
            return dataset_cls(self.config.manifest, splits=("val",), **kwargs)
        except EmptySplit:  # no validation split in this manifest (a corrupt one still raises)
            return None


# ------------------------------------------------------------------------------------------------------
# Autoencoder: L1 + SSIM + KL (+ PatchGAN after a warm-up)
# ------------------------------------------------------------------------------------------------------


class PatchDiscriminator(nn.Sequential):
    """PatchGAN discriminator (Isola et al. 2017), as in the LDM autoencoder: one logit per image patch."""

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        blocks: list[nn.Module] = [nn.Conv2d(1, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = channels
        for i in range(1, layers):
            blocks += [
                nn.Conv2d(width, width * 2, 4, 2 if i < layers - 1 else 1, 1),
                nn.GroupNorm(8, width * 2),
                nn.LeakyReLU(0.2),
            ]
            width *= 2
        blocks.append(nn.Conv2d(width, 1, 4, 1, 1))
        super().__init__(*blocks)


class AutoencoderTask(_StageBase):
    def __init__(self, config: TrainConfig, studio: CXRStudio) -> None:
        super().__init__(config, studio)
        self.modules = {"autoencoder": studio.autoencoder.train()}
        if config.ae_freeze_encoder:
            for part in (studio.autoencoder.encoder, studio.autoencoder.quant_conv):
                part.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):  # its initial weights from the run's seed, like every other module
            torch.manual_seed(config.seed)
            self.discriminator = PatchDiscriminator().to(studio.device)
        self.perceptual = LPIPS(config.perceptual_backbone).to(studio.device) if config.perceptual_weight > 0 else None
        self.d_optimizer = torch.optim.AdamW(self.discriminator.parameters(), lr=config.lr, betas=(0.5, 0.9))
        self.average_gradients = lambda params: None  # the trainer's mean over processes, set when it runs

    def train_dataset(self) -> Dataset:
        return ManifestDataset(self.config.manifest, size=self.studio.config.image_size)

    def val_dataset(self) -> Dataset | None:
        return self._val(ManifestDataset, size=self.studio.config.image_size)

    def loss(
        self, batch: dict[str, Any], *, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        autoencoder = self.modules["autoencoder"]
        x = batch["image"].to(self.studio.device)
        posterior = autoencoder.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator, device=x.device)
        recon = autoencoder.decode(z).sample
        l1 = (recon - x).abs().mean()
        structure = 1 - ssim(recon, x).mean()
        kl = posterior.kl().mean() / x[0].numel()  # per pixel, like the other terms
        loss = l1 + cfg.ssim_weight * structure + cfg.kl_weight * kl
        logs = {"l1": float(l1.detach()), "ssim": float((1 - structure).detach()), "kl": float(kl.detach())}
        if self.perceptual is not None:
            perceptual = self.perceptual(recon, x).mean()
            loss = loss + cfg.perceptual_weight * perceptual
            logs["lpips"] = float(perceptual.detach())
        if cfg.gan_weight > 0 and step >= cfg.gan_start:
            if torch.is_grad_enabled():  # hinge-loss discriminator update on this batch
                d_loss = (
                    F.relu(1 - self.discriminator(x)).mean() + F.relu(1 + self.discriminator(recon.detach())).mean()
                )
                self.d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                self.average_gradients(self.discriminator.parameters())
                self.d_optimizer.step()
                logs["d_loss"] = float(d_loss.detach())
            adversarial = -self.discriminator(recon).mean()
            loss = loss + cfg.gan_weight * adversarial
            logs["g_adv"] = float(adversarial.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    def extra_state(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(), "d_optimizer": self.d_optimizer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])

    @torch.no_grad()
    def samples(self, path: Path) -> None:
        dataset = self.val_dataset() or self.train_dataset()
        batch = collate_skipping([dataset[i] for i in range(min(6, len(dataset)))])
        recon = self.modules["autoencoder"](batch["image"].to(self.studio.device)).sample
        originals, outputs = imaging.from_tensor(batch["image"]), imaging.from_tensor(recon)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(
            path, grid([list(originals), list(outputs)]), parameters={"grid": "top: input, bottom: reconstruction"}
        )

    @torch.no_grad()
    def export(self) -> None:
        """Scale latents to unit variance (the diffusion stage assumes it), then save the cascade. A frozen
        encoder keeps its scale: the latent stage was trained on latents scaled by it (and at another image
        size the same encoder's latents spread a little differently)."""
        autoencoder = self.modules["autoencoder"]
        if self.config.ae_freeze_encoder:
            _save(self.studio, self.studio.config, self.config.out, autoencoder=autoencoder)
            log.info("decoder exported to %s (latent scaling factor kept)", self.config.out)
            return
        dataset = self.train_dataset()
        batch = collate_skipping([dataset[i] for i in range(min(64, len(dataset)))])
        latents = autoencoder.encode(batch["image"].to(self.studio.device)).latent_dist.mode()
        scaling = float(1.0 / latents.std())
        autoencoder.register_to_config(scaling_factor=scaling)
        config = self.studio.config
        config = config.replace(autoencoder=dataclasses.replace(config.autoencoder, scaling_factor=scaling))
        _save(self.studio, config, self.config.out, autoencoder=autoencoder)
        log.info("autoencoder exported to %s (latent scaling factor %.4f)", self.config.out, scaling)


# ------------------------------------------------------------------------------------------------------
# Report encoder + latent UNet: frozen autoencoder, cached latents, report dropout for guidance
# ------------------------------------------------------------------------------------------------------


def _rebuilt(studio: CXRStudio, config: StudioConfig, **replaced: Any) -> CXRStudio:
    """``studio`` under ``config`` with the ``replaced`` components (a fine-tuning that changes the architecture)."""
    return CXRStudio(
        config=config, model_id=studio.model_id, device=studio.device, **{**studio.components(), **replaced}
    )


class LatentTask(_StageBase):
    def __init__(self, config: TrainConfig, studio: CXRStudio) -> None:
        if config.latent_reschedule:  # the same weights, trained from here on under the preset's parameterisation
            source = preset(config.preset)
            c = studio.config
            unet = add_input_channels(studio.latent_unet, coordinates=source.latent_unet.coordinate_channels)
            c = c.replace(
                latent_schedule=source.latent_schedule,
                latent_unet=dataclasses.replace(c.latent_unet, coordinate_channels=coordinate_channels(unet)),
                sampling=dataclasses.replace(c.sampling, latent_clip=source.sampling.latent_clip),
            )
            studio = _rebuilt(studio, c, latent_unet=unet)
            log.info(
                "latent stage fine-tuned under preset %s's schedule (%s) and %d coordinate channels",
                config.preset,
                source.latent_schedule,
                coordinate_channels(unet),
            )
        if config.layout and not studio.config.latent_unet.layout_channels:  # zero weights: the same images at first
            unet = add_input_channels(studio.latent_unet, layout=len(LAYOUT_GROUPS))
            c = studio.config
            c = c.replace(
                latent_unet=dataclasses.replace(
                    c.latent_unet, coordinate_channels=coordinate_channels(unet), layout_channels=layout_channels(unet)
                )
            )
            studio = _rebuilt(studio, c, latent_unet=unet)
            log.info("latent UNet: %d layout channels added with zero weights", layout_channels(unet))
        super().__init__(config, studio)
        if (
            config.latent_keep_encoder
        ):  # fine-tuning: the folder's vocabulary and encoder (a resume loads the checkpoint's)
            self.tokenizer, encoder = studio.tokenizer, studio.report_encoder
        else:
            cache = config.run_dir / "tokenizer"
            with PartialState().main_process_first():  # trained once; the other processes load it
                self.tokenizer = self._tokenizer(cache)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                encoder = build_report_encoder(studio.config.report_encoder, vocab_size=len(self.tokenizer)).to(
                    studio.device
                )
        self.modules = {"report_encoder": encoder.train(), "latent_unet": studio.latent_unet.train()}
        self.noise_schedule = training_scheduler(studio.config.latent_schedule)
        self.max_tokens = studio.config.report_encoder.max_tokens
        # a UNet with layout channels always trains with layouts (without them it would unlearn them)
        self.with_layout = studio.config.latent_unet.layout_channels > 0

    def _tokenizer(self, cache: Path) -> Any:
        """The run's tokenizer: trained on the training reports first (Cheff) and saved; a resumed run (or
        another process) reads the saved one, so the vocabulary never changes under a run."""
        from transformers import BertTokenizerFast

        if cache.is_dir():
            return BertTokenizerFast.from_pretrained(str(cache), local_files_only=True)
        reports = [row["report"] for row in ManifestDataset(self.config.manifest, size=8).rows]
        encoder_config = self.studio.config.report_encoder
        tokenizer = train_tokenizer(
            reports, vocab_size=encoder_config.vocab_size, max_tokens=encoder_config.max_tokens
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(cache))
        return tokenizer

    def _latents(self, split: str) -> Dataset | None:
        """Every image of ``split`` encoded once by the frozen autoencoder (the posterior's mode), cached in
        shards on disk and streamed (:mod:`training.latent_cache`); ``None`` when the split is empty."""
        folder = self.config.run_dir / f"latents-{split}"
        try:
            images = ManifestDataset(self.config.manifest, size=self.studio.config.image_size, splits=(split,))
        except EmptySplit:  # no such split (validation is optional); a corrupt manifest still raises
            return None
        with PartialState().main_process_first():  # encoded once; the other processes read the shards
            if not latent_cache.is_complete(folder):
                latent_cache.build(folder, images, self.studio.codec.encode)
        layouts = images if self.with_layout else None
        return _Named(
            latent_cache.LatentCache(folder),
            [row["report"] for row in images.rows],
            layouts=layouts,
            size=self.studio.config.latent_size,
        )

    def train_dataset(self) -> Dataset:
        dataset = self._latents("train")
        if dataset is None:
            raise ValueError("no training images")
        return dataset

    def val_dataset(self) -> Dataset | None:
        return self._latents("val")

    def sample_weights(self) -> np.ndarray | None:
        """With ``balance_sides``: each cached latent's weight under :func:`labels.side_balance_weights`."""
        if not self.config.balance_sides:
            return None
        rows = ManifestDataset(self.config.manifest, size=8, splits=("train",)).rows
        per_row = side_balance_weights(rows)
        return per_row[latent_cache.LatentCache(self.config.run_dir / "latents-train").indices()]

    def loss(
        self, batch: dict[str, Any], *, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.studio.device
        latents = batch["latents"].to(device)
        reports = list(batch["report"])
        if step >= 0:
            reports = drop_reports(reports, fraction=self.config.report_dropout, generator=generator)
        tokens = tokenize_reports(self.tokenizer, reports, max_tokens=self.max_tokens, warn=False)
        mask = tokens["attention_mask"].to(device)
        embeds = self.modules["report_encoder"](
            input_ids=tokens["input_ids"].to(device), attention_mask=mask
        ).last_hidden_state
        layout = self._layout(batch, reports, step=step, generator=generator) if self.with_layout else None
        noise = torch.randn(latents.shape, generator=generator, device=device)
        t = torch.randint(
            0, self.noise_schedule.config.num_train_timesteps, (len(latents),), generator=generator, device=device
        )
        noisy = self.noise_schedule.add_noise(latents, noise, t)
        predicted = predict_latent(
            self.modules["latent_unet"], noisy, t, prompt_embeds=embeds, prompt_mask=mask, layout=layout
        )
        loss = weighted_mse(
            predicted,
            training_target(self.noise_schedule, latents, noise, t),
            loss_weights(self.noise_schedule, t, snr_gamma=self.config.snr_gamma),
        )
        return loss, {"loss": float(loss.detach())}

    def _layout(
        self, batch: dict[str, Any], reports: list[str], *, step: int, generator: torch.Generator
    ) -> torch.Tensor:
        """The batch's layout maps ``(B, len(LAYOUT_GROUPS), h, w)``: per example the manifest's boxes (a
        ``layout_truth`` fraction, where the row has them) or the rule's layout from its report; none where the
        report was dropped (guidance's unconditional half) or, a ``layout_dropout`` fraction, on its own (so a
        report without a layout still works). Validation (``step < 0``) takes the rule's layout, as sampling does."""
        rule, truth = batch["layout_rule"], batch["layout_truth"]
        if step < 0:
            return rule.to(self.studio.device)
        draws = torch.rand(2, len(reports), generator=generator, device=generator.device).cpu()
        use_truth = (draws[0] < self.config.layout_truth) & batch["has_truth"]
        keep = (draws[1] >= self.config.layout_dropout) & torch.tensor([bool(r) for r in reports])
        maps = torch.where(use_truth[:, None, None, None], truth, rule) * keep[:, None, None, None]
        return maps.to(self.studio.device)

    def _studio(self) -> CXRStudio:
        """The cascade with this stage's current modules (EMA weights while sampling and exporting)."""
        return _rebuilt(self.studio, self.studio.config, tokenizer=self.tokenizer, **self.modules)

    @torch.no_grad()
    def samples(self, path: Path) -> None:
        studio = self._studio()
        result = studio.generate(next(iter(GRID_REPORTS)), seed=0, upscale=False, num_steps=self.config.sample_steps)
        images = [result.pixels[0]]
        for report in GRID_REPORTS[1:]:
            images.append(studio.generate(report, seed=0, upscale=False, num_steps=self.config.sample_steps).pixels[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, grid([images]), parameters={"reports": list(GRID_REPORTS), "seed": 0}, synthetic=True)

    def export(self) -> None:
        _save(self.studio, self.studio.config, self.config.out, tokenizer=self.tokenizer, **self.modules)
        log.info("report encoder and latent UNet exported to %s", self.config.out)


class _Named(Dataset):
    """Cached latents with their reports, as the dicts the loss expects; with ``layouts`` (the split's images)
    also each image's layout maps at the latent ``size``: ``layout_rule`` (the rule's, from the report),
    ``layout_truth`` (the manifest's boxes; zeros where the row has none) and ``has_truth``."""

    def __init__(
        self,
        cache: latent_cache.LatentCache,
        reports: list[str],
        *,
        layouts: ManifestDataset | None = None,
        size: int = 0,
    ) -> None:
        self.cache, self.reports, self.size = cache, reports, size
        self.rule = [layout_from_report(r) for r in reports] if layouts is not None else None
        self.truth = [layouts.layout(i) for i in range(len(reports))] if layouts is not None else None

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, position: int) -> dict[str, Any]:
        latents, index = self.cache[position]
        item = {"latents": latents, "report": self.reports[index], "index": position}
        if self.rule is not None and self.truth is not None:
            item["layout_rule"] = torch.from_numpy(rasterize(self.rule[index], self.size))
            item["layout_truth"] = torch.from_numpy(rasterize(self.truth[index], self.size))
            item["has_truth"] = self.truth[index] is not None
        return item


# ------------------------------------------------------------------------------------------------------
# Super-resolution: (downsampled, original) pairs, then fine-tuning on autoencoder reconstructions
# ------------------------------------------------------------------------------------------------------


class SuperResTask(_StageBase):
    def __init__(self, config: TrainConfig, studio: CXRStudio) -> None:
        if config.sr_reinit:  # a resumed run re-creates the same architecture, then loads its checkpoint
            studio = _reinit_super_res(studio, preset(config.preset), seed=config.seed)
        super().__init__(config, studio)
        self.modules = {"super_res_unet": studio.super_res_unet.train()}
        self.noise_schedule = training_scheduler(studio.config.sr_schedule)
        self.crop = min(config.sr_crop, studio.config.output_size)

    def _pairs(self, split: str) -> SuperResPairs:
        c = self.studio.config
        return SuperResPairs(
            self.config.manifest,
            size=c.output_size,
            factor=c.super_res.factor,
            crop=self.crop,
            seed=self.config.seed,
            splits=(split,),
            full_low=self.config.sr_low_res == "autoencoder",
        )

    def train_dataset(self) -> Dataset:
        return self._pairs("train")

    def val_dataset(self) -> Dataset | None:
        try:
            return self._pairs("val")
        except EmptySplit:  # no validation split in this manifest
            return None

    @torch.no_grad()
    def _low_res(self, batch: dict[str, Any]) -> torch.Tensor:
        """The condition: bicubic downsampling, or what the cascade really feeds SR (Cheff's fine-tuning):
        the autoencoder's reconstruction of the whole low-resolution image, then the crop. Why whole: its
        GroupNorm statistics are the image's; a crop alone (all lung, say) decodes with the wrong contrast."""
        if self.config.sr_low_res != "autoencoder":
            return batch["low"].to(self.studio.device)
        recon = self._reconstruct(batch["low_full"].to(self.studio.device))
        return torch.stack(
            [
                r[:, top : top + side, left : left + side]
                for r, (top, left, side) in zip(recon, batch["low_box"].tolist())
            ]
        )

    @torch.no_grad()
    def _reconstruct(self, low: torch.Tensor) -> torch.Tensor:
        return self.studio.codec.decode(self.studio.codec.encode(low))

    def loss(
        self, batch: dict[str, Any], *, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.studio.device
        high = batch["high"].to(device)
        condition = upsample(self._low_res(batch), self.studio.config.super_res.factor)
        steps = self.noise_schedule.config.num_train_timesteps
        # conditioning augmentation: noise the condition by a random amount and tell the model how much
        aug_max = augmentation_timestep(self.studio.config.super_res.noise_augmentation, steps)
        aug_t = torch.randint(0, aug_max + 1, (len(high),), generator=generator, device=device)
        augmentation = torch.randn(condition.shape, generator=generator, device=device)
        condition = augment(condition, augmentation, aug_t, self.noise_schedule)
        noise = torch.randn(high.shape, generator=generator, device=device)
        t = torch.randint(0, steps, (len(high),), generator=generator, device=device)
        noisy = self.noise_schedule.add_noise(high, noise, t)
        predicted = predict_super_res(
            self.modules["super_res_unet"], noisy, t, condition=condition, noise_level_t=aug_t
        )
        loss = weighted_mse(
            predicted,
            training_target(self.noise_schedule, high, noise, t),
            loss_weights(self.noise_schedule, t, snr_gamma=self.config.snr_gamma),
        )
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def samples(self, path: Path) -> None:
        c = self.studio.config
        full = self._val(ManifestDataset, size=c.output_size) or ManifestDataset(
            self.config.manifest, size=c.output_size
        )
        rows = []
        for i in range(min(2, len(full))):
            image = full.load(i, c.output_size)
            if image is None:
                continue
            low = imaging.to_tensor(imaging.resize(image, (c.image_size, c.image_size))).to(self.studio.device)
            if self.config.sr_low_res == "autoencoder":
                low = self._reconstruct(low)
            sr = self.studio.super_resolution(
                low,
                seeds=[0],
                num_steps=c.sampling.sr_num_steps,
                sampler=c.sampling.sr_sampler,
                noise_level=c.sampling.sr_noise_level,
            )
            rows.append([imaging.from_tensor(upsample(low, c.super_res.factor))[0], imaging.from_tensor(sr)[0], image])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, grid(rows), parameters={"grid": "bicubic | super-resolved | original"}, synthetic=True)

    def export(self) -> None:
        _save(self.studio, self.studio.config, self.config.out, **self.modules)
        log.info("super-resolution UNet exported to %s", self.config.out)


def _reinit_super_res(studio: CXRStudio, source: StudioConfig, *, seed: int) -> CXRStudio:
    """``studio`` with a freshly initialised SR UNet of ``source``'s SR architecture, factor and schedule."""
    c = studio.config
    config = c.replace(
        super_res=source.super_res,
        sr_schedule=source.sr_schedule,
        sampling=dataclasses.replace(c.sampling, **{f: getattr(source.sampling, f) for f in SR_SAMPLING}),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_super_res_unet(config.super_res, output_size=config.output_size).to(studio.device)
    log.info(
        "super-resolution UNet re-initialised from preset %s (%s)", source.name, config.sr_schedule.prediction_type
    )
    return _rebuilt(studio, config, super_res_unet=unet)


SR_SAMPLING = ("sr_num_steps", "sr_sampler", "sr_noise_level")


def _save(studio: CXRStudio, config, out: str, **replaced: Any) -> None:
    _rebuilt(studio, config, **replaced).save_pretrained(out)  # the constructor puts every module in eval mode


TASKS = {"autoencoder": AutoencoderTask, "latent": LatentTask, "super_res": SuperResTask}


def build_task(config: TrainConfig) -> Any:
    """The cascade stage ``config.stage`` on the folder ``config.out`` (or a new one of ``config.preset``);
    fine-tuning's task is :func:`training.finetune.build`."""
    if config.stage not in TASKS:
        raise InputError(f"stage {config.stage!r} is not a cascade stage; accepted: {', '.join(TASKS)}.")
    return TASKS[config.stage](config, load_or_create(config))


def train(config: TrainConfig) -> Path:
    """Run one cascade stage to completion (or until stopped); returns its run folder."""
    return run(config, build_task)
