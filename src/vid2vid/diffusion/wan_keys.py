"""Wan 2.1 key names: diffusers' layout to the original one (Wan's own repository, ComfyUI's split files).

Pure functions of a key. Each maps a diffusers parameter name to the name the original checkpoint
gives it; the loader turns that around with `original_names` over the model's own keys (a
one-to-one table, checked), so one direction is written once and the other is derived from it.
`tests/diffusion/test_wan_keys.py` checks both against diffusers' own converters
(`convert_wan_transformer_to_diffusers`, `convert_wan_vae_to_diffusers`) on the real sizes.

The UMT5 text encoder's file is in transformers' own layout (`shared`, `encoder.block.N.layer...`):
no renaming.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# the transformer: (diffusers piece, original piece), replaced in this order on dot-separated names
TRANSFORMER_PIECES = (
    ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
    ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
    ("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
    ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
    ("condition_embedder.time_proj.", "time_projection.1."),
    (".attn1.", ".self_attn."),
    (".attn2.", ".cross_attn."),
    (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."), (".to_out.0.", ".o."),
    (".norm2.", ".norm3."),                      # the cross-attention norm (the only norm with weights)
    (".ffn.net.0.proj.", ".ffn.0."),
    (".ffn.net.2.", ".ffn.2."),
)
_VACE_PROJ = re.compile(r"^(vace_blocks\.\d+)\.proj_(in|out)\.")
_BLOCK_TABLE = re.compile(r"^((?:vace_)?blocks\.\d+)\.scale_shift_table$")


def transformer_key_to_original(key: str) -> str:
    """A `WanVACETransformer3DModel` parameter name as Wan's original checkpoint names it."""
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("proj_out."):
        return "head.head." + key.removeprefix("proj_out.")
    m = _BLOCK_TABLE.match(key)
    if m:
        return f"{m.group(1)}.modulation"
    key = _VACE_PROJ.sub(lambda m: f"{m.group(1)}.{'before' if m.group(2) == 'in' else 'after'}_proj.", key)
    for new, old in TRANSFORMER_PIECES:
        key = key.replace(new, old)
    return key


_RESNET_PIECES = ((".norm1.", ".residual.0."), (".conv1.", ".residual.2."), (".norm2.", ".residual.3."),
                  (".conv2.", ".residual.6."), (".conv_shortcut.", ".shortcut."))
_VAE_FIXED = {"quant_conv": "conv1", "post_quant_conv": "conv2", "encoder.conv_in": "encoder.conv1",
              "decoder.conv_in": "decoder.conv1", "encoder.norm_out": "encoder.head.0",
              "encoder.conv_out": "encoder.head.2", "decoder.norm_out": "decoder.head.0",
              "decoder.conv_out": "decoder.head.2"}
_MID = re.compile(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.")
_UP = re.compile(r"^decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.")


def _resnet_names(rest: str) -> str:
    rest = "." + rest
    for new, old in _RESNET_PIECES:
        rest = rest.replace(new, old)
    return rest[1:]


def vae_key_to_original(key: str, num_res_blocks: int) -> str:
    """An `AutoencoderKLWan` (Wan 2.1) parameter name as Wan's original VAE checkpoint names it. The
    original decoder is one flat list: per level its `num_res_blocks + 1` residual blocks, then the
    level's upsampler; the encoder's flat list has diffusers' own numbering."""
    head, _, leaf = key.rpartition(".")
    if head in _VAE_FIXED:
        return f"{_VAE_FIXED[head]}.{leaf}"
    m = _MID.match(key)
    if m:
        side, kind, i = m.group(1), m.group(2), int(m.group(3))
        rest = key[m.end():]
        if kind == "attentions":
            return f"{side}.middle.1.{rest}"
        return f"{side}.middle.{2 * i}.{_resnet_names(rest)}"
    if key.startswith("encoder.down_blocks."):
        return "encoder.downsamples." + _resnet_names(key.removeprefix("encoder.down_blocks."))
    m = _UP.match(key)
    if m:
        level, per_level = int(m.group(1)), num_res_blocks + 2
        rest = key[m.end():]
        if m.group(3) is None:                       # the level's upsampler
            return f"decoder.upsamples.{level * per_level + num_res_blocks + 1}.{rest}"
        return f"decoder.upsamples.{level * per_level + int(m.group(3))}.{_resnet_names(rest)}"
    return key


def original_names(keys: Iterable[str], to_original: Callable[[str], str]) -> dict[str, str]:
    """original name -> diffusers name for a model's keys; a clash (two keys, one original name) raises."""
    table: dict[str, str] = {}
    for key in keys:
        old = to_original(key)
        if old in table:
            raise ValueError(f"two parameters ({table[old]}, {key}) map to one original name {old}")
        table[old] = key
    return table


DIFFUSION_PREFIX = "model.diffusion_model."     # what a whole-checkpoint save puts before the transformer's keys


def strip_prefix(key: str) -> str:
    return key.removeprefix(DIFFUSION_PREFIX)
