"""Stage `depth`: one depth mask per extracted frame -> depthmask/00001.png (16-bit grey, near = bright).

    vid2vid depth -w WS [--model dpt_hybrid]

Resumable: a mask file that exists is finished (atomic writes), so a rerun with the same
model only predicts the missing frames, and loads the model only if there are any.
"""
from __future__ import annotations

from pathlib import Path

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core.imageops import read_image, write_mask
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace

STAGE = "depth"
ROW = stagetable.stage(STAGE)
OUTPUT = ROW.folder


def mask_path(ws: Workspace, frame: Path) -> Path:
    """depthmask/<frame stem>.png for a frame file (any image suffix)."""
    return ws.path(OUTPUT, frame.stem + ".png")


def space_need(ws: Workspace, settings: config.Settings):
    """One frame-sized 16-bit grey PNG per frame: 2 bytes a pixel where the RGB frames have 3."""
    from vid2vid.core import diskspace

    frames = ws.frames()
    if not frames:
        return None
    w, h = diskspace.image_size(frames[0])
    return diskspace.folder_need(STAGE, len(frames), [ws.path(OUTPUT)], frames, w, h, factor=2 / 3,
                                 fix="extract fewer frames (a lower {extract.fps}) or scale the video down first")


def run(ws: Workspace, settings: config.Settings, job: Job, overwrite: bool | None = None) -> dict:
    """Predict a depth mask for every frame that has none yet; returns a summary."""
    # 1. check the settings; load the model first when the settings changed, so that a model
    #    that cannot be had never costs the masks made with another one
    settings.depth.validate()
    overwrite = settings.run.overwrite if overwrite is None else overwrite
    params = {"model": settings.depth.model}
    model = None if _unchanged(ws, params) else _load(settings, job)

    # 2. decide fresh / resume / done
    ws.begin_stage(STAGE, params, inputs=("extract",), overwrite=overwrite, outputs=ROW.outputs)
    frames = ws.frames()
    todo = [f for f in frames if not mask_path(ws, f).exists()]
    info = {"masks": len(frames), "model": settings.depth.model, "folder": str(ws.path(OUTPUT))}

    # 3. one mask per missing frame, written atomically at full 16-bit precision
    if todo:
        model = model or _load(settings, job)
        tracker = job.tracker(STAGE, len(frames), done=len(frames) - len(todo))
        for frame in todo:
            write_mask(mask_path(ws, frame), model.predict(read_image(frame)), bits=16)
            tracker.advance()

    # 4. record completion
    ws.complete_stage(STAGE, **info)
    return info


def _unchanged(ws: Workspace, params: dict) -> bool:
    rec = ws.stage_record(STAGE)
    return rec is not None and rec.get("params") == params


def _load(settings: config.Settings, job: Job):
    from vid2vid.models.depth import load_depth_model

    job.say(f"loading depth model {settings.depth.model}")
    return load_depth_model(settings.depth.model, progress=job.progress)
