"""Model surgery, in one place: what changes a trained cascade's architecture or parameterisation before a stage
fine-tunes it. Each keeps what the cascade computes where it can (new input channels start at zero weights)."""

from __future__ import annotations

import dataclasses
import logging

import torch

from cxr_studio import CXRStudio
from cxr_studio.config import StudioConfig, preset
from cxr_studio.layout import LAYOUT_GROUPS
from cxr_studio.models.latent_unet import add_input_channels, coordinate_channels, layout_channels
from cxr_studio.models.super_res_unet import build_super_res_unet
from training.stages.common import rebuilt

log = logging.getLogger("training")

SR_SAMPLING = ("sr_num_steps", "sr_sampler", "sr_noise_level")


def rescheduled_latent_stage(studio: CXRStudio, preset_name: str) -> CXRStudio:
    """The same weights under preset ``preset_name``'s latent schedule, coordinate channels and clean-latent clip
    (e.g. epsilon -> v-prediction with zero terminal SNR; coordinate channels added with zero weights)."""
    source = preset(preset_name)
    c = studio.config
    unet = add_input_channels(studio.latent_unet, coordinates=source.latent_unet.coordinate_channels)
    c = c.replace(
        latent_schedule=source.latent_schedule,
        latent_unet=dataclasses.replace(c.latent_unet, coordinate_channels=coordinate_channels(unet)),
        sampling=dataclasses.replace(c.sampling, latent_clip=source.sampling.latent_clip),
    )
    log.info(
        "latent stage fine-tuned under preset %s's schedule (%s) and %d coordinate channels",
        preset_name,
        source.latent_schedule,
        coordinate_channels(unet),
    )
    return rebuilt(studio, c, latent_unet=unet)


def with_layout_channels(studio: CXRStudio) -> CXRStudio:
    """The latent UNet with one layout channel per item group added with zero weights (the same images at first);
    a cascade that has them is returned as it is."""
    if studio.config.latent_unet.layout_channels:
        return studio
    unet = add_input_channels(studio.latent_unet, layout=len(LAYOUT_GROUPS))
    c = studio.config
    c = c.replace(
        latent_unet=dataclasses.replace(
            c.latent_unet, coordinate_channels=coordinate_channels(unet), layout_channels=layout_channels(unet)
        )
    )
    log.info("latent UNet: %d layout channels added with zero weights", layout_channels(unet))
    return rebuilt(studio, c, latent_unet=unet)


def reinitialised_super_res(studio: CXRStudio, source: StudioConfig, *, seed: int) -> CXRStudio:
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
    return rebuilt(studio, config, super_res_unet=unet)
