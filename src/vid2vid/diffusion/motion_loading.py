"""Motion module files: the ones users have, read offline into diffusers' `MotionAdapter`.

Accepted: the original AnimateDiff single files (`mm_sd_v15.ckpt`, `mm_sd15_v2.ckpt`,
`v3_sd15_mm.ckpt`, `AnimateLCM_sd15_t2v.ckpt`, `mm_sdxl_v10_beta.ckpt` and their `.safetensors`
twins), the same weights already in diffusers' key names, a diffusers `MotionAdapter` folder
(config.json + weights) and a hub id (from the local hub cache when offline).

Single files carry no config, and diffusers' `MotionAdapter.from_single_file` fetches one from
the hub; here it is read off the weights instead, so nothing is fetched:
- keys are renamed as diffusers' own `convert_animatediff_checkpoint_to_diffusers` renames them
  (`temporal_transformer.` dropped, `attention_blocks.0/1` -> `attn1/2`, `norms.0/1` ->
  `norm1/2`, `ff_norm` -> `norm3`; the positional tables `pos_encoder.pe` are rebuilt, not read);
- block_out_channels from each down block's first norm, layers per block and transformer layers
  from the key numbering, the mid block from its presence, the trained window length from the
  positional table's length (v1: 24 frames, v2/v3/AnimateLCM: 32; 32 when the file has none);
- attention heads and norm groups are not visible in the shapes: 8 and 32, as every published
  motion module has (and `make_tiny_motion_module` writes).
The family (SD 1.x: four UNet levels 320..1280; SDXL: three, 320..1280) is checked against the
model before anything is painted (`check_family`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.models.hub import looks_like_hub_id, offline_reason

MOTION_FIELD = "{img2img.motion_module}"
HEADS, GROUPS = 8, 32                       # every published motion module's
FAMILIES = {(320, 640, 1280, 1280): "SD 1.x", (320, 640, 1280): "SDXL"}
FAMILY_KEY = "vid2vid_family"              # a single file's metadata naming its family (tiny modules)
_FIX = ("use an AnimateDiff motion module (e.g. mm_sd15_v2.ckpt, v3_sd15_mm.ckpt, AnimateLCM_sd15_t2v.ckpt), "
        "a diffusers MotionAdapter folder or its hub id")


def check_spec(spec: str) -> str:
    """The motion module spec, checked without loading: a file or folder that exists, or a hub id."""
    spec = (spec or "").strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{MOTION_FIELD} folder {path} has no config.json; {_FIX}")
    elif not path.is_file() and (not looks_like_hub_id(spec) or path.suffix):
        raise ModelNotFound(f"{MOTION_FIELD} '{spec}' not found: no such file or folder (and not a hub id like "
                            "owner/name)")
    return spec


def to_diffusers_keys(state: dict) -> dict:
    """Original AnimateDiff key names -> diffusers' (diffusers' own conversion; positional tables dropped)."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    if not any(".temporal_transformer." in k or ".attention_blocks." in k for k in state):
        return {k: v for k, v in state.items() if not k.endswith("pos_embed.pe")}
    return convert_animatediff_checkpoint_to_diffusers(state)


