"""Stage `upscale`: every img2img frame through an upscaler (Real-ESRGAN by default) into `resr/`."""
from __future__ import annotations

from vid2vid.config import Settings, stagetable
from vid2vid.core.errors import BadInput, stage_ref
from vid2vid.core.fileid import spec_identity
from vid2vid.core.imageops import read_image, write_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.models.upscalers import check_upscaler, load_upscaler, upscaler_scale

STAGE = "upscale"
ROW = stagetable.stage(STAGE)
OUTPUT_DIR = ROW.folder


def _model_identity(model: str) -> dict:
    """What names the model in the stage key: the name, plus size and time for a model file."""
    return spec_identity(model, "model", "model") if upscaler_scale(model) is None else {"model": model}


def check(settings: Settings) -> None:
    """The upscaler the settings name is known or exists (nothing is loaded)."""
    check_upscaler(settings.upscale.model)


ASSUMED_SCALE = 4     # a model file's scale is known only once it is loaded; Real-ESRGAN's are mostly x4


def space_need(ws: Workspace, settings: Settings):
    """One PNG per generated frame, scale times wider and higher (an over-estimate: upscaled
    frames are smoother than the frames they come from)."""
    from vid2vid.core import diskspace

    source = stagetable.generated(ws)
    frames = ws.frames(source.folder)
    if not frames:
        return None
    scale = upscaler_scale(settings.upscale.model) or ASSUMED_SCALE
    w, h = diskspace.image_size(frames[0])
    return diskspace.folder_need(STAGE, len(frames), [ws.path(OUTPUT_DIR)], frames, w * scale, h * scale,
                                 fix="choose an upscaler with a smaller scale ({upscale.model}), "
                                 f"{diskspace.SMALLER_CANVAS} or {diskspace.FEWER_FRAMES}")


def run(ws: Workspace, settings: Settings, job: Job) -> dict:
    """Upscale img2img/ into resr/ (same file names, PNG), resuming frame by frame; returns stage info."""
    us = settings.upscale
    us.validate()
    # 1. inputs (flow-corrected frames when that pass is current) and model, checked before anything changes
    source = stagetable.generated(ws)
    input_stage, input_dir = source.name, source.folder
    frames = ws.frames(input_dir)
    if not frames:
        raise BadInput(f"{ws.path(input_dir)} has no frames to upscale; run {stage_ref('img2img', ws.root)} first")
    check_upscaler(us.model)
    # 2. fresh / resume / done (the device is left out of the key: it does not change the result's meaning)
    params = {**_model_identity(us.model), "tile": us.tile}
    status = ws.begin_stage(STAGE, params, inputs=(input_stage,), overwrite=settings.run.overwrite, outputs=ROW.outputs)
    if status.state == "done":
        info = ws.stage_info(STAGE)
        job.say(f"upscale: already done ({info.get('frames')} frames)")
        return info
    # 3. upscale what is missing
    out_dir = ws.path(OUTPUT_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [(f, out_dir / f"{f.stem}.png") for f in frames]
    todo = [(src, dst) for src, dst in targets if not dst.exists()]
    tracker = job.tracker(STAGE, len(targets), done=len(targets) - len(todo))
    upscaler = load_upscaler(us.model, tile=us.tile, device=us.device)
    job.say(f"upscale: {upscaler.name} x{upscaler.scale}, {len(todo)} of {len(targets)} frames to do")
    for src, dst in todo:
        write_image(dst, upscaler.upscale(read_image(src)))
        tracker.advance()
    # 4. record
    h, w = read_image(targets[0][1]).shape[:2]
    ws.complete_stage(STAGE, frames=len(targets), model=upscaler.name, scale=upscaler.scale, width=w, height=h)
    return ws.stage_info(STAGE)
