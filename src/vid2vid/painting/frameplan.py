"""In which order, batches and with which references the img2img stage samples its frames.

Plain img2img, anchor-only cross-frame attention and the cache-frames accelerator (deep UNet
features read from an anchor, `diffusion/deepcache.py`) keep frames independent: frames are
sampled in whole blocks [kB+1 .. (k+1)B] of the video (B = batch size), so that a frame is
always computed in the same batch whatever else is left to do (a resume, `--single N`) and its
pixels never depend on which frames were missing. Anchor frames are sampled alone first (their
K/V must not depend on the batch layout) and keep their K/V for the other frames.

Cross-frame modes that read the previous frame (anchor-prev, bank) and flow-guided init (it reads
the previous output) make the frames sequential: one frame at a time in frame order, with one
model worker, and no distributed run. `sequential(settings)` is the one place that says so.
With key frames (propagate), only the keys are painted: blocks, anchors and "previous" count
positions among the painted frames, so the previous frame is the previous key; the keys that start a
shot (`anchors`: the first key and every key after a scene cut) are the anchors, and a key reads only
the frames of its own shot (nothing is read across a cut).
A sequential run that starts after frame 1 (a resume, `--single N`) first samples again every
earlier frame whose K/V the frames to do read, directly or through their references, so it
computes exactly what an uninterrupted run had; it writes only the frames that were missing.
"""
from __future__ import annotations

from dataclasses import dataclass

from vid2vid.config import Img2ImgSettings
from vid2vid.diffusion.crossframe import SEQUENTIAL_MODES, anchor_of, needed_before, references


def sequential(s: Img2ImgSettings) -> bool:
    """Must frames be sampled one at a time in order (batch 1, one worker, never distributed)?"""
    return s.cross_frame in SEQUENTIAL_MODES or s.flow_init > 0


def why_sequential(s: Img2ImgSettings) -> str:
    """The reason for the progress line ('' when frames are independent)."""
    reasons = []
    if s.cross_frame in SEQUENTIAL_MODES:
        reasons.append(f"cross-frame {s.cross_frame} reads the previous frames")
    if s.flow_init > 0:
        reasons.append("flow init reads the previous output")
    return " and ".join(reasons)


def reading_mode(s: Img2ImgSettings) -> str:
    """Which earlier frames a frame reads: the cross-frame mode; with the cache-frames accelerator (and
    no cross-frame attention) anchor mode, its anchors being the frames that hold deep features."""
    from vid2vid.config.accel import parse

    return "anchor" if s.cross_frame == "none" and parse(s.accel).frames is not None else s.cross_frame


@dataclass(frozen=True)
class Unit:
    """One sampling call: `frames` in one batch, reading the K/V of `refs`; `keep`: record its K/V
    for later frames (a batch of one); `release`: recorded frames no later unit reads, to drop after it."""

    frames: tuple[int, ...]
    refs: tuple[int, ...] = ()
    keep: bool = False
    release: tuple[int, ...] = ()


def blocks(todo: list[int], n: int, batch_size: int,
           skip: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, ...]]:
    """The whole blocks [kB+1 .. (k+1)B] of frames 1..n that hold a frame of `todo`, without `skip`."""
    out = []
    for b in sorted({(i - 1) // batch_size for i in todo}):
        block = tuple(i for i in range(b * batch_size + 1, min((b + 1) * batch_size, n) + 1) if i not in skip)
        if block:
            out.append(block)
    return out


def plan(s: Img2ImgSettings, order: list[int], todo: list[int], anchors: tuple[int, ...] = ()) -> list[Unit]:
    """The sampling calls that produce the frames `todo` as an uninterrupted run does.

    order: the 1-based frames the run paints, ascending (every frame, or the key frames); todo: those
    of them still to make; anchors: the frames of `order` that start a shot (none: the first frame
    is the one anchor). Frames in the units are frame numbers; the plan counts positions in `order`.
    In anchor mode a block that holds frames of two shots is split at the shot's start, so each
    batch reads one anchor (the split depends only on the shots, never on what is left to do).
    """
    frame = {k: f for k, f in enumerate(order, 1)}
    pos = {f: k for k, f in frame.items()}
    todo = sorted({pos[f] for f in todo})
    starts = tuple(sorted(pos[a] for a in anchors))
    n, mode, bank = len(order), reading_mode(s), s.cross_frame_bank
    refs_of = lambda f: references(mode, f, bank, starts)     # noqa: E731
    need: set[int] = set()
    for t in todo:
        need |= needed_before(mode, t, bank, starts)
    if sequential(s):
        groups: list[tuple[int, ...]] = [(t,) for t in sorted(need | set(todo))]
    else:
        anchors_all = {f for f in range(1, n + 1) if mode != "none" and anchor_of(f, starts) == f}
        # whole blocks without the anchors, split where the shot changes; the parts with a frame to do
        parts = [part for g in blocks([t for t in todo if t not in anchors_all], n, s.batch_size, anchors_all)
                 for part in _by_refs(g, refs_of) if set(part) & set(todo)]
        alone = sorted((need & anchors_all) | (set(todo) & anchors_all) |
                       {r for part in parts for f in part for r in refs_of(f)})
        groups = [(a,) for a in alone] + parts
    last_read: dict[int, int] = {}
    for k, g in enumerate(groups):
        for f in g:
            for r in refs_of(f):
                last_read[r] = k
    units = []
    for k, g in enumerate(groups):
        refs = {refs_of(f) for f in g}
        if len(refs) != 1:
            raise RuntimeError(f"frames {g} of one batch read different references")
        keep = len(g) == 1 and g[0] in last_read
        release = sorted(r for r, last in last_read.items() if last == k)
        units.append(Unit(tuple(frame[f] for f in g), tuple(frame[r] for r in refs.pop()), keep,
                          tuple(frame[r] for r in release)))
    return units


def _by_refs(group: tuple[int, ...], refs_of) -> list[tuple[int, ...]]:
    """A block split into runs of frames that read the same references (shots), in order."""
    parts: list[list[int]] = []
    for f in group:
        if parts and refs_of(parts[-1][-1]) == refs_of(f):
            parts[-1].append(f)
        else:
            parts.append([f])
    return [tuple(p) for p in parts]


def frames_of(units: list[Unit]) -> list[int]:
    """Every frame the units sample, in sampling order."""
    return [f for u in units for f in u.frames]
