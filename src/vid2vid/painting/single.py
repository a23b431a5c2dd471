"""Debug mode (`--single N`): paint frame N into img2img.debug/ exactly as a full run paints it.

The frame is sampled as a full run samples it, so the file holds that run's raw generated frame:
with its whole batch block, after the anchor it reads, after every earlier frame whose K/V it reads
in a sequential mode, with the run's threads per worker; flow init reads the previous output from
img2img/. ControlNet images are made here (the control stage need not have run) and written beside
the debug frame.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput, stage_ref
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.painting import controls, frameplan
from vid2vid.painting.inputs import frame_jobs, init_canvas, unit_batches
from vid2vid.painting.loop import worker_layout

DEBUG = "img2img.debug"


def plan_single(ws: Workspace, settings: config.Settings, t: int, order: list[int], anchors: tuple[int, ...]
                ) -> list[frameplan.Unit]:
    """The units that paint frame t as a run over `order` does; refuses when flow init lacks an output."""
    s = settings.img2img
    units = frameplan.plan(s, order, [t], anchors)
    out = ws.path(stagetable.stage("img2img").folder)
    lacking = [f for f in frameplan.frames_of(units) if s.flow_init > 0 and f > 1
               and not (out / frame_name(f - 1)).is_file()]
    if lacking:
        raise BadInput(f"flow init reads the previous output {out / frame_name(lacking[0] - 1)}, which "
                       f"is missing; run {stage_ref('img2img', ws.root)} first or set {{img2img.flow_init}} to 0")
    return units


def paint_single(ws: Workspace, settings: config.Settings, job: Job, frames: list[Path], session,
                 units: list[frameplan.Unit]) -> tuple[np.ndarray, list[np.ndarray]]:
    """(frame t as generated, its control images) with the session, t = settings.img2img.single."""
    import torch

    s, t = settings.img2img, settings.img2img.single
    if len(frameplan.frames_of(units)) > 1:
        job.say(f"img2img: frame {t} is sampled as a full run samples it: "
                f"{len(frameplan.frames_of(units))} frames in {len(units)} call(s)")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(worker_layout(s, session.device.type, len(frames), threads_before)[1])
    generated, t_controls = None, []
    painted = ws.path(stagetable.stage("img2img").folder)
    previous = lambda i: imageops.read_image(painted / frame_name(i - 1))  # noqa: E731
    make_controls = controls.FrameControls(ws, settings) if s.controlnet else None
    plain = replace(settings, img2img=replace(s, controlnet=[]))
    try:
        for unit, batch in unit_batches(frame_jobs(ws, frames, frameplan.frames_of(units), plain), units):
            job.check()
            images = [[imageops.to_float(c) for c in make_controls(fj.index)] for fj in batch] \
                if make_controls else None
            out = session.paint(unit, [init_canvas(fj, s, previous) for fj in batch],
                                session.canvas_masks([fj.spatial for fj in batch]), images)
            if t in unit.frames:
                generated = out[unit.frames.index(t)]
                t_controls = images[unit.frames.index(t)] if images else []
    finally:
        torch.set_num_threads(threads_before)
    assert generated is not None          # frame t is in one of the units
    return generated, t_controls


def write_single(ws: Workspace, settings: config.Settings, generated: np.ndarray,
                 images: list[np.ndarray]) -> Path:
    """img2img.debug/<t>.png and its control images beside it."""
    s = settings.img2img
    path = ws.path(DEBUG, frame_name(s.single))
    for n_cn, (cn, img) in enumerate(zip(s.controlnet, images), 1):
        imageops.write_image(path.with_name(f"{path.stem}-control-{controls.folder_name(n_cn, cn)}.png"), img)
    imageops.write_image(path, generated)
    return path
