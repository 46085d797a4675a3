"""Tiny random diffusers pipelines of every supported family, built offline from configs (as diffusers' own
tests do) with small tokenizers made here, and saved as folders a user would have (safetensors, no checksums)."""

from __future__ import annotations

import string
from pathlib import Path

import torch

KINDS = ("StableDiffusionPipeline", "PixArtSigmaPipeline", "SanaPipeline")
WORDS = [
    "large",
    "small",
    "left",
    "right",
    "pleural",
    "effusion",
    "pneumothorax",
    "normal",
    "chest",
    "radiograph",
    "no",
    "mass",
]
CHARS = list(string.ascii_lowercase + ".,")


def clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer():
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [("▁" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in CHARS]
    return T5TokenizerFast(vocab=pieces, model_max_length=300, extra_ids=0)


def gemma_tokenizer():
    from transformers import GemmaTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "▁": 4}
    for w in WORDS:
        vocab["▁" + w] = len(vocab)
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    return GemmaTokenizerFast(vocab=vocab, merges=[], model_max_length=300)


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=2,
        sample_size=32,
    )


def build(kind: str, folder: str | Path, *, seed: int = 0, sample_size: int = 16) -> Path:
    """Save a tiny random ``kind`` pipeline into ``folder``; images are ``sample_size * 2`` px."""
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        PixArtSigmaPipeline,
        PixArtTransformer2DModel,
        PNDMScheduler,
        SanaPipeline,
        SanaTransformer2DModel,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, Gemma2Config, Gemma2Model, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    if kind == "StableDiffusionPipeline":
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16),
            layers_per_block=1,
            sample_size=sample_size,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=16,
            norm_num_groups=4,
            attention_head_dim=4,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
                hidden_size=16,
                intermediate_size=32,
                num_attention_heads=2,
                num_hidden_layers=2,
                vocab_size=64,
                max_position_embeddings=77,
            )
        )
        scheduler = PNDMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
        )
        pipe = StableDiffusionPipeline(
            vae=tiny_vae(),
            text_encoder=text_encoder,
            tokenizer=clip_tokenizer(),
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    elif kind == "PixArtSigmaPipeline":
        transformer = PixArtTransformer2DModel(
            sample_size=sample_size,
            num_layers=2,
            patch_size=2,
            attention_head_dim=8,
            num_attention_heads=2,
            caption_channels=16,
            in_channels=4,
            cross_attention_dim=16,
            out_channels=8,
            attention_bias=True,
            activation_fn="gelu-approximate",
            num_embeds_ada_norm=1000,
            norm_type="ada_norm_single",
            norm_elementwise_affine=False,
            norm_eps=1e-6,
        )
        text_encoder = T5EncoderModel(
            T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=2, num_heads=2, d_kv=8, pad_token_id=0)
        )
        pipe = PixArtSigmaPipeline(
            tokenizer=t5_tokenizer(),
            text_encoder=text_encoder,
            vae=tiny_vae(),
            transformer=transformer,
            scheduler=DPMSolverMultistepScheduler(),
        )
    elif kind == "SanaPipeline":
        transformer = SanaTransformer2DModel(
            patch_size=1,
            in_channels=4,
            out_channels=4,
            num_layers=1,
            num_attention_heads=2,
            attention_head_dim=4,
            num_cross_attention_heads=2,
            cross_attention_head_dim=4,
            cross_attention_dim=8,
            caption_channels=8,
            sample_size=sample_size,
        )
        vae = AutoencoderDC(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=2,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=(8, 8),
            decoder_block_out_channels=(8, 8),
            encoder_qkv_multiscales=((), (5,)),
            decoder_qkv_multiscales=((), (5,)),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            downsample_block_type="conv",
            upsample_block_type="interpolate",
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
            scaling_factor=0.41407,
        )
        text_encoder = Gemma2Model(
            Gemma2Config(
                head_dim=4,
                hidden_size=8,
                intermediate_size=16,
                num_attention_heads=2,
                num_hidden_layers=1,
                num_key_value_heads=2,
                vocab_size=64,
                pad_token_id=0,
            )
        )
        # the Sana checkpoints' scheduler: DPM-Solver++ on flow sigmas
        scheduler = DPMSolverMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
        )
        pipe = SanaPipeline(
            tokenizer=gemma_tokenizer(),
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )
    else:
        raise ValueError(kind)
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
