"""Key frames: which frames are painted, the others carried from them (vid2vid.temporal.propagation).

`parse_keyframes("every:K" | "motion:T" | "off")`; `choose_keys` picks, 0-based:
- every:K: frames 0, K, 2K, ... of each shot (the count restarts at a scene cut);
- motion:T: a new key when the motion accumulated since the last key reaches T, in pixels of mean
  flow length at the frame size (`SourceMotion.motion[t]` for the pair t-1, t);
- '+fast' / '+fast:F' after either: also the frame after every pair whose motion reaches F pixels
  (FAST_MOTION by default), where carrying keys fails most (`key_rules` says which rule added which key);
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
    mode "motion" and '+fast', and gives the scene cuts for all modes (None: no cuts known)."""
    return sorted(set().union(*key_rules(n, spec, motion).values()))


def key_rules(n: int, spec: KeySpec, motion: SourceMotion | None = None) -> dict[str, set[int]]:
    """The keys of `choose_keys`, by the rule that added each (a key two rules ask for counts for the
    first): "ends" (the first and last frame), "cuts" (both frames around a scene cut), the spec's own
    rule (str of it without '+fast': "every:4", "motion:24"), "fast motion" (spec.fast > 0: the frame
    after every source pair whose mean motion reaches spec.fast pixels). Key mode off: every frame
    under "all"."""
    if n <= 0:
        return {}
    if not spec.on:
        return {"all": set(range(n))}
    if (spec.mode == "motion" or spec.fast > 0) and motion is None:
        raise BadInput("key frames by motion need the source's motion; analyse the source first")
    cuts = motion.cuts if motion is not None else [False] * n
    rules: dict[str, set[int]] = {"ends": {0, n - 1}, "cuts": set(), str(KeySpec(spec.mode, spec.value)): set(),
                                  "fast motion": set()}
    last, acc = 0, 0.0
    for t in range(1, n):
        if cuts[t]:
            rules["cuts"].update((t - 1, t))
            last, acc = t, 0.0
            continue
        if spec.mode == "every":
            hit = t - last >= spec.value
        else:
            assert motion is not None                 # checked above for the motion mode
            acc += motion.motion[t]
            hit = acc >= spec.value
        if hit:
            rules[str(KeySpec(spec.mode, spec.value))].add(t)
            last, acc = t, 0.0
    if spec.fast > 0:
        assert motion is not None
        rules["fast motion"] = {t for t in range(1, n) if not cuts[t] and motion.motion[t] >= spec.fast}
    seen: set[int] = set()
    for name, keys in rules.items():
        rules[name] = keys - seen
        seen |= keys
    return rules


def describe_rules(rules: dict[str, set[int]]) -> str:
    """'21 keys: ends 2, every:4 19, fast motion 3' (rules that added none left out)."""
    total = sum(len(k) for k in rules.values())
    parts = [f"{name} {len(keys)}" for name, keys in rules.items() if keys]
    return f"{total} keys: " + ", ".join(parts)
