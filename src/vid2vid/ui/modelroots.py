"""The user's model folders: read-only roots the page lists and reads models from, besides the cache.

    vid2vid ui --models ~/stable-diffusion-webui --models ~/ComfyUI/models

A root is an A1111 or ComfyUI install folder (its `models/` inside is used) or such a `models/`
folder itself. Each model kind has the sub-folders the two layouts give it (`KINDS`); a model is
a weights file there (.safetensors, .ckpt, .pt, .pth, .bin, .gguf) or a diffusers folder
(one with `model_index.json` or `config.json`). The page never writes under a root: every
write goes through `paths.inside` of the cache folder, which a root is not part of.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from vid2vid.core.errors import BadInput

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
FOLDER_MARKERS = ("model_index.json", "config.json")
# Model kind -> the folders that hold it in A1111 (first names) and ComfyUI (lower case) layouts.
KINDS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("Stable-diffusion", "checkpoints", "diffusers"),
    "lora": ("Lora", "LyCORIS", "loras"),
    "vae": ("VAE", "vae", "vae_approx"),
    "controlnet": ("ControlNet", "controlnet", "t2i_adapter"),
    "motion_module": ("animatediff_models", "AnimateDiff", "animatediff_motion_lora"),
    "ip_adapter": ("ipadapter", "IP-Adapter"),
    "video_model": ("diffusion_models", "unet"),
    "embedding": ("embeddings",),
    "upscaler": ("ESRGAN", "RealESRGAN", "upscale_models"),
}
# Settings key -> the kind of model it names (keys not present in the settings are skipped by the page).
FIELD_KINDS: dict[str, str] = {
    "img2img.model": "checkpoint", "img2img.loras": "lora", "img2img.vae": "vae",
    "img2img.embeddings": "embedding", "img2img.motion_module": "motion_module",
    "img2img.video_model": "video_model", "video.model": "video_model", "upscale.model": "upscaler",
}
MAX_DEPTH = 3          # sub-folders searched below a kind's folder (A1111 users sort models into folders)


def models_folder(root: Path) -> Path:
    """The folder whose sub-folders are the kinds: `root/models` for an install folder, else the root."""
    inner = root / "models"
    return inner if inner.is_dir() else root


def check_roots(roots: Iterable[str | Path]) -> list[Path]:
    """The roots as resolved folders; one that is missing or a file is refused with one line."""
    out: list[Path] = []
    for r in roots:
        p = Path(r).expanduser().resolve()
        if not p.is_dir():
            raise BadInput(f"model folder {r} is not a folder; give an A1111 or ComfyUI folder (or its models/) "
                           "with --models")
        if p not in out:
            out.append(p)
    return out


def is_model(p: Path) -> bool:
    if p.is_file():
        return p.suffix.lower() in WEIGHT_SUFFIXES
    return p.is_dir() and any((p / m).is_file() for m in FOLDER_MARKERS)


def _walk(folder: Path, depth: int) -> list[Path]:
    found: list[Path] = []
    try:
        entries = sorted(folder.iterdir(), key=lambda e: e.name.lower())
    except OSError:
        return found
    for e in entries:
        if e.name.startswith("."):
            continue
        if is_model(e):
            found.append(e)
        elif e.is_dir() and depth > 0:
            found += _walk(e, depth - 1)
    return found


def find(roots: Sequence[Path], kind: str) -> list[Path]:
    """The models of one kind the roots hold, root by root, each kind folder in `KINDS` order."""
    out: list[Path] = []
    for root in roots:
        base = models_folder(root)
        for name in KINDS[kind]:
            folder = base / name
            if folder.is_dir():
                out += [p for p in _walk(folder, MAX_DEPTH) if p not in out]
    return out


def choices(roots: Sequence[Path], kind: str) -> list[tuple[str, str]]:
    """(label, path) pairs for a dropdown: the label is the path below its root's models folder."""
    out = []
    for p in find(roots, kind):
        root = next(r for r in roots if p.is_relative_to(models_folder(r)))
        out.append((f"{p.relative_to(models_folder(root))} ({root.name})", str(p)))
    return out


def containing(roots: Sequence[Path], path: Path) -> Path | None:
    """The root a resolved path lies in, or None."""
    return next((r for r in roots if path.is_relative_to(r)), None)
