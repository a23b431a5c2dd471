"""User-supplied PyTorch upscaling models (.pth / .safetensors) through `spandrel`, an optional extra.

`spandrel` recognises ESRGAN, Real-ESRGAN (RRDB and compact), SwinIR, HAT and many more from
their weights alone. Its wheel requires torchvision, which vid2vid keeps out of the default
install, so it is imported only when such a file is asked for.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2vid.core import devices
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.core.imageops import check_rgb
from vid2vid.models.upscalers.base import upscale_tiled

SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
INSTALL_HINT = ("`pip install spandrel` (it needs torchvision; install the torchvision build that matches "
                "your torch first)")


def import_spandrel():
    try:
        import spandrel
    except ImportError as exc:
        raise ModelNotFound(f"upscaling with a PyTorch model file needs the optional package spandrel, which "
                            f"is not installed ({exc}); install it with {INSTALL_HINT}, or pick a bundled "
                            "model such as realesr-animevideov3-x2") from exc
    return spandrel


class SpandrelUpscaler:
    """A .pth upscaler loaded by spandrel; runs on CUDA when present, in tiles of `tile` input pixels."""

    def __init__(self, path: str | Path, tile: int = 0, device: str = "auto"):
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelNotFound(f"upscaler model file {p} does not exist; give the path of a .pth or "
                                ".safetensors file, or a bundled model name")
        spandrel = import_spandrel()
        import torch

        unsupported = getattr(spandrel, "UnsupportedModelError", ValueError)   # an Exception subclass
        try:
            desc = spandrel.ModelLoader().load_from_file(str(p))
        except (unsupported, ValueError, KeyError, RuntimeError) as exc:
            raise BadInput(f"{p} is not an image upscaling model spandrel knows ({exc})") from exc
        if desc.input_channels != 3 or desc.output_channels != 3:
            raise BadInput(f"{p} works on {desc.input_channels}-channel images; vid2vid needs an RGB model")
        self.name, self.scale = p.name, int(desc.scale)
        self.device = devices.pick(device, "{upscale.device}")
        self._model = desc.model.eval().to(self.device)
        self._torch = torch
        self.tile = tile if tile > 0 else 512

    def _run(self, img: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(img).permute(2, 0, 1)[None].to(self.device)
            y = self._model(x).clamp(0, 1)[0].permute(1, 2, 0).float().cpu().numpy()
        return y

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """float32 HxWx3 [0, 1] -> float32 (H*s)x(W*s)x3 [0, 1], tiled with a 16-pixel overlap."""
        return upscale_tiled(self._run, check_rgb(image), self.scale, self.tile, overlap=16)
