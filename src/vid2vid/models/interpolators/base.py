"""The interpolator protocol, plain blending, and timesteps for models that only know the middle.

An interpolator makes the frame at time t in (0, 1) between frames a (t = 0) and b (t = 1);
frames are float32 RGB HxWx3 in [0, 1]. Models with a timestep input answer any t exactly;
middle-only models (RIFE HDv3) answer t = 1/2 and reach other times by recursive midpoints,
rounded to the nearest multiple of 1/2^depth.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Interpolator(Protocol):
    """One call signature for every frame interpolation backend."""

    name: str
    supports_timestep: bool     # False: only t = 0.5 is native (others via midpoints)

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        """float32 HxWx3 [0, 1] frames a (t=0), b (t=1) -> float32 HxWx3 [0, 1] frame at t."""
        ...


class BlendInterpolator:
    """Cross-fade: (1 - t) * a + t * b. The baseline every motion-aware model must beat."""

    name = "blend"
    supports_timestep = True

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        a32, b32 = np.asarray(a, np.float32), np.asarray(b, np.float32)
        return (a32 * np.float32(1 - t) + b32 * np.float32(t)).astype(np.float32)


def dyadic_path(t: float, depth: int) -> tuple[int, ...] | None:
    """Bisection steps that reach t rounded to the nearest k / 2^depth, starting from the middle.

    Each step halves the current interval: 0 keeps the left half, 1 the right half; the frame
    wanted is the middle of the last interval. t = 0.5 -> (), 0.25 -> (0,), 0.625 -> (1, 0).
    None when t rounds to 0 or 1 (no new frame needed).
    """
    k, d = int(round(t * 2 ** depth)), depth
    if k <= 0 or k >= 2 ** depth:
        return None
    while k % 2 == 0:           # k / 2^d in lowest terms
        k, d = k // 2, d - 1
    steps: list[int] = []
    lo, hi = 0, 2 ** d          # the interval, in units of 1 / 2^d
    while (lo + hi) // 2 != k:
        mid = (lo + hi) // 2
        if k < mid:
            steps.append(0)
            hi = mid
        else:
            steps.append(1)
            lo = mid
    return tuple(steps)


def interpolate_many(model: Interpolator, a: np.ndarray, b: np.ndarray, ts: Sequence[float],
                     depth: int = 4) -> list[np.ndarray]:
    """Frames at each t in `ts` between a and b (float32 HxWx3 [0, 1] each).

    Exact timesteps when the model has them; otherwise recursive midpoints with t rounded to
    the nearest multiple of 1 / 2^depth, sharing midpoints between the t values asked for.
    t that is (or rounds to) 0 gives a copy of a, 1 a copy of b.
    """
    mids: dict[tuple[int, ...], np.ndarray] = {}

    def midpoint(path: tuple[int, ...]) -> np.ndarray:
        left, right = a, b
        for i in range(len(path) + 1):
            key = path[:i]
            if key not in mids:
                mids[key] = model.interpolate(left, right, 0.5)
            if i < len(path):
                left, right = (left, mids[key]) if path[i] == 0 else (mids[key], right)
        return mids[path]

    out: list[np.ndarray] = []
    for t in map(float, ts):
        if 0 < t < 1 and model.supports_timestep:
            out.append(model.interpolate(a, b, t))
            continue
        path = dyadic_path(t, depth) if 0 < t < 1 else None
        if path is None:
            out.append(np.array(a if t < 0.5 else b, dtype=np.float32, copy=True))
        else:
            out.append(midpoint(path))
    return out
