"""Wan VACE models read offline: a diffusers folder, a hub id already in the cache, or ComfyUI's split
single files (`diffusion/wan_split.py` says where they are looked for, `diffusion/wan_single.py`
reads them).

`check_video_model_spec` looks at the spec without loading any weights and refuses with one line
what is not a Wan VACE model: another Wan variant (text-to-video, image-to-video), an image model
(its folder or its single file), a folder that lacks a part (named by its role).
`load_video_model` reads the parts (a diffusers folder through diffusers' `WanVACEPipeline`) and
puts them on the device: on CUDA in float16/bfloat16 with model offloading when asked (each part on the GPU only
while it runs), on the CPU in float32.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion.wan_split import locate

VACE_CLASS = "WanVACEPipeline"
ROLES = {"transformer": "the VACE transformer", "vae": "the Wan VAE", "text_encoder": "the UMT5 text encoder",
         "tokenizer": "the UMT5 tokenizer", "scheduler": "the scheduler"}
GIVE = ("give {img2img.video_model} a Wan 2.1 VACE diffusers folder or hub id (e.g. "
        "Wan-AI/Wan2.1-VACE-1.3B-diffusers), or ComfyUI's VACE transformer file")


def _part_ok(folder: Path, role: str) -> bool:
    if role == "tokenizer":
        return any((folder / n).is_file() for n in ("tokenizer.json", "spiece.model", "tokenizer.model"))
    if role == "scheduler":
        return (folder / "scheduler_config.json").is_file()
    return (folder / "config.json").is_file() and any(
        p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json") for p in folder.iterdir())


def check_folder(folder: Path) -> dict:
    """model_index.json of a Wan VACE diffusers folder, after checking the class and every part."""
    index_file = folder / "model_index.json"
    index = json.loads(index_file.read_text(encoding="utf-8"))
    cls = str(index.get("_class_name", "?"))
    if cls != VACE_CLASS:
        what = "another Wan variant" if cls.startswith("Wan") else "not a video model (an image model?)"
        raise BadInput(f"{{img2img.video_model}} {folder} is a {cls}, {what}, not Wan VACE; " + GIVE)
    for role, what in ROLES.items():
        sub = folder / role
        if not index.get(role) or index[role][0] is None or not sub.is_dir() or not _part_ok(sub, role):
            raise ModelNotFound(f"{{img2img.video_model}} {folder} lacks {what} (its '{role}' folder with config and "
                                "weights); copy the whole model folder")
    return index


def check_video_model_spec(spec: str) -> str:
    """The spec stripped, after checking it can be a Wan VACE model (nothing loaded)."""
    from vid2vid.models.hub import looks_like_hub_id

    spec = (spec or "").strip()
    if not spec:
        raise BadInput("no video model given; " + GIVE)
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "model_index.json").is_file():
        check_folder(path)
    elif path.is_file() or path.is_dir():
        locate(spec)
    elif not looks_like_hub_id(spec):
        raise ModelNotFound(f"{{img2img.video_model}} '{spec}' not found: no such folder (and not a hub id like "
                            "owner/name); " + GIVE)
    return spec


def model_identity(spec: str) -> dict:
    """What names the video model in a stage key: `spec_identity` of the spec; for ComfyUI's split files
    the identities of the three files found for it (so replacing one paints again, and the file, its
    models/ folder or the install folder name the same model)."""
    from vid2vid.core.fileid import file_id, spec_identity

    ident = spec_identity(spec, ns=True)
    path = Path(spec).expanduser()
    if not path.exists() or (path / "model_index.json").is_file():
        return ident
    try:
        parts = locate(spec)
    except BadInput:                                # refused when checked; the key stays the spec's own
        return ident
    return {part: file_id(getattr(parts, part)).record("path", ns=True)
            for part in ("transformer", "text_encoder", "vae")}


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """auto: bfloat16 on CUDA (Wan's own), float32 elsewhere; else the named dtype."""
    from vid2vid.core.devices import resolve_dtype

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return resolve_dtype(dtype, device, "{img2img.dtype}")


def load_pipeline(spec: str, dtype: torch.dtype):
    """diffusers' WanVACEPipeline from a folder or a cached hub id, never downloading; the VAE in float32
    (Wan's VAE is run so), the other parts in `dtype`."""
    from diffusers import WanVACEPipeline

    spec = check_video_model_spec(spec)
    path = Path(spec).expanduser()
    if path.exists() and not (path / "model_index.json").is_file():
        return split_pipeline(spec, dtype)
    try:
        pipe = WanVACEPipeline.from_pretrained(str(path) if path.is_dir() else spec, local_files_only=True,
                                               dtype={"default": dtype, "vae": torch.float32})
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"{{img2img.video_model}} '{spec}' could not be read offline ({str(exc).splitlines()[0]}); "
                            "download it once with huggingface-cli download, or give its folder") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def split_pipeline(spec: str, dtype: torch.dtype):
    """A WanVACEPipeline holding the parts read from ComfyUI's split files (the scheduler is not used:
    the painter steps the flow itself)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanVACEPipeline

    from vid2vid.diffusion.wan_single import load_split_parts

    pipe = WanVACEPipeline(**load_split_parts(locate(spec), dtype), scheduler=FlowMatchEulerDiscreteScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_video_model(spec: str, device: str = "auto", dtype: str = "auto", offload: bool = True):
    """The loaded parts (`diffusion/wan_vace.py: WanVace`)."""
    from vid2vid.core import devices
    from vid2vid.diffusion.wan_vace import WanVace

    dev = devices.pick(device)
    chosen = pick_dtype(dtype, dev)
    pipe = load_pipeline(spec, chosen)
    if dev.type == "cuda" and offload:
        pipe.enable_model_cpu_offload(device=dev)
    else:
        pipe.to(dev)
    parts = WanVace(pipe.transformer, pipe.vae, pipe.text_encoder, pipe.tokenizer, dev, chosen)
    for m in (pipe.transformer, pipe.vae, pipe.text_encoder):
        m.eval()
    return parts
