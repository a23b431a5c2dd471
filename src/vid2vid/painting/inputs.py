"""What a frame painter is given for frame t (1-based), read from the workspace before painting.

    canvas_t  = fit(src_t, width, height, resize)
    d_t       = canvas_t - canvas_(t-1)                    (none for the first frame)
    spatial_t = motion / depth inpainting mask or none     (motion masks start at frame 2)
    control_t = the control stage's images of frame t, one per ControlNet
    motion_t  = the source's motion from frame t-1 (flow init only)

Everything here is pure given the files: the same frame numbers give the same inputs, whichever
frames a run still has to paint.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput, stage_ref
from vid2vid.core.workspace import Workspace
from vid2vid.painting import controls
from vid2vid.painting.frameplan import Unit
from vid2vid.temporal import fdc


@dataclass
class FrameJob:
    """Everything known about frame `index` before painting (canvas-sized arrays)."""

    index: int                      # 1-based
    canvas: np.ndarray              # float32 HxWx3 [0, 1]
    delta: np.ndarray | None        # float32 HxWx3 [-1, 1]; None for the first frame
    depth: np.ndarray | None        # float32 HxWx1 [0, 1]
    spatial: np.ndarray | None      # float32 HxWx1 [0, 1], 1 = may change
    control: list[np.ndarray] | None = None   # ControlNet images, one per net (float32 HxWx3 [0, 1])
    motion: Any = None              # flowinit.SourceMotion from frame index-1 (flow init only)


def read_depth(ws: Workspace, frame: Path, width: int, height: int, resize: str) -> np.ndarray:
    """depthmask/<stem>.png as float32 HxWx1 in [0, 1] at the canvas size."""
    p = ws.path(stagetable.stage("depth").folder, frame.stem + ".png")
    if not p.is_file():
        raise BadInput(f"depth mask {p} is missing; run {stage_ref('depth', ws.root)} first")
    return imageops.fit(imageops.read_mask(p), width, height, resize)


def canvases(frames: list[Path], s: config.Img2ImgSettings) -> Iterator[np.ndarray]:
    """Every source frame fitted to the canvas, one at a time."""
    for f in frames:
        yield imageops.fit(imageops.read_image(f), s.width, s.height, s.resize)


def frame_jobs(ws: Workspace, frames: list[Path], indexes: list[int], settings: config.Settings
               ) -> Iterator[FrameJob]:
    """FrameJobs for the 1-based `indexes` (ascending), reading each source frame once."""
    s, c = settings.img2img, settings.correct
    depth_on = stagetable.img2img_reads_depth(c)
    prev_i, prev_canvas = None, None
    for i in indexes:
        canvas = imageops.fit(imageops.read_image(frames[i - 1]), s.width, s.height, s.resize)
        delta = None
        if i > 1:
            if prev_i != i - 1 or prev_canvas is None:
                prev_canvas = imageops.fit(imageops.read_image(frames[i - 2]), s.width, s.height, s.resize)
            delta = fdc.frame_delta(prev_canvas, canvas)
        depth = read_depth(ws, frames[i - 1], s.width, s.height, s.resize) if depth_on else None
        spatial = fdc.spatial_mask(c, delta, depth, s.height, s.width)
        control = [imageops.read_image(controls.image_path(ws, n, cn, i))
                   for n, cn in enumerate(s.controlnet, 1)] if s.controlnet else None
        motion = None
        if s.flow_init > 0 and i > 1:
            from vid2vid.temporal.flowinit import source_motion

            assert prev_canvas is not None         # frame i - 1 came first
            motion = source_motion(prev_canvas, canvas)
        yield FrameJob(i, canvas, delta, depth, spatial, control, motion)
        prev_i, prev_canvas = i, canvas


def unit_batches(jobs: Iterator[FrameJob], units: list[Unit]) -> Iterator[tuple[Unit, list[FrameJob]]]:
    """(unit, its FrameJobs) for each unit, from the jobs of `frameplan.frames_of(units)`."""
    for unit in units:
        batch = [next(jobs) for _ in unit.frames]
        if [fj.index for fj in batch] != list(unit.frames):
            raise RuntimeError(f"frame jobs {[fj.index for fj in batch]} do not match unit {unit.frames}")
        yield unit, batch


def init_canvas(fj: FrameJob, s: config.Img2ImgSettings, previous_output: Callable[[int], np.ndarray]) -> np.ndarray:
    """The image img2img starts frame fj from: the canvas, or with flow init the mix with o_(t-1)."""
    if s.flow_init == 0 or fj.motion is None:
        return fj.canvas
    from vid2vid.temporal.flowinit import mix

    return mix(fj.canvas, previous_output(fj.index), fj.motion, s.flow_init)
