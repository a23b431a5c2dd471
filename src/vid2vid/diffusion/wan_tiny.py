"""A tiny randomly initialised Wan VACE video model for tests and the demo (`make-tiny-model --video-model`).

Same families as Wan 2.1 VACE: a `WanVACETransformer3DModel` (patch 1x2x2, VACE blocks after
layers 0 and 2), an `AutoencoderKLWan` (16 latent channels, 4 frames per latent frame, 8x8 pixels
per latent pixel), a 2-layer UMT5 text encoder and a small Unigram (sentencepiece-style) tokenizer
built offline from a word list, so nothing is downloaded. Written as a diffusers folder
(`model_index.json` + one folder per part), the layout `WanVACEPipeline.from_pretrained` reads.

Freshly initialised VACE `proj_out` layers and the head are re-drawn with a larger spread so that
the control video and the reference image provably move the output in tests.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

from vid2vid.diffusion.tokenizer import TINY_WORDS

TEXT_DIM = 32          # UMT5 d_model of the tiny text encoder = the transformer's text_dim
SPIECE_SPACE = "\u2581"  # sentencepiece's word-start marker

TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
    text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", rope_max_seq_len=32, vace_layers=[0, 2], vace_in_channels=96)
VAE_CONFIG = dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                  temperal_downsample=[False, True, True])
TEXT_ENCODER_CONFIG = dict(d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                           relative_attention_num_buckets=8, relative_attention_max_distance=32,
                           dropout_rate=0.0, feed_forward_proj="gated-gelu", is_encoder_decoder=False)


def tiny_tokenizer():
    """A UMT5-style Unigram tokenizer over the tiny word list plus single characters (no download)."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(SPIECE_SPACE + w, -1.0 - 0.01 * i) for i, w in enumerate(TINY_WORDS)]
    pieces += [(c, -10.0) for c in string.ascii_lowercase + string.digits + string.punctuation]
    pieces.append((SPIECE_SPACE, -5.0))
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _spread(module: torch.nn.Module, generator: torch.Generator, scale: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=generator))


def build_tiny_wan_vace(seed: int = 0, shift: float = 3.0) -> dict:
    """The tiny parts (random, seeded): transformer, vae, text_encoder, tokenizer, scheduler."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanVACETransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    transformer = WanVACETransformer3DModel(**TRANSFORMER_CONFIG)
    vae = AutoencoderKLWan(**VAE_CONFIG)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), **TEXT_ENCODER_CONFIG))
    g = torch.Generator().manual_seed(seed + 1)
    for block in transformer.vace_blocks:
        if block.proj_out is not None:
            _spread(block.proj_out, g, 0.2)
    _spread(transformer.proj_out, g, 0.2)
    return {"transformer": transformer.eval(), "vae": vae.eval(), "text_encoder": text_encoder.eval(),
            "tokenizer": tokenizer, "scheduler": FlowMatchEulerDiscreteScheduler(shift=shift)}


def make_tiny_wan_vace(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny Wan VACE as a diffusers folder at `folder` (created); return it."""
    from diffusers import WanVACEPipeline

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    WanVACEPipeline(**build_tiny_wan_vace(seed)).save_pretrained(out)
    return out
