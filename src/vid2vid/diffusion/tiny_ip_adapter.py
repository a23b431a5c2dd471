"""A tiny IP-Adapter and CLIP image encoder that fit the tiny SD model (`make-tiny-model DIR --ip-adapter`).

Laid out as h94/IP-Adapter's `models/` folder, so `--ip-adapter DIR` (or the file) finds both:

    DIR/ip-adapter_tiny-sd1.safetensors    image_proj.* and ip_adapter.N.to_k_ip/to_v_ip (flat names)
    DIR/image_encoder/                     a CLIPVisionModelWithProjection (config.json + weights)

The adapter is the plain kind (ip-adapter_sd15's layout): a projection of the encoder's
embedding into 4 tokens of the text's width, and per cross-attention layer a key and a value
projection; `plus=True` gives the plus kind (a perceiver resampler over the encoder's hidden
states). Its weights are seeded random (a Linear's default scale for the projections, the
LayerNorm's identity), so the reference picture really changes the painted frames. `as_bin=True`
writes the `.bin` form (two nested dicts in a torch pickle), as older downloads are.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from vid2vid.core.errors import BadInput

ENCODER = {"hidden_size": 32, "intermediate_size": 37, "projection_dim": 32, "num_hidden_layers": 2,
           "num_attention_heads": 4, "image_size": 32, "patch_size": 4}
TOKENS = 4


def _unet(config: str):
    from diffusers import UNet2DConditionModel

    from vid2vid.diffusion.tiny import bundled_config_dir

    folder = bundled_config_dir(config) / "unet"
    if not config.startswith("tiny-") or not folder.is_dir():
        raise BadInput(f"no tiny model config named '{config}'; use tiny-sd1, tiny-sd2 or tiny-sdxl")
    return UNet2DConditionModel.from_config(json.loads((folder / "config.json").read_text(encoding="utf-8")))


def build_tiny_image_encoder(seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**ENCODER)).eval()


def _resampler(linear, width: int) -> dict[str, torch.Tensor]:
    """The plus adapters' perceiver resampler in its original names: 4 layers of width 64 (one head of 64, as
    diffusers' converter reads heads = width / 64), TOKENS queries over the encoder's hidden states."""
    dim, g_ones, zeros = 64, torch.ones, torch.zeros
    out = {"latents": linear(TOKENS, dim)[None] * dim ** 0.5 / 4, "proj_in.weight": linear(dim, ENCODER["hidden_size"]),
           "proj_in.bias": zeros(dim), "proj_out.weight": linear(width, dim), "proj_out.bias": zeros(width),
           "norm_out.weight": g_ones(width), "norm_out.bias": zeros(width)}
    for i in range(4):
        for norm in (f"layers.{i}.0.norm1", f"layers.{i}.0.norm2", f"layers.{i}.1.0"):
            out[f"{norm}.weight"], out[f"{norm}.bias"] = g_ones(dim), zeros(dim)
        out.update({f"layers.{i}.0.to_q.weight": linear(dim, dim), f"layers.{i}.0.to_kv.weight": linear(2 * dim, dim),
                    f"layers.{i}.0.to_out.weight": linear(dim, dim), f"layers.{i}.1.1.weight": linear(4 * dim, dim),
                    f"layers.{i}.1.3.weight": linear(dim, 4 * dim)})
    return out


def build_tiny_adapter(seed: int = 0, config: str = "tiny-sd1", plus: bool = False) -> dict[str, dict]:
    """{"image_proj": ..., "ip_adapter": ...} for the tiny model family `config`: ip-adapter_sd15's names, or with
    `plus` ip-adapter-plus_sd15's (a resampler over the encoder's penultimate hidden states)."""
    from vid2vid.diffusion.ip_adapter import cross_attention_layers

    unet = _unet(config)
    width = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(seed)

    def linear(out: int, inp: int) -> torch.Tensor:
        return (torch.rand(out, inp, generator=g) * 2 - 1) / inp ** 0.5

    proj = _resampler(linear, width) if plus else {
        "proj.weight": linear(TOKENS * width, ENCODER["projection_dim"]),
        "proj.bias": (torch.rand(TOKENS * width, generator=g) * 2 - 1) * 0.1,
        "norm.weight": torch.ones(width), "norm.bias": torch.zeros(width)}
    layers = {}
    for n, name in enumerate(cross_attention_layers(unet)):
        hidden = unet.get_submodule(name.rsplit(".", 1)[0]).to_k.out_features
        # keys as wide as the text's (the image tokens compete with the text in the softmax), values larger
        layers[f"{2 * n + 1}.to_k_ip.weight"] = linear(hidden, width)
        layers[f"{2 * n + 1}.to_v_ip.weight"] = linear(hidden, width) * 4.0
    return {"image_proj": proj, "ip_adapter": layers}


def make_tiny_ip_adapter(dir: str | Path, seed: int = 0, config: str = "tiny-sd1", as_bin: bool = False,
                         plus: bool = False) -> Path:
    """Write the tiny adapter (`plus`: the resampler kind) and its image encoder under `dir`; return `dir`."""
    from safetensors.torch import save_file

    target = Path(dir)
    if target.exists() and not target.is_dir():
        raise BadInput(f"{target} exists and is not a folder; pick another path for the tiny IP-Adapter")
    target.mkdir(parents=True, exist_ok=True)
    state = build_tiny_adapter(seed, config, plus)
    name = f"ip-adapter{'-plus' if plus else ''}_{config}"
    if as_bin:
        torch.save(state, str(target / f"{name}.bin"))
    else:
        flat = {f"{group}.{k}": v.contiguous() for group, part in state.items() for k, v in part.items()}
        save_file(flat, str(target / f"{name}.safetensors"))
    build_tiny_image_encoder(seed + 1).save_pretrained(str(target / "image_encoder"))
    return target
