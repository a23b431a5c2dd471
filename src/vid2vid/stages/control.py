"""Stage `control`: the control images of img2img's ControlNets -> control/<n>-<source>/00001.png ...

    vid2vid control -w WS --controlnet control_v11p_sd15_canny.pth --control canny

n is the ControlNet's place in `img2img.controlnet` (1 = the first). Each image is made from the
frame as img2img sees it (fitted to the canvas with img2img's size and resize mode, 8-bit), so
what a ControlNet sees can be looked at, and img2img reads exactly these files. Resumable: an
existing file is finished (atomic writes); another source, source parameter, canvas size or
resize mode, or a changed image in a user's folder, starts the stage over (and, through its key,
img2img too). Model, scale and window are img2img's business and do not touch these images.
"""
from __future__ import annotations

from pathlib import Path

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput, stage_ref
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.painting.controls import FrameControls, folder_name, image_path
from vid2vid.video import controlimages

STAGE = "control"
ROW = stagetable.stage(STAGE)
OUTPUT = ROW.folder


def _source_params(cn: config.ControlNetSettings, frames: int) -> dict:
    """Only what changes this source's images."""
    if cn.control == "canny":
        return {"low": cn.low, "high": cn.high}
    if cn.control in ("softedge", "lineart"):
        return {"blur": cn.blur}
    if cn.control == "folder":
        return {"folder": controlimages.folder_identity(cn.folder, frames)}
    return {}


def stage_params(settings: config.Settings, frames: int) -> dict:
    s = settings.img2img
    return {"width": s.width, "height": s.height, "resize": s.resize,
            "nets": [{"control": cn.control, **_source_params(cn, frames)} for cn in s.controlnet]}


def check(settings: config.Settings) -> None:
    """A user's control folder exists (its image count is checked against the frames when the stage runs)."""
    for cn in settings.img2img.controlnet:
        if cn.control == "folder" and not Path(cn.folder).expanduser().is_dir():
            raise BadInput(f"{{img2img.controlnet}} '{cn.model}': control image folder {cn.folder} does not exist; "
                           "give a folder with one image per frame")


def space_need(ws: Workspace, settings: config.Settings):
    """One canvas-sized PNG per frame and ControlNet (edge maps compress better: an over-estimate)."""
    from vid2vid.core import diskspace

    s, frames = settings.img2img, ws.frames()
    if not s.controlnet or not frames:
        return None
    folders = [ws.path(OUTPUT, folder_name(n, cn)) for n, cn in enumerate(s.controlnet, 1)]
    return diskspace.folder_need(STAGE, len(frames) * len(folders), folders, frames, s.width, s.height,
                                 fix=f"use {diskspace.SMALLER_CANVAS}, fewer ControlNets or {diskspace.FEWER_FRAMES}")


def _inputs(settings: config.Settings) -> tuple[str, ...]:
    return ("extract", "depth") if stagetable.control_reads_depth(settings) else ("extract",)


def current(ws: Workspace, settings: config.Settings) -> bool:
    """The control images are complete and made for these settings from the current frames (nothing to do)."""
    n = len(ws.frames())
    return ws.is_complete(STAGE) and ws.keeps_results(STAGE, stage_params(settings, n), _inputs(settings))


def run(ws: Workspace, settings: config.Settings, job: Job, overwrite: bool | None = None) -> dict:
    """Write every frame's control images that are not there yet; returns a summary."""
    # 1. check the settings and the inputs (a user folder with too few images fails here)
    s = settings.img2img
    if not s.controlnet:
        raise BadInput("{img2img.controlnet} is empty: there is no ControlNet to make control images for")
    check(settings)
    frames = ws.frames()
    if not frames:
        raise BadInput(f"{ws.path('frames')} has no frames; run {stage_ref('extract', ws.root)} first")
    make = FrameControls(ws, settings)
    overwrite = settings.run.overwrite if overwrite is None else overwrite
    inputs = _inputs(settings)

    # 2. fresh / resume / done
    ws.begin_stage(STAGE, stage_params(settings, len(frames)), inputs=inputs, overwrite=overwrite,
                   outputs=ROW.outputs)
    nets = list(enumerate(s.controlnet, 1))
    todo = [i for i in range(1, len(frames) + 1)
            if not all(image_path(ws, n, cn, i).exists() for n, cn in nets)]
    folders = [str(ws.path(OUTPUT, folder_name(n, cn))) for n, cn in nets]

    # 3. the missing frames' images, each written atomically
    if not todo:
        job.say(f"control: already done ({len(frames)} frames)")
    else:
        tracker = job.tracker(STAGE, len(frames), done=len(frames) - len(todo))
        for i in todo:
            for (n, cn), img in zip(nets, make(i)):
                imageops.write_image(image_path(ws, n, cn, i), img)
            tracker.advance()

    # 4. record completion
    info = {"frames": len(frames), "folders": folders}
    ws.complete_stage(STAGE, **info)
    return info
