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

import json
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


COMFY_FILES = {"transformer": ("diffusion_models", "wan_tiny_vace.safetensors"),
               "text_encoder": ("text_encoders", "umt5_tiny.safetensors"),
               "vae": ("vae", "wan_tiny_vae.safetensors")}


def comfy_state_dicts(parts: dict) -> dict[str, tuple[dict, dict]]:
    """(tensors in the original layouts, metadata with the part's config) per part, as ComfyUI's split
    files hold them: the UMT5 file carries its tokenizer as a `spiece_model` tensor (Comfy-Org's way)."""
    from vid2vid.diffusion.spm_proto import Piece, write_model
    from vid2vid.diffusion.tiny import METADATA_KEY
    from vid2vid.diffusion.wan_keys import transformer_key_to_original, vae_key_to_original

    def meta(model) -> dict:
        return {METADATA_KEY: json.dumps({k: v for k, v in dict(model.config).items() if not k.startswith("_")}
                                         if hasattr(model.config, "items") else model.config.to_diff_dict())}

    tr, vae, te = parts["transformer"], parts["vae"], parts["text_encoder"]
    nrb = vae.config["num_res_blocks"]
    text = {k: v for k, v in te.state_dict().items() if k != "encoder.embed_tokens.weight"}
    vocab = parts["tokenizer"]._vocab_scores
    spiece = write_model([Piece(t, s, 3 if i < 3 else 1) for i, (t, s) in enumerate(vocab)])
    text["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    return {"transformer": ({transformer_key_to_original(k): v for k, v in tr.state_dict().items()}, meta(tr)),
            "vae": ({vae_key_to_original(k, nrb): v for k, v in vae.state_dict().items()}, meta(vae)),
            "text_encoder": (text, meta(te))}


def write_comfy_layout(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny Wan VACE as ComfyUI's three split files under `folder/models/` (the same weights
    as `make_tiny_wan_vace` with this seed); return the transformer file."""
    from safetensors.torch import save_file

    models = Path(folder) / "models"
    for part, (tensors, meta) in comfy_state_dicts(build_tiny_wan_vace(seed)).items():
        sub, name = COMFY_FILES[part]
        (models / sub).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(models / sub / name), metadata=meta)
    return models / COMFY_FILES["transformer"][0] / COMFY_FILES["transformer"][1]
