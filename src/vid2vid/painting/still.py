"""Still frames: reuse the previous output where the source barely changed (`--skip-still T`).

StreamDiffusion skips frames whose input is nearly the last one it painted; here the rule is
deterministic and decided on the source frames alone, so it is the same on every run and on a
resumed run:
    frame 1 is painted; the last painted frame is the reference r;
    frame t is still when mean |canvas_t - canvas_r| < T (canvases: the source frames fitted to
    the generation size, float [0, 1]); then its output is a byte copy of output t-1 (itself a
    copy when t-1 was still); otherwise t is painted and becomes the reference.
Comparing with the reference, not with frame t-1, keeps slow drift from being skipped forever.

Bookkeeping: each reused frame is one JSON line appended to `img2img/still-frames.jsonl` (kept
with the frames, so invalidating the stage removes it) by `record` (the one place that writes
it); the stage's manifest entry lists them once at the end (`still_frames`).
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

RECORD = "still-frames.jsonl"


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two float images of one shape (0 = identical, 1 = opposite)."""
    return float(np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


def plan(canvases: Iterable[np.ndarray], threshold: float) -> dict[int, tuple[int, float]]:
    """{still frame t (1-based): (painted reference frame, difference)} for a sequence of canvases."""
    still: dict[int, tuple[int, float]] = {}
    if threshold <= 0:
        return still
    ref_i: int = 0
    ref: np.ndarray | None = None
    for t, canvas in enumerate(canvases, 1):
        d: float | None = None if ref is None else difference(canvas, ref)
        if d is not None and d < threshold:
            still[t] = (ref_i, d)
            continue
        ref_i, ref = t, canvas
    return still


def copy_output(src: Path, dst: Path) -> None:
    """Byte copy of an output frame, written atomically (temp name, then rename)."""
    from vid2vid.core.workspace import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def painted_before(still: dict, n: int) -> dict[int, list[int]]:
    """{painted frame p: the still frames right after it, in order} (each copies the one before it)."""
    follow: dict[int, list[int]] = {}
    last = 0                      # frame 1 is always painted, so a still frame always has one before it
    for t in range(1, n + 1):
        if t in still:
            follow.setdefault(last, []).append(t)
        else:
            last = t
    return follow


def record(folder: Path, frame: int, reference: int, difference_: float) -> None:
    """Append one still frame's line to <folder>/still-frames.jsonl (never rewritten whole)."""
    line = json.dumps({"frame": frame, "copy_of": frame - 1, "reference": reference,
                       "difference": round(difference_, 6)})
    with open(folder / RECORD, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def recorded(folder: Path) -> list[dict]:
    """The still frames recorded in <folder>/still-frames.jsonl (a line cut short by a crash is skipped)."""
    p = folder / RECORD
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
