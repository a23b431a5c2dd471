"""The depth-model protocol and the pure normalisation every backend ends with.

A depth model turns one float32 RGB HxWx3 image in [0, 1] into a float32 HxWx1 depth mask in
[0, 1] of the same size, **near = bright**, min-max normalised per frame. MiDaS, DPT and
Depth Anything all predict relative inverse depth (disparity: larger = nearer), so their raw
output is normalised as it is, never inverted.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class DepthModel(Protocol):
    """One call signature for every depth backend."""

    name: str

    def predict(self, image: np.ndarray) -> np.ndarray:
        """float32 HxWx3 RGB [0, 1] -> float32 HxWx1 [0, 1], near = bright, min-max normalised."""
        ...


def normalize_depth(disparity: np.ndarray) -> np.ndarray:
    """Min-max normalise a raw HxW disparity map (larger = nearer) to float32 HxWx1 in [0, 1].

    Near becomes 1, far 0. A flat map (no finite spread) carries no depth and gives all
    zeros rather than dividing by zero; non-finite pixels become 0.
    """
    d = np.asarray(disparity, dtype=np.float64)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise ValueError(f"expected an HxW disparity map, got shape {d.shape}")
    finite = np.isfinite(d)
    if not finite.any():
        return np.zeros((*d.shape, 1), np.float32)
    lo, hi = d[finite].min(), d[finite].max()
    if not hi > lo:
        return np.zeros((*d.shape, 1), np.float32)
    out = np.where(finite, (d - lo) / (hi - lo), 0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)[..., None]
