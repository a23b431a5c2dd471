"""A tiny random motion module fitting the tiny SD model (`vid2vid make-tiny-model DIR --motion-module`).

Its layout is the tiny UNet's (levels 32/64, one layer per block, a mid block), with the
published modules' 8 heads and 32 norm groups, so a single file of it loads through the same
shape-reading path as a real one (`motion_loading.py`). AnimateDiff starts its temporal
transformers' output projections at zero (a fresh module changes nothing); here every output
projection is drawn again at random, so a test with the tiny module can see it act.

Two layouts: a diffusers `MotionAdapter` folder, or one `.safetensors` file in the original
AnimateDiff key names (with the positional tables, as `mm_sd15_v2.ckpt` has them).
"""
from __future__ import annotations

from pathlib import Path

import torch

TRAINED_FRAMES = 32
FILE_NAME = "tiny-motion-module.safetensors"
# diffusers' names -> the original AnimateDiff names (the reverse of diffusers' conversion)
_ORIGINAL = ((".attn1.", ".attention_blocks.0."), (".attn2.", ".attention_blocks.1."),
             (".norm1.", ".norms.0."), (".norm2.", ".norms.1."), (".norm3.", ".ff_norm."))


def build_tiny_motion_module(seed: int = 0, channels: tuple[int, ...] = (32, 64), layers: int = 1,
                             frames: int = TRAINED_FRAMES):
    """A tiny MotionAdapter for the tiny UNet, its output projections re-initialised (seeded)."""
    from diffusers import MotionAdapter

    from vid2vid.diffusion.motion_loading import GROUPS, HEADS

    torch.manual_seed(seed)
    adapter = MotionAdapter(block_out_channels=channels, motion_layers_per_block=layers,
                            motion_num_attention_heads=HEADS, motion_norm_num_groups=GROUPS,
                            motion_max_seq_length=frames, use_motion_mid_block=True)
    g = torch.Generator().manual_seed(seed + 1)
    for name, module in adapter.named_modules():
        if name.endswith("proj_out") and isinstance(module, torch.nn.Linear):
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * 0.3)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.05)
    return adapter.eval()


def original_key(key: str) -> str:
    """diffusers' key of a motion module weight -> the original AnimateDiff one."""
    head, sep, rest = key.partition(".motion_modules.")
    index, _, tail = rest.partition(".")
    out = f"{head}{sep}{index}.temporal_transformer.{tail}"
    for new, old in _ORIGINAL:
        out = out.replace(new, old)
    return out


def original_layout(adapter) -> dict[str, torch.Tensor]:
    """The adapter's weights in original AnimateDiff names, with a positional table per attention."""
    out = {}
    for k, v in adapter.state_dict().items():
        if k.endswith("pos_embed.pe"):
            base = original_key(k[: -len("pos_embed.pe")] + "attn1.x")[: -len("attention_blocks.0.x")]
            for i in (0, 1):
                out[f"{base}attention_blocks.{i}.pos_encoder.pe"] = v.contiguous().clone()
            continue
        out[original_key(k)] = v.contiguous().clone()
    return out


def make_tiny_motion_module(dir: str | Path, single_file: bool = False, seed: int = 0) -> Path:
    """Write the tiny motion module: a diffusers folder `dir`, or with single_file the original-layout
    `dir/tiny-motion-module.safetensors` (or `dir` itself when it ends in .safetensors)."""
    from vid2vid.diffusion.motion_loading import FAMILY_KEY
    from vid2vid.diffusion.tiny import write_tiny

    adapter = build_tiny_motion_module(seed)
    return write_tiny(adapter, dir, single_file, FILE_NAME, lambda: original_layout(adapter), "tiny motion module",
                      {"format": "pt", FAMILY_KEY: "SD 1.x"})
