"""Stage `delta`: PNG views of the source frame deltas, for people to look at.

framedelta/<frame>.png holds (d + 1) / 2 of d_t = frame_t - frame_(t-1), rounded to 8 bits,
for every frame but the first (as the seed named them: after the later frame). The
computation never reads these views: the full-precision delta is recomputed from the frames
with `source_delta` (two PNG reads and one subtraction) wherever it is needed.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core.imageops import delta_view, read_image, write_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.temporal import fdc

STAGE = "delta"
ROW = stagetable.stage(STAGE)
OUT_DIR = ROW.folder
VIEW = "rgb8 round((d + 1) / 2 * 255)"     # recorded, so a change of view format redoes the stage


def source_delta(frames: Sequence[Path], index: int) -> np.ndarray | None:
    """Full-precision source delta of frame `index` (0-based) of a sorted frame list.

    Returns float32 HxWx3 in [-1, 1], or None for the first frame (it has no delta).
    """
    if index <= 0:
        return None
    return fdc.frame_delta(read_image(frames[index - 1]), read_image(frames[index]))


def view_path(ws: Workspace, frame: Path) -> Path:
    """Where the delta view of `frame` goes: framedelta/<frame stem>.png."""
    return ws.path(OUT_DIR, f"{frame.stem}.png")


def space_need(ws: Workspace, settings: config.Settings):
    """One frame-sized PNG per frame after the first (an over-estimate: the mostly grey views
    compress better than the frames)."""
    from vid2vid.core import diskspace

    frames = ws.frames()
    if len(frames) < 2:
        return None
    w, h = diskspace.image_size(frames[0])
    return diskspace.folder_need(STAGE, len(frames) - 1, [ws.path(OUT_DIR)], frames, w, h,
                                 fix="extract fewer frames (a lower {extract.fps}) or scale the video down first")


def run(ws: Workspace, settings: config.Settings, job: Job, overwrite: bool | None = None) -> dict:
    """Write framedelta/ views for every frame after the first; resumable frame by frame."""
    # 1. inputs and bookkeeping
    frames = ws.frames()
    if overwrite is None:
        overwrite = settings.run.overwrite
    status = ws.begin_stage(STAGE, {"view": VIEW}, inputs=("extract",), overwrite=overwrite, outputs=ROW.outputs)
    total = max(0, len(frames) - 1)
    if status.state == "done":
        job.say(f"delta: already done ({total} frame deltas)")
        return {"deltas": total, "folder": str(ws.path(OUT_DIR))}

    # 2. one view per frame pair; skip views already written (atomic writes: existing = finished)
    todo = [i for i in range(1, len(frames)) if not view_path(ws, frames[i]).exists()]
    tracker = job.tracker(STAGE, total, done=total - len(todo))
    prev_index, prev_img = -1, None
    for i in todo:
        prev = prev_img if prev_index == i - 1 and prev_img is not None else read_image(frames[i - 1])
        cur = read_image(frames[i])
        write_image(view_path(ws, frames[i]), delta_view(fdc.frame_delta(prev, cur)))
        prev_index, prev_img = i, cur
        tracker.advance()

    # 3. done
    ws.complete_stage(STAGE, deltas=total)
    return {"deltas": total, "folder": str(ws.path(OUT_DIR))}
