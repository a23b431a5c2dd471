"""Stage `flow`: the flow-guided temporal correction (vid2vid.temporal.flowpass) over the img2img frames
(or, with key frames, over the propagated sequence in propagate/).

Runs when `correct.method` is "flow": img2img then generates without the seed's statistics, and
this offline pass steadies the whole sequence along the source's motion (it uses past and
future frames), with one of the seed's masks as a change mask when `flow_mask` names one. It writes
`flow/`; later stages read that folder instead of `img2img/` while it is complete.
"""
from __future__ import annotations

from vid2vid.config import Settings, stagetable
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace

STAGE = "flow"
ROW = stagetable.stage(STAGE)
OUTPUT_DIR = ROW.folder


def space_need(ws: Workspace, settings: Settings):
    """One PNG per painted frame, of the painted frames' size."""
    from vid2vid.core import diskspace

    base = stagetable.painted(ws)
    painted = ws.frames(base.folder)
    if not painted:
        return None
    w, h = diskspace.image_size(painted[0])
    return diskspace.folder_need(STAGE, len(painted), [ws.path(OUTPUT_DIR)], painted, w, h,
                                 fix=f"use {diskspace.SMALLER_CANVAS} or {diskspace.FEWER_FRAMES}")


def run(ws: Workspace, settings: Settings, job: Job) -> dict:
    """Correct img2img/ (propagate/ with key frames) into flow/ (a segment of the sequence in memory
    at a time); returns stage info."""
    from vid2vid.temporal.correction import correct_folder, key_params

    cs = settings.correct
    cs.validate()
    base = stagetable.painted(ws)          # img2img/, or propagate/ with key frames
    inputs = ("extract", base.name) + (("depth",) if cs.flow_mask == "depth" else ())
    params = {"method": key_params(cs)["method"], "strength": cs.flow_strength, "mask": cs.flow_mask,
              "motion_highext": cs.motion_highext, "motion_lowcut": cs.motion_lowcut,
              "depth_lowcut": cs.depth_lowcut}
    status = ws.begin_stage(STAGE, params, inputs=inputs, overwrite=settings.run.overwrite,
                            outputs=ROW.outputs)
    if status.state == "done":
        return ws.stage_info(STAGE)
    # the source motion is fitted to the canvas the way img2img fitted the frames (its key covers resize)
    info = correct_folder(ws.frames_dir(), ws.path(base.folder), ws.path(OUTPUT_DIR), cs,
                          depth_dir=ws.path(stagetable.stage("depth").folder) if cs.flow_mask == "depth" else None,
                          job=job, overwrite=True, resize=settings.img2img.resize)
    ws.complete_stage(STAGE, frames=info["frames"], method=cs.method)
    return ws.stage_info(STAGE)
