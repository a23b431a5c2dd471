"""Stage `img2img`: every extracted frame repainted, then frame delta correction, into `img2img/`.

With key frames (`--keyframes every:K | motion:T`) only the key frames are painted, under their own
frame numbers, without the frame delta correction (keys lie frames apart); stage `propagate`
makes the rest.

The stage holds the parameters, the checks and the stage's record; the painting itself is the
painter's (`painting/painters/`, chosen by the settings) inside the unit loop (`painting/loop.py`),
which owns order, resume, in-order atomic writes, progress, interrupt, workers and Ray actors.
`--single N` writes the raw generated frame N to `img2img.debug/` without touching the stage's
record (`painting/single.py`).
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.config.accel import parse as parse_accel
from vid2vid.core.errors import BadInput, render_settings, stage_ref
from vid2vid.core.fileid import spec_identity
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.painting import frameplan, inputs, painters, single, still
from vid2vid.painting.loop import FrameRun, paint_frames, say_order
from vid2vid.painting.painters import wan_vace
from vid2vid.painting.writer import FrameWriter
from vid2vid.stages import control as control_stage
from vid2vid.temporal.correction import key_params

STAGE = "img2img"
ROW = stagetable.stage(STAGE)
MASKS = ROW.outputs[1]         # motionmask/: the motion masks the correction used
# Settings that change how fast, not what: left out of the stage key.
RUNTIME_ONLY = ("batch_size", "workers", "single", "compile")
# Settings recorded in the stage key only when they differ from their defaults, so that records
# made before the settings existed stay valid.
KEYED_WHEN_SET = ("vae", "tcd_gamma", "skip_still", "cross_frame", "cross_frame_blocks", "cross_frame_bank",
                  "flow_init", "motion_module", "context_length", "context_overlap", "context_weighting",
                  "motion_scale", "shuffle_noise", "video_model", "video_control", "video_control_folder",
                  "video_control_scale", "video_reference", "flow_shift")


# ---------------------------------------------------------------- parameters

def stage_params(settings: config.Settings) -> dict:
    """What decides the stage's results (and so its key)."""
    s = settings.img2img
    defaults = config.Img2ImgSettings()
    gen = {k: v for k, v in config.to_dict(s).items() if k not in RUNTIME_ONLY}
    for k in KEYED_WHEN_SET:
        if gen.get(k) == getattr(defaults, k) or (k == "tcd_gamma" and s.sampler != "tcd"):
            gen.pop(k, None)
    accel = parse_accel(s.accel).specs()          # canonical; absent when nothing changes the bits
    gen.pop("accel", None)
    if accel:
        gen["accel"] = accel
    if s.vae:
        gen["vae"] = _identity(s.vae)
    if s.motion_module:
        gen["motion_module"] = _identity(s.motion_module)
    gen["model"] = _identity(s.model)
    gen["loras"] = [_identity(x) for x in s.loras]
    gen["embeddings"] = [_identity(x) for x in s.embeddings]
    gen.update(wan_vace.key_params(settings))
    nets = gen.pop("controlnet")          # absent without ControlNets, so older records stay valid
    if s.controlnet:
        gen["controlnet"] = [{**c, "model": _identity(cn.model)} for c, cn in zip(nets, s.controlnet)]
    gen.pop("ip_adapter")                 # absent without IP-Adapters, so older records stay valid
    if s.ip_adapter:
        from vid2vid.painting import references

        gen["ip_adapter"] = references.key_params(s.ip_adapter)
    params: dict[str, Any] = {"img2img": gen, "correct": key_params(settings.correct)}
    if settings.propagate.on:             # absent when off, so records made before key frames stay valid
        params["keyframes"] = str(config.parse_keyframes(settings.propagate.keyframes))
    return params


def _identity(spec: str) -> dict:
    return spec_identity(spec, ns=True)


def batch_aligned(todo: list[int], n: int, batch_size: int) -> list[int]:
    """Frame numbers to generate so that every batch is a whole block [kB+1 .. (k+1)B] of the video.

    A frame's pixels may differ by float rounding with the batch it is computed in, so a resumed
    run regenerates the whole block that holds a missing frame (writing only the missing ones):
    it then computes every frame in the same batch as an uninterrupted run, bit for bit.
    """
    return [i for block in frameplan.blocks(todo, n, batch_size) for i in block]


# ---------------------------------------------------------------- checks

def check(settings: config.Settings) -> None:
    """The painter's models exist and fit the settings (nothing is loaded)."""
    painter = painters.choose(settings)
    painter.refuse(settings)
    painter.check(settings)


