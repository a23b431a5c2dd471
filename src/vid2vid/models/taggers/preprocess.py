"""Each tagger family's own input preparation (what its weights were trained with).

WD14 (SmilingWolf's wd-v1-4-*-tagger-v2 and wd-*-tagger-v3, as in his reference Space):
    8-bit RGB, padded to a square with white (centred; the odd pixel goes right/bottom),
    resized to the model's input side (448) with bicubic filtering, channels in **BGR**
    order, float32 **0..255** (no scaling, no mean/std), NHWC 1xSxSx3.
DeepDanbooru (KichangKim's model; the ONNX exports keep its Keras layout):
    **RGB**, scaled to fit 512x512 keeping the aspect ratio (area filter when shrinking),
    borders filled by repeating the edge rows/columns (DeepDanbooru's own "edge" padding;
    A1111's "resize and fill"), float32 **0..1**, NHWC 1x512x512x3.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from vid2vid.core.imageops import fit, to_uint8


def _check(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def wd14_input(image: np.ndarray, size: int = 448) -> np.ndarray:
    """float32 HxWx3 RGB [0, 1] -> float32 1 x size x size x 3, BGR, 0..255, white-padded square."""
    rgb = to_uint8(_check(image))
    h, w = rgb.shape[:2]
    side = max(h, w)
    square = np.full((side, side, 3), 255, dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top:top + h, left:left + w] = rgb
    if side != size:
        square = np.asarray(Image.fromarray(square, "RGB").resize((size, size), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(square[..., ::-1], dtype=np.float32)[None]


def deepdanbooru_input(image: np.ndarray, size: int = 512) -> np.ndarray:
    """float32 HxWx3 RGB [0, 1] -> float32 1 x size x size x 3, RGB, 0..1, fitted and edge-filled."""
    return np.ascontiguousarray(fit(_check(image), size, size, "fill"), dtype=np.float32)[None]


PREPROCESS = {"wd14": wd14_input, "deepdanbooru": deepdanbooru_input}
DEFAULT_SIZE = {"wd14": 448, "deepdanbooru": 512}