def _count(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def infer_config(state: dict, trained: int) -> dict:
    """MotionAdapter config read off diffusers-named weights (see the module's docstring)."""
    keys = list(state)
    levels = _count(keys, r"down_blocks\.(\d+)\.motion_modules\.")
    if not levels or any(k.startswith(("conv_in", "controlnet")) for k in keys):
        raise BadInput(f"{MOTION_FIELD}: the file holds no motion module weights (a SparseCtrl or other model?); "
                       + _FIX)
    channels = tuple(int(state[f"down_blocks.{i}.motion_modules.0.norm.weight"].shape[0]) for i in range(levels))
    mid = _count(keys, r"mid_block\.motion_modules\.(\d+)\.")
    return {"block_out_channels": channels,
            "motion_layers_per_block": _count(keys, r"down_blocks\.0\.motion_modules\.(\d+)\."),
            "motion_transformer_layers_per_block": _count(keys, r"down_blocks\.0\.motion_modules\.0\."
                                                                r"transformer_blocks\.(\d+)\."),
            "motion_mid_block_layers_per_block": max(mid, 1), "use_motion_mid_block": bool(mid),
            "motion_transformer_layers_per_mid_block": max(1, _count(
                keys, r"mid_block\.motion_modules\.0\.transformer_blocks\.(\d+)\.")),
            "motion_num_attention_heads": HEADS, "motion_norm_num_groups": GROUPS,
            "motion_max_seq_length": int(trained)}


def trained_length(state: dict) -> int:
    """The positional table's length in a file's weights (the longest window it was trained for)."""
    for k, v in state.items():
        if k.endswith(("pos_encoder.pe", "pos_embed.pe")) and v.dim() == 3:
            return int(v.shape[1])
    return 32


def read_single_file(path: Path):
    """A MotionAdapter (float32, CPU) from one single file; BadInput when it is not one."""
    from diffusers import MotionAdapter

    from vid2vid.diffusion.checkpoints import read_state_file

    raw, meta = read_state_file(path, "motion module")
    state = to_diffusers_keys(raw)
    adapter = MotionAdapter(**infer_config(state, trained_length(raw)))
    missing, unexpected = adapter.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("pos_embed.pe")]
    if missing or unexpected:
        raise BadInput(f"{MOTION_FIELD} {path} does not fit a motion module's layout ({len(missing)} missing, "
                       f"{len(unexpected)} unexpected weights, e.g. {(missing + unexpected)[0]}); {_FIX}")
    adapter.vid2vid_family = meta.get(FAMILY_KEY)         # tiny test modules say theirs
    return adapter


def load_adapter(spec: str):
    """The MotionAdapter a spec names (file, diffusers folder or hub id), float32 on the CPU."""
    from diffusers import MotionAdapter

    spec = check_spec(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return read_single_file(path)
    try:
        if path.is_dir():
            cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
            if cfg.get("_class_name") != "MotionAdapter":
                raise BadInput(f"{MOTION_FIELD} folder {path} holds a {cfg.get('_class_name')}, not a motion "
                               f"module; {_FIX}")
            return MotionAdapter.from_pretrained(str(path), local_files_only=True)
        return MotionAdapter.from_pretrained(spec, local_files_only=offline_reason() is not None)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise ModelNotFound(f"cannot load {MOTION_FIELD} '{spec}' ({str(exc).splitlines()[0]}); {_FIX}") from exc


def family(channels) -> str:
    """'SD 1.x', 'SDXL' or a description of an unknown layout."""
    channels = tuple(int(c) for c in channels)
    return FAMILIES.get(channels, f"a UNet with levels {'/'.join(str(c) for c in channels)}")


def module_family(adapter) -> str | None:
    """The family a motion module was made for, when its layout (or a tiny module's file) says it."""
    return FAMILIES.get(tuple(int(c) for c in adapter.config["block_out_channels"])) or \
        getattr(adapter, "vid2vid_family", None)


def model_family(unet) -> str:
    """SDXL (its UNet takes the pooled text and size embedding), SD 2.x (OpenCLIP's 1024-wide text) or SD 1.x."""
    if unet.config.get("addition_embed_type") == "text_time":
        return "SDXL"
    return "SD 2.x" if unet.config.get("cross_attention_dim") == 1024 else "SD 1.x"


def check_family(adapter, unet, model_name: str = "the model") -> None:
    """BadInput unless the motion module was made for this UNet (an SD 1.5 module on SDXL, ...)."""
    have = tuple(int(c) for c in adapter.config["block_out_channels"])
    want = tuple(int(c) for c in unet.config["block_out_channels"])
    layers = unet.config["layers_per_block"]
    layers = layers if isinstance(layers, int) else layers[0]
    made_for, model = module_family(adapter), model_family(unet)
    if made_for is not None and made_for != model:
        raise BadInput(f"{MOTION_FIELD} is made for {made_for} but the model {model_name} is {model}; use an "
                       f"{model} motion module or an {made_for} model")
    if have != want or int(adapter.config["motion_layers_per_block"]) != int(layers):
        raise BadInput(f"{MOTION_FIELD} is made for {family(have)} but the model {model_name} is {family(want)}; "
                       f"use a motion module made for {family(want)} or a {family(have)} model")
