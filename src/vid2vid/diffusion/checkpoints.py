"""Single-file Stable Diffusion checkpoints: reading their keys and shapes, which bundled config fits
them, and the canvas rules of the model a spec names.

A state-dict file (.safetensors, .ckpt, .pt, .pth) is read with as little as possible loaded; pickles
that hold code are refused. The config folders bundled in `vid2vid/data/configs/` are completed with
tokenizer files in a cache folder, built once.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import torch

from vid2vid.config.canvas import MAX_CANVAS_PIXELS, CanvasRules
from vid2vid.core.errors import BadInput

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
SDXL_PREFIX = "conditioner.embedders.1.model."
SD2_PREFIX = "cond_stage_model.model."
CLIP_L_TOKEN_KEY = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
UNET_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


def read_state_file(path: Path, what: str = "checkpoint", tensors: bool = True) -> tuple[dict, dict[str, str]]:
    """The state dict in a .safetensors / .ckpt / .pt / .pth file (key -> tensor, or key -> shape with
    tensors=False, which reads as little as possible) and its metadata; BadInput naming `what` if the
    file cannot be read or holds something else. Pickles that hold code are refused (weights_only)."""
    from safetensors import SafetensorError, safe_open

    try:
        if path.suffix.lower() == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                get = f.get_tensor if tensors else (lambda k: tuple(f.get_slice(k).get_shape()))
                return {k: get(k) for k in f.keys()}, dict(f.metadata() or {})
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=not tensors)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
        raise BadInput(f"cannot read {what} {path}: {exc}; is the file complete? "
                       "(pickled files that hold code are refused: convert them to .safetensors)") from exc
    while isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadInput(f"{what} {path} does not hold a state dict; is it the right kind of file?")
    if tensors:
        return {k: v for k, v in state.items() if torch.is_tensor(v)}, {}
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}, {}


def read_checkpoint_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Key -> shape and the metadata of a checkpoint, reading as little as possible."""
    return read_state_file(path, "checkpoint", tensors=False)


def detect_config(shapes: dict[str, tuple[int, ...]], metadata: dict[str, str], path: Path) -> str:
    """Which bundled config folder fits a single-file checkpoint: 'sd1', 'sd2', 'sdxl' or a tiny one
    ('tiny-sd1', 'tiny-sd2', 'tiny-sdxl': named by the file's `vid2vid_config` metadata, or tiny-sd1
    by its shapes)."""
    from vid2vid.diffusion import tiny

    named = metadata.get(tiny.METADATA_KEY)
    if named:
        if not tiny.bundled_config_dir(named).is_dir():
            raise BadInput(f"{path} asks for config '{named}', which this vid2vid does not ship; update vid2vid")
        return named
    if any(k.startswith(("lora_unet_", "lora_te_", "unet.", "lora.")) for k in shapes) and UNET_CONV_IN not in shapes:
        raise BadInput(f"{path} is a LoRA, not a model; give it as {{img2img.loras}} {path}:0.8 "
                       "beside a {img2img.model}")
    if UNET_CONV_IN not in shapes:
        raise BadInput(f"{path} has no UNet weights (model.diffusion_model.*); it is not a Stable Diffusion "
                       "checkpoint (a VAE, an embedding or another model type?)")
    in_ch = shapes[UNET_CONV_IN][1]
    if in_ch != 4:
        raise BadInput(f"{path} is an inpainting or depth model ({in_ch} UNet input channels); img2img needs a "
                       "regular SD checkpoint with 4 input channels")
    if any(k.startswith(SDXL_PREFIX) for k in shapes):
        return "sdxl"
    if any(k.startswith(SD2_PREFIX) for k in shapes):
        return "sd2"
    if CLIP_L_TOKEN_KEY in shapes:
        width = shapes[CLIP_L_TOKEN_KEY][1]
        if width == 768:
            return "sd1"
        if width == 32 and shapes[UNET_CONV_IN][0] == 32:
            return "tiny-sd1"
        raise BadInput(f"{path}: text encoder width {width} matches no known SD model (768 for SD 1.x)")
    raise BadInput(f"{path} has a UNet but no text encoder this loader knows (SD 1.x, 2.x, SDXL); "
                   "use a diffusers folder for other model families")


def prediction_type_for(name: str, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> str | None:
    """v_prediction when the file says so ('v_pred' key, metadata); None = the config's default."""
    if "v_pred" in shapes or metadata.get("modelspec.prediction_type", "").startswith("v"):
        return "v_prediction"
    if metadata.get("modelspec.prediction_type", "").startswith("eps"):
        return "epsilon"
    return None


def model_cache_dir() -> Path:
    """Where built config folders go: $VID2VID_MODEL_CACHE, else $XDG_CACHE_HOME/vid2vid, else ~/.cache/vid2vid."""
    env = os.environ.get("VID2VID_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vid2vid"


def config_folder(name: str) -> Path:
    """The bundled config `name` completed with tokenizer files, in the cache (built once, atomically)."""
    from vid2vid.diffusion import tiny, tokenizer

    src = tiny.bundled_config_dir(name)
    if not src.is_dir():
        raise BadInput(f"no bundled model config named '{name}'")
    digest = hashlib.sha1()
    for f in sorted(src.rglob("*.json")):
        digest.update(str(f.relative_to(src)).encode() + f.read_bytes())
    final = model_cache_dir() / "configs" / f"{name}-{digest.hexdigest()[:10]}"
    if (final / "model_index.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        merges = tokenizer.tiny_merges() if name.startswith("tiny-") else tokenizer.clip_merges()
        for sub in ("tokenizer", "tokenizer_2"):
            if (tmp / sub).is_dir():
                tokenizer.write_tokenizer(tmp / sub, merges)
        try:
            tmp.rename(final)
        except OSError:
            if not (final / "model_index.json").is_file():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _read_config(folder: Path, part: str) -> dict:
    try:
        return json.loads((folder / part / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def canvas_rules(model: str, max_pixels: int = MAX_CANVAS_PIXELS) -> CanvasRules:
    """The rules of the model a spec names (diffusers folder or single file; a hub id or anything
    unreadable gets Stable Diffusion's: factor 8, sides of 64 and more)."""
    path = Path(model or "").expanduser()
    folder = None
    if model and path.is_dir():
        folder = path
    elif model and path.is_file():
        from vid2vid.diffusion import tiny

        try:
            shapes, metadata = read_checkpoint_header(path)
            folder = tiny.bundled_config_dir(detect_config(shapes, metadata, path))
        except BadInput:
            folder = None          # the model check says what is wrong with the file
    if folder is not None:
        vae, unet = _read_config(folder, "vae"), _read_config(folder, "unet")
        if vae and unet:
            return CanvasRules.from_configs(vae, unet, model=str(model), max_pixels=max_pixels)
    return CanvasRules(max_pixels=max_pixels)


