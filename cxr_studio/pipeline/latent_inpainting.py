"""Latent-space inpainting: blended latent inpainting (Avrahami et al. 2023) with optional RePaint
resampling (Lugmayr et al. 2022).

Each denoising step re-imposes the known region, noised to the next step's level, through the latent
mask. With ``resample_jumps > 0`` every step is diffused back up and denoised again that many times so
the new region harmonises with the known one; that needs a stateless solver, so it runs with DDIM.
"""

from __future__ import annotations

import torch

from cxr_studio.diffusion.noise import INPAINT_STREAM, seeded_noise
from cxr_studio.diffusion.sampling import PreviewHook, StepCallback
from cxr_studio.errors import InputError
from cxr_studio.layout import Layout
from cxr_studio.pipeline.family import LatentFamily, sample


class LatentInpaintPipeline:
    """``image`` + ``latent_mask`` (1 = regenerate) + report -> the image with the masked latents regenerated,
    for any :class:`~cxr_studio.pipeline.family.LatentFamily`."""

    def __init__(self, family: LatentFamily) -> None:
        self.family = family

    @torch.no_grad()
    def __call__(
        self,
        image: torch.Tensor,
        latent_mask: torch.Tensor,
        *,
        report: str,
        negative_report: str,
        seed: int,
        num_steps: int,
        guidance_scale: float,
        sampler: str,
        strength: float,
        resample_jumps: int = 0,
        layout: Layout | None = None,
        callback: StepCallback | None = None,
        preview: PreviewHook | None = None,
    ) -> torch.Tensor:
        """``image`` ``(1, 1, S, S)`` in ``[-1, 1]``, ``latent_mask`` ``(1, 1, h, w)`` -> ``(1, 1, S, S)`` in
        ``[-1, 1]``.

        ``strength`` in ``(0, 1]``: the fraction of the schedule that is re-run (1 ignores the masked content);
        ``layout``: where the report's findings go, in the input image's normalised coordinates (None: none);
        ``preview``: each step's latent estimate, the known latents outside the mask.
        """
        family = self.family
        device = family.device
        if resample_jumps and not family.supports_resampling:
            raise InputError(
                "RePaint resampling (resample_jumps > 0) needs a DDPM-type schedule; this model samples by flow "
                "matching. Set resample_jumps to 0."
            )
        # 1. Encode the image and the reports
        known = family.encode_image(image.to(device))
        embeds, mask = family.encode_reports([report, negative_report])
        layout_maps = family.layout_maps([layout])
        scheduler = family.sampler("ddim" if resample_jumps else sampler)
        denoise_fn = family.guided(embeds, mask, guidance_scale, scheduler, layout=layout_maps)
        latent_mask = latent_mask.to(device)
        # 2. Start: pure noise at full strength, else the image noised to the first step that is re-run
        noise = seeded_noise([seed], tuple(known.shape[1:]), stream=INPAINT_STREAM, device=device)
        scheduler.set_timesteps(num_steps, device=device)
        timesteps = scheduler.timesteps
        start = num_steps - max(1, round(num_steps * strength))
        initial = None if start == 0 else family.noise_to(known, noise, scheduler, start)
        resample_noise = torch.Generator().manual_seed(seed)

        # 3. Denoise; after every step the known region comes back at the next step's noise level
        def keep_known(x: torch.Tensor, i: int) -> torch.Tensor:
            last = i + 1 >= len(timesteps)
            known_next = known if last else family.noise_to(known, noise, scheduler, i + 1)
            x = latent_mask * x + (1 - latent_mask) * known_next
            for _ in range(0 if last else resample_jumps):
                t, t_next = timesteps[i], timesteps[i + 1]
                ratio = family.resample_ratio(t, t_next)  # alpha_bar_t / alpha_bar_next < 1
                fresh = torch.randn(x.shape, generator=resample_noise).to(device)
                x_up = ratio.sqrt() * x + (1 - ratio).sqrt() * fresh
                x = scheduler.step(denoise_fn(x_up, t), t, x_up).prev_sample
                x = latent_mask * x + (1 - latent_mask) * known_next
            return x

        latents = sample(
            family,
            embeds,
            mask,
            noise,
            num_steps=num_steps,
            guidance_scale=guidance_scale,
            sampler=sampler,
            scheduler=scheduler,
            callback=callback,
            after_step=keep_known,
            start_index=start,
            initial=initial,
            layout=layout_maps,
            preview=None
            if preview is None
            else lambda clean, step, total: preview(latent_mask * clean + (1 - latent_mask) * known, step, total),
        )
        # 4. Decode
        return family.decode(latents)
