"""Which frames the img2img fill repaints: holes worth repainting, and a budget for the model.

A frame between two keys has a hole where neither key's warp can be trusted (vid2vid.temporal.keychain:
coverage below 1). `meaningful_hole` keeps the part of it worth repainting (slivers thinner than
`fill_opening` go); a frame whose meaningful hole is over FILL_MIN of the frame is a candidate.

The budget caps the model's work: at most floor(budget * n) of the n frames are painted, keys
included, so the fill gets what the keys leave (`allowance`), spent on the candidates with the largest
meaningful holes first (`choose`; ties go to the earlier frame). `hole_shares` measures every
in-between frame's meaningful hole before anything is painted, from the source's motion and the key
positions alone (not from the paintings), so the choice is a function of the inputs: a resumed run
picks the same frames. Budget 1 (or any budget the candidates fit in) fills every candidate.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence

import cv2
import numpy as np

from vid2vid.temporal.flowpass import FlowOptions, flow_grey, flow_size
from vid2vid.temporal.keychain import frame_trust, interval_chains, interval_motion

FILL_MIN = 0.005          # share of meaningful hole (`meaningful_hole`) below which a frame gets no img2img fill
FILL_OPEN = 9             # pixels at 480 rows (scaled with the shorter side): thinner holes are slivers, no fill
FILL_OPEN_AT = 480


def fill_opening(size: tuple[int, int]) -> int:
    """The disc (pixels) `meaningful_hole` opens a hole with at frame size (width, height): FILL_OPEN
    at FILL_OPEN_AT pixels on the shorter side, in proportion elsewhere, at least 1 (no opening)."""
    return max(1, round(FILL_OPEN * min(size) / FILL_OPEN_AT))


def meaningful_hole(hole: np.ndarray, size: int = FILL_OPEN) -> np.ndarray:
    """The part of a hole mask (float32 HxW in [0, 1]) worth repainting: the pixels over 0.5 opened
    with a size x size disc (slivers and specks thinner than `size` go), grown back by the same disc
    so the kept regions keep their soft rim, times the hole. size <= 1: the hole itself."""
    if size <= 1:
        return hole
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    core = cv2.morphologyEx((hole > 0.5).astype(np.uint8), cv2.MORPH_OPEN, disc)
    return hole * cv2.dilate(core, disc).astype(np.float32)


def allowance(n: int, keys: int, budget: float) -> int | None:
    """How many frames the fill may repaint: floor(budget * n) less the `keys` painted frames, at
    least 0; None for no limit (budget >= 1)."""
    if budget >= 1.0:
        return None
    return max(0, math.floor(budget * n + 1e-9) - keys)


def choose(shares: Mapping[int, float], limit: int | None, fill_min: float = FILL_MIN) -> frozenset[int]:
    """The frames to fill: those whose meaningful-hole share is over `fill_min`, the largest first
    (ties: the earlier frame), at most `limit` of them (None: all)."""
    candidates = sorted((t for t, s in shares.items() if s > fill_min), key=lambda t: (-shares[t], t))
    return frozenset(candidates if limit is None else candidates[:limit])


def hole_shares(n: int, size: tuple[int, int], source: Callable[[int], np.ndarray], keys: Sequence[int],
                options: FlowOptions, fill_open: int, progress: Callable[[], None] | None = None) -> dict[int, float]:
    """{t: share of frame t's meaningful hole} for every frame between keys (0-based), measured as
    vid2vid.temporal.propagation measures it, without warping or painting anything; size: (width,
    height) of the painted frames; progress: called once per frame."""
    fsize = flow_size(size, options)
    shares: dict[int, float] = {}
    for a, b in zip(keys[:-1], keys[1:]):
        m = interval_motion(a, b, lambda t: flow_grey(source(t), fsize), options)
        for t, chain_a, chain_b in interval_chains(m, a, b):
            _, cover = frame_trust(t, a, b, chain_a, chain_b, m.greys, size, options.photo_sigma)
            shares[t] = float(meaningful_hole(1.0 - cover, fill_open).mean())
            if progress:
                progress()
    return shares


def fill_frames(n: int, size: tuple[int, int], source: Callable[[int], np.ndarray], keys: Sequence[int],
                budget: float, options: FlowOptions, fill_open: int, fill_min: float = FILL_MIN,
                progress: Callable[[], None] | None = None) -> Collection[int] | None:
    """The frames (0-based) the fill repaints under `budget` (`choose` on `hole_shares`); None when
    the budget sets no limit (every candidate is filled, decided frame by frame as it is made)."""
    limit = allowance(n, len(keys), budget)
    if limit is None:
        return None
    return choose(hole_shares(n, size, source, keys, options, fill_open, progress), limit, fill_min)
