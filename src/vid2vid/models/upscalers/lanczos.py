"""Lanczos resampling: the upscaler that needs no model and is always available."""
from __future__ import annotations

import numpy as np
from PIL import Image

from vid2vid.core.imageops import check_rgb


class LanczosUpscaler:
    """Resample by an integer factor with PIL's Lanczos filter (float precision, clipped to [0, 1])."""

    def __init__(self, scale: int):
        if scale < 1:
            raise ValueError(f"scale must be at least 1, got {scale}")
        self.name = f"lanczos-x{scale}"
        self.scale = scale

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """float32 HxWx3 [0, 1] -> float32 (H*s)x(W*s)x3 [0, 1]."""
        img = check_rgb(image)
        h, w = img.shape[:2]
        size = (w * self.scale, h * self.scale)
        # Per channel in 32-bit float mode ("F"), so no 8-bit rounding happens on the way.
        chans = [np.asarray(Image.fromarray(img[..., c], "F").resize(size, Image.Resampling.LANCZOS))
                 for c in range(3)]
        return np.clip(np.stack(chans, axis=2), 0.0, 1.0).astype(np.float32)

