"""The upscaler protocol and the tiling helper every backend can share.

An upscaler turns one float32 RGB HxWx3 image in [0, 1] into an (H*s)x(W*s)x3 image in [0, 1],
where s = `scale` is fixed by the model. Large frames are cut into overlapping tiles so that
memory stays bounded; the overlap is cropped away again, so seams do not show.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Upscaler(Protocol):
    """One call signature for every upscaling backend."""

    name: str
    scale: int

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """float32 HxWx3 [0, 1] -> float32 (H*scale)x(W*scale)x3 [0, 1]."""
        ...


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Cut [0, length) into tiles of at most `tile` pixels that overlap by `overlap` on each inner side.

    Returns (read_start, read_end, keep_start, keep_end) per tile: the tile reads
    [read_start, read_end) and contributes [keep_start, keep_end) to the output; the kept
    spans partition [0, length) exactly.
    """
    if tile <= 0 or tile >= length:
        return [(0, length, 0, length)]
    spans = []
    for start in range(0, length, tile):
        end = min(length, start + tile)
        spans.append((max(0, start - overlap), min(length, end + overlap), start, end))
    return spans


def upscale_tiled(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: int,
                  tile: int, overlap: int = 16) -> np.ndarray:
    """Run `fn` (HxWx3 -> (H*scale)x(W*scale)x3) over overlapping tiles and stitch the results.

    `tile` is the kept tile size in input pixels (0 = whole image at once). Each tile is
    processed with `overlap` extra input pixels of context on its inner sides, which are
    cropped from its output, so a model with a receptive field below the overlap gives the
    same result as an untiled run.
    """
    h, w = image.shape[:2]
    rows, cols = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    if len(rows) == 1 and len(cols) == 1:
        return fn(image)
    out = np.empty((h * scale, w * scale, image.shape[2]), dtype=np.float32)
    for r0, r1, k0, k1 in rows:
        for c0, c1, j0, j1 in cols:
            part = fn(np.ascontiguousarray(image[r0:r1, c0:c1]))
            y0, x0 = (k0 - r0) * scale, (j0 - c0) * scale
            out[k0 * scale:k1 * scale, j0 * scale:j1 * scale] = \
                part[y0:y0 + (k1 - k0) * scale, x0:x0 + (j1 - j0) * scale]
    return out