def check_space(ws: Workspace, settings: config.Settings, frames: list[Path], targets: list[Path], params: dict,
                inputs_: tuple[str, ...], overwrite: bool) -> None:
    """Refuse before anything changes when the frames still to make (canvas-sized PNGs at the source
    frames' bytes per pixel, plus a grey motion mask each, about a third of that) will not fit."""
    from vid2vid.core import diskspace

    s = settings.img2img
    keep = ws.keeps_results(STAGE, params, inputs_)
    todo = sum(1 for p in targets if not (keep and p.exists()))
    if not todo:
        return
    need = diskspace.scaled_need(STAGE, todo, frames, s.width, s.height, factor=4 / 3)
    freed = 0 if keep or not overwrite else diskspace.folder_bytes(ws.path(o) for o in ROW.outputs)
    diskspace.check_space(need, ws.root, "use a smaller canvas ({img2img.width}, {img2img.height}) or fewer "
                          "frames (extract again with a lower {extract.fps})", freed=freed)


def oriented(ws: Workspace, settings: config.Settings, job: Job) -> config.Settings:
    """The settings with the default landscape canvas turned upright for a portrait source."""
    from vid2vid.config.canvas import oriented_canvas

    s = settings.img2img
    info = (ws.stage_record("extract") or {}).get("info", {})
    w, h = oriented_canvas(s.width, s.height, int(info.get("width") or 0), int(info.get("height") or 0))
    if (w, h) == (s.width, s.height):
        return settings
    job.say(render_settings(f"img2img: portrait source {info['width']}x{info['height']}: canvas turned to {w}x{h} "
                            "(give {img2img.width} and {img2img.height} to choose another)"))
    return replace(settings, img2img=replace(s, width=w, height=h))


def stage_inputs(ws: Workspace, settings: config.Settings, n: int) -> tuple[str, ...]:
    """The stages img2img reads, each complete and made for these settings, else BadInput."""
    s = settings.img2img
    needed: tuple[str, ...] = ("extract", "depth") if stagetable.img2img_reads_depth(settings.correct) else ("extract",)
    needed += ("control",) if s.controlnet else ()
    if wan_vace.applies(settings) and s.video_control == "depth" and "depth" not in needed:
        needed += ("depth",)
    for dep in needed:
        if not ws.is_complete(dep):
            raise BadInput(f"stage 'img2img' needs the results of '{dep}', which are missing or out of date in "
                           f"{ws.root}; run {stage_ref(dep, ws.root)} first")
    if s.controlnet and (ws.stage_record("control") or {}).get("params") != control_stage.stage_params(settings, n):
        raise BadInput(f"the control images in {ws.root} were made for other ControlNet sources or sizes; "
                       f"run {stage_ref('control', ws.root)} with these settings first")
    return needed


def painted_frames(ws: Workspace, settings: config.Settings, params: dict, rec: dict | None, job: Job
                   ) -> tuple[list[int], list[int]]:
    """(1-based frames this run paints, those of them that start a shot): every frame and frame 1, or
    with key frames on the keys and the shot starts (those recorded for the same parameters, else
    chosen from the source, see stages/propagate.workspace_shots). The shot starts are the
    cross-frame anchors."""
    n = len(ws.frames())
    if not settings.propagate.on:
        return list(range(1, n + 1)), [1][:n]
    info = (rec or {}).get("info", {})
    if rec and rec.get("params") == params and info.get("keys") and info.get("shots"):
        return list(info["keys"]), list(info["shots"])
    from vid2vid.stages.propagate import workspace_shots

    keys0, starts0 = workspace_shots(ws, settings, job)
    keys = [k + 1 for k in keys0]
    job.say(f"img2img: {len(keys)} key frames of {n} ({settings.propagate.keyframes}, scene cuts included)")
    return keys, [k + 1 for k in starts0]


# ---------------------------------------------------------------- stage

def _load(settings: config.Settings, job: Job, model, batches: int):
    """The painter's session: on Ray actors when asked (and no model is handed in), else here."""
    if settings.ray.enabled and model is None and not painters.choose(settings).WINDOWED:
        from vid2vid.painting.raypool import ray_engine

        return ray_engine(settings, job, batches)
    return painters.choose(settings).load(settings, job, model)


def _still_plan(frames: list[Path], settings: config.Settings, job: Job) -> dict:
    """Still frames (decided on the source frames, copied, not painted); none with key frames."""
    s = settings.img2img
    if s.skip_still > 0 and settings.propagate.on:
        job.say(render_settings("img2img: key frames are on, so still frames are not looked for "
                                "({img2img.skip_still} ignored)"))
    return still.plan(inputs.canvases(frames, s), s.skip_still) if s.skip_still > 0 and not settings.propagate.on \
        else {}


