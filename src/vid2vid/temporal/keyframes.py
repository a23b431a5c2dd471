"""Key frames: which frames are painted, the others carried from them (vid2vid.temporal.propagation).

`parse_keyframes("every:K" | "motion:T" | "off")`; `choose_keys` picks, 0-based:
- every:K: frames 0, K, 2K, ... of each shot (the count restarts at a scene cut);
- motion:T: a new key when the motion accumulated since the last key reaches T, in pixels of mean
  flow length at the frame size (`SourceMotion.motion[t]` for the pair t-1, t);
- always the first and last frame, and both frames around every scene cut (a shot's first and
  last frame are keys, so nothing is carried across a cut).
Scene cuts and motion come from `analyse_source`, with the same rule as the flow pass
(vid2vid.temporal.flowpass.source_link: mean trust of a pair below `cut_level`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vid2vid.config.keyframes import KeySpec
from vid2vid.core.errors import BadInput
from vid2vid.temporal.flowpass import FlowOptions, flow_grey, flow_size, source_link


@dataclass
class SourceMotion:
    """Per source pair (t-1, t), index t = 1..n-1 (index 0 unused): mean flow length in pixels at the
    analysed size, and whether the pair is a scene cut."""

    motion: list[float]
    cuts: list[bool]


def analyse_source(n: int, size: tuple[int, int], source: Callable[[int], np.ndarray],
                   options: FlowOptions | None = None,
                   progress: Callable[[], None] | None = None) -> SourceMotion:
    """Motion and scene cuts of n source frames (read one at a time, uint8 or float HxWx3, at any size;
    measured at `size` = (width, height) * flow_scale, motion given in pixels of `size`)."""
    options = options or FlowOptions()
    fsize = flow_size(size, options)
    scale = size[0] / fsize[0]
    motion, cuts = [0.0], [False]
    prev = flow_grey(source(0), fsize) if n else None
    for t in range(1, n):
        cur = flow_grey(source(t), fsize)
        assert prev is not None                    # n > 1 here
        link = source_link(prev, cur, options)
        f = link.flow_bw.astype(np.float32)
        motion.append(float(np.sqrt(f[..., 0] ** 2 + f[..., 1] ** 2).mean()) * scale)
        cuts.append(link.cut)
        prev = cur
        if progress is not None:
            progress()
    return SourceMotion(motion, cuts)


def choose_keys(n: int, spec: KeySpec, motion: SourceMotion | None = None) -> list[int]:
    """Sorted 0-based key frames of n frames (see the module docstring); `motion` is needed for
    mode "motion" and gives the scene cuts for both modes (None: no cuts known)."""
    if n <= 0:
        return []
    if not spec.on:
        return list(range(n))
    if spec.mode == "motion" and motion is None:
        raise BadInput("key frames by motion need the source's motion; analyse the source first")
    cuts = motion.cuts if motion is not None else [False] * n
    keys = {0, n - 1}
    last, acc = 0, 0.0
    for t in range(1, n):
        if cuts[t]:
            keys.update((t - 1, t))
            last, acc = t, 0.0
            continue
        if spec.mode == "every":
            if t - last >= spec.value:
                keys.add(t)
                last = t
        else:
            assert motion is not None                 # checked above for the motion mode
            acc += motion.motion[t]
            if acc >= spec.value:
                keys.add(t)
                last, acc = t, 0.0
    return sorted(keys)
