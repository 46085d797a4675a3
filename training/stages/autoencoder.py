"""The autoencoder stage: L1 + SSIM + KL, LPIPS where a VGG16 is given, a PatchGAN after a warm-up (Medfusion);
or the decoder alone with the encoder frozen, so the latents a latent stage learned stay as they are."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from cxr_studio import CXRStudio, imaging, save_png
from cxr_studio.data.dataset import ManifestDataset, collate_skipping
from cxr_studio.evaluation.metrics import ssim
from cxr_studio.evaluation.perceptual import LPIPS
from training.config import TrainConfig
from training.stages.common import StageBase, grid, log, save


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


class AutoencoderTask(StageBase):
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
            save(self.studio, self.studio.config, self.config.out, autoencoder=autoencoder)
            log.info("decoder exported to %s (latent scaling factor kept)", self.config.out)
            return
        dataset = self.train_dataset()
        batch = collate_skipping([dataset[i] for i in range(min(64, len(dataset)))])
        latents = autoencoder.encode(batch["image"].to(self.studio.device)).latent_dist.mode()
        scaling = float(1.0 / latents.std())
        autoencoder.register_to_config(scaling_factor=scaling)
        config = self.studio.config
        config = config.replace(autoencoder=dataclasses.replace(config.autoencoder, scaling_factor=scaling))
        save(self.studio, config, self.config.out, autoencoder=autoencoder)
        log.info("autoencoder exported to %s (latent scaling factor %.4f)", self.config.out, scaling)