def plan_anchors(frames: list[Path], painted: list[int], shots, s: config.Img2ImgSettings) -> tuple[int, ...]:
    """The frames the plan samples first and others read: the keys that start a shot and, with the
    cache-frames accelerator, the frames that hold deep features (a painted frame whose source differs
    from the last holder's by the threshold or more: `still.plan`'s rule)."""
    anchors = set(shots)
    threshold = parse_accel(s.accel).frames
    if threshold is not None:
        reuse = still.plan(inputs.canvases([frames[i - 1] for i in painted], s), threshold)
        anchors |= {f for k, f in enumerate(painted, 1) if k not in reuse}
    return tuple(sorted(anchors))


def run(ws: Workspace, settings: config.Settings, job: Job, overwrite: bool | None = None, model=None) -> dict:
    """Repaint every extracted frame into img2img/ (or one frame into img2img.debug/ with --single).

    model: an already loaded `LoadedModel` to use instead of loading settings.img2img.model (the
    web UI keeps one loaded between runs); the caller makes sure it is the model the settings name.
    """
    # 1. check settings and inputs
    settings = oriented(ws, settings, job)
    settings.img2img.validate()
    settings.correct.validate()
    painters.choose(settings).refuse(settings)
    frames = ws.frames()
    if not frames:
        raise BadInput(f"{ws.path('frames')} has no frames; run {stage_ref('extract', ws.root)} first")
    if settings.img2img.single:
        return run_single(ws, settings, job, frames, model)
    overwrite = settings.run.overwrite if overwrite is None else overwrite
    needed = stage_inputs(ws, settings, len(frames))

    # 2. the model first (unless everything is done), so that a missing model never removes finished frames
    params, rec = stage_params(settings), ws.stage_record(STAGE)
    keys, shots = painted_frames(ws, settings, params, rec, job)
    targets = {i: ws.path(ROW.folder, frame_name(i)) for i in keys}
    maybe_done = bool(rec and rec.get("complete") and rec.get("params") == params and
                      all(p.exists() for p in targets.values()))
    check_space(ws, settings, frames, list(targets.values()), params, needed, overwrite)
    batches = math.ceil(len(targets) / settings.img2img.batch_size)
    if settings.img2img.ip_adapter and not maybe_done:     # reference embeddings first (a painted one paints)
        settings, model = with_references(ws, settings, job, frames, model)
    session = None if maybe_done else _load(settings, job, model, batches)
    try:
        # 3. fresh / resume / done; the real sigmas are printed (by the painter) and recorded
        status = ws.begin_stage(STAGE, params, inputs=needed, overwrite=overwrite, outputs=ROW.outputs)
        if settings.propagate.on:
            ws.update_stage_info(STAGE, keys=keys, keyframes=params["keyframes"], shots=shots)
        todo = [i for i, p in targets.items() if not p.exists()]
        if status.state == "done" and not todo:
            info = ws.stage_info(STAGE)
            job.say(f"img2img: already done ({info.get('frames')} frames)")
            return info
        ws.path(ROW.folder).mkdir(parents=True, exist_ok=True)
        session = session or _load(settings, job, model, batches)
        return _paint(ws, settings, job, session, frames, targets, todo, shots)
    finally:
        if session is not None:
            session.close()


def _paint(ws: Workspace, settings: config.Settings, job: Job, session, frames: list[Path],
           targets: dict[int, Path], todo: list[int], shots: list[int]) -> dict:
    """4. the unit loop over the frames left, 5. the record."""
    ws.update_stage_info(STAGE, **session.describe())
    keyed, s = settings.propagate.on, settings.img2img
    still_plan = _still_plan(frames, settings, job)
    writer = FrameWriter(settings, targets, ws.path(MASKS), set(todo),
                         job.tracker(STAGE, len(targets), done=len(targets) - len(todo)), keyed, still_plan)
    writer.copy_earlier_stills()
    painted = [i for i in targets if i not in still_plan]
    if getattr(session, "windowed", False):       # windows of frames blended per step (painting/windows.py)
        from vid2vid.painting.windowrun import paint_windowed

        key = str((ws.stage_record(STAGE) or {}).get("key"))
        if hasattr(session, "paint_workspace"):       # a painter with its own latent layout (Wan VACE)
            session.paint_workspace(ws, settings, job, frames, key, writer)
        else:
            paint_windowed(ws, settings, job, session, frames, key, writer)
        return _complete(ws, settings, session, writer, len(targets), 1, None, still_plan)
    units = frameplan.plan(s, painted, [i for i in todo if i not in still_plan],
                           anchors=plan_anchors(frames, painted, shots if keyed else [], s))
    say_order(job, s, units, writer.missing)
    workers, threads = paint_frames(FrameRun(ws, settings, frames, painted, units, writer), session, job)
    return _complete(ws, settings, session, writer, len(targets), workers, threads, still_plan)


def _complete(ws: Workspace, settings: config.Settings, session, writer: FrameWriter, frames: int, workers: int,
              threads: int | None, still_plan: dict) -> dict:
    """5. the stage's record."""
    s = settings.img2img
    seconds = {k: round(v, 3) for k, v in {**session.timings.seconds, **writer.times}.items()}
    fast = {"still_frames": sorted(still_plan)} if s.skip_still > 0 and not settings.propagate.on else {}
    ws.complete_stage(STAGE, frames=frames, width=s.width, height=s.height, time_breakdown=seconds,
                      model_workers=workers, threads_per_worker=threads, **session.record(), **fast,
                      **session.describe())
    return ws.stage_info(STAGE)


def run_single(ws: Workspace, settings: config.Settings, job: Job, frames: list[Path], model=None) -> dict:
    """Debug mode: generate frame `single` into img2img.debug/ (the real sigmas are said and returned)."""
    n, t = len(frames), settings.img2img.single
    if t > n:
        raise BadInput(f"{{img2img.single}} {t} is past the last frame; the workspace has {n} frames")
    order: list[int] = list(range(1, n + 1))
    anchors: tuple[int, ...] = ()
    if settings.propagate.on:
        keys, shots = painted_frames(ws, settings, stage_params(settings), ws.stage_record(STAGE), job)
        if t in keys:                             # a key is painted as the keyed run paints it
            order, anchors = keys, tuple(shots)
    units = single.plan_single(ws, settings, t, order, plan_anchors(frames, order, anchors, settings.img2img))
    if settings.img2img.ip_adapter:
        settings, model = with_references(ws, settings, job, frames, model)
    session = painters.choose(settings).load(settings, job, model)
    try:
        generated, controls = single.paint_single(ws, settings, job, frames, session, units)
    finally:
        session.close()
    path = single.write_single(ws, settings, generated, controls)
    job.say(f"img2img: frame {t} written to {path}")
    ws.log("img2img-single", frame=t, path=str(path), real_sigmas=session.describe()["real_sigmas"])
    return {"frame": t, "output": str(path), **session.describe()}


def with_references(ws: Workspace, settings: config.Settings, job: Job, frames: list[Path], model=None):
    """(The settings with the IP-Adapters' stored embeddings, the model to paint with): painting/references.py.

    A painted reference (first-painted, key:N) is frame N as `--single N` paints it with the image painter
    and without adapters (a windowed painter's motion fields cleared: `animatediff.image_settings`); the
    model loaded for it (or to check the adapters' family before anything is written) is handed on,
    except to a Ray run of frames, whose actors load their own (a windowed run loads it here)."""
    from vid2vid.core.workspace import params_key
    from vid2vid.painting import references
    from vid2vid.painting.painters import animatediff

    s = settings.img2img
    references.check(s.ip_adapter, len(frames))
    plain = animatediff.image_settings(references.without_adapters(settings))
    painter = painters.choose(plain)
    here = not settings.ray.enabled or painters.choose(settings).WINDOWED     # the painting model loads here
    loaded = [model]

    def session_of(one: config.Settings):
        session = painter.load(one, job, loaded[0])
        loaded[0] = session.engine.model
        return session

    if loaded[0] is None and here:
        session_of(plain).close()                     # the model, to check the family before any write
    if loaded[0] is not None:
        references.check_fits(s.ip_adapter, loaded[0].unet)

    def paint(ts: list[int]) -> list:
        out = []
        for t in ts:
            one = replace(plain, img2img=replace(plain.img2img, single=t))
            order = list(range(1, len(frames) + 1))
            units = single.plan_single(ws, one, t, order, plan_anchors(frames, order, (), one.img2img))
            session = session_of(one)
            try:
                out.append(single.paint_single(ws, one, job, frames, session, units)[0])
            finally:
                session.close()
        return out

    ip = references.prepare(ws.root, s.ip_adapter, params_key(stage_params(plain)), paint, job.say)
    return replace(settings, img2img=replace(s, ip_adapter=ip)), (loaded[0] if here else model)
