"""Stage `img2img`: every extracted frame repainted, then frame delta correction, into `img2img/`.

With key frames (`--keyframes every:K | motion:T`) only the key frames are painted, under their own
frame numbers, without the frame delta correction (keys lie frames apart); stage `propagate`
makes the rest.

Work per frame t (1-based):
    canvas_t  = fit(src_t, width, height, resize)          (reader thread)
    d_t       = canvas_t - canvas_(t-1)                    (none for the first frame)
    spatial_t = motion / depth inpainting mask or none     (motion masks start at frame 2)
    g_t       = img2img(canvas_t, spatial_t)               (main thread, several frames per UNet call)
    o_t, m_t  = fdc.correct_frame(g_t, o_(t-1), d_t, ...)  (writer thread, strictly in order;
                                                             correct.method "flow": o_t = g_t, the
                                                             flow stage corrects afterwards)
    img2img/t.png <- o_t, motionmask/t.png <- the motion mask used

Generation never depends on earlier outputs, so frames are batched (one UNet call per step for
the whole batch) and the file work is pipelined: the reader thread reads, fits and masks batch
k+1 and the writer thread corrects and writes batch k-1 while the model runs on batch k.
On a CPU, `workers` model threads may run whole batches side by side, each with its share of
the intra-op threads (small models use one core far better than two cores on one call; see
`model_workers`); on CUDA one thread drives the GPU. The correction depends on the previous
output, so the one writer thread applies it strictly in frame order, whichever worker finished
first. The previous output is always taken as written (8-bit PNG), so a run resumed after a
crash reads o_(t-1) back from disk and produces exactly the frames an uninterrupted run would
(the worker layout depends only on the settings, the frame count and the machine, never on
which frames are left). `--single N` writes the raw generated frame N to `img2img.debug/`
without touching the stage's record.
With ControlNets (issue 14) each frame's control images are read from the `control` stage's
folders with the frame (reader thread) and go with it to the engine; `--single N` makes them
itself and writes them beside the debug frame.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vid2vid import config
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput, Interrupted, render_settings, stage_ref
from vid2vid.core.fileid import file_id
from vid2vid.core.progress import Job
from vid2vid.core.threads import SequentialWriter, hand_over_finished, prefetch, worker_pool
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.painting import frameplan, still
from vid2vid.painting.raypool import ray_engine
from vid2vid.stages import control as ctl
from vid2vid.stages import registry
from vid2vid.temporal import fdc
from vid2vid.temporal.correction import key_params

STAGE = "img2img"
ROW = registry.stage(STAGE)
OUTPUT = "img2img"
MASKS = "motionmask"
DEBUG = "img2img.debug"
DEPTH = "depthmask"
# Settings that change how fast, not what: left out of the stage key.
RUNTIME_ONLY = ("batch_size", "workers", "single", "compile")
# issue 17: settings that enter the stage key only when used, so older workspaces keep their keys
# Settings recorded in the stage key only when they differ from these defaults, so that records
# made before the settings existed stay valid (issues 15 and 17).
KEYED_WHEN_SET = {"vae": "", "tcd_gamma": 0.3, "skip_still": 0.0, "cross_frame": "none", "cross_frame_blocks": "up",
                  "cross_frame_bank": 4, "flow_init": 0.0, "motion_module": "", "context_length": 16,
                  "context_overlap": 4, "context_weighting": "pyramid", "motion_scale": 1.0, "shuffle_noise": False}


@dataclass
class FrameJob:
    """Everything known about frame `index` before generation (canvas-sized arrays)."""

    index: int                      # 1-based
    canvas: np.ndarray              # float32 HxWx3 [0, 1]
    delta: np.ndarray | None        # float32 HxWx3 [-1, 1]; None for the first frame
    depth: np.ndarray | None        # float32 HxWx1 [0, 1]
    spatial: np.ndarray | None      # float32 HxWx1 [0, 1], 1 = may change
    control: list[np.ndarray] | None = None   # ControlNet images, one per net (float32 HxWx3 [0, 1])
    motion: Any = None              # flowinit.SourceMotion from frame index-1 (flow init only)


# ---------------------------------------------------------------- parameters

def _path_identity(spec: str) -> dict:
    """Name plus size and time for a file, so that replacing a checkpoint invalidates the stage."""
    p = Path(spec).expanduser()
    if p.is_file():
        return file_id(p).record(ns=True)
    return {"spec": spec}


def stage_params(settings: config.Settings) -> dict:
    """What decides the stage's results (and so its key)."""
    s = settings.img2img
    gen = {k: v for k, v in config.to_dict(s).items() if k not in RUNTIME_ONLY}
    for k, default in KEYED_WHEN_SET.items():          # issue 17
        if gen.get(k) == default or (k == "tcd_gamma" and s.sampler != "tcd"):
            gen.pop(k, None)
    if s.vae:
        gen["vae"] = _path_identity(s.vae)
    gen["model"] = _path_identity(s.model)
    gen["loras"] = [_path_identity(x) for x in s.loras]
    gen["embeddings"] = [_path_identity(x) for x in s.embeddings]
    # ControlNet (issue 14): absent without ControlNets, so records made before them stay valid
    nets = gen.pop("controlnet")
    if s.controlnet:
        gen["controlnet"] = [{**c, "model": _path_identity(cn.model)} for c, cn in zip(nets, s.controlnet)]
    params: dict[str, Any] = {"img2img": gen, "correct": key_params(settings.correct)}
    if settings.propagate.on:             # (absent when off, so records made before key frames stay valid)
        from vid2vid.temporal.propagation import parse_keyframes

        params["keyframes"] = str(parse_keyframes(settings.propagate.keyframes))
    return params


def needs_depth(c: config.CorrectSettings) -> bool:
    return c.delta_mask == "depth" or c.spatial_mask == "depth"


# ---------------------------------------------------------------- reading (pure given the files)

def read_depth(ws: Workspace, frame: Path, width: int, height: int, resize: str) -> np.ndarray:
    """depthmask/<stem>.png as float32 HxWx1 in [0, 1] at the canvas size."""
    p = ws.path(DEPTH, frame.stem + ".png")
    if not p.is_file():
        raise BadInput(f"depth mask {p} is missing; run {stage_ref('depth', ws.root)} first")
    return imageops.fit(imageops.read_mask(p), width, height, resize)


def frame_jobs(ws: Workspace, frames: list[Path], indexes: list[int], settings: config.Settings
               ) -> Iterator[FrameJob]:
    """FrameJobs for the 1-based `indexes` (ascending), reading each source frame once."""
    s, c = settings.img2img, settings.correct
    depth_on = needs_depth(c)
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
        # ControlNet (issue 14): the control stage's images of this frame
        control = [imageops.read_image(ctl.image_path(ws, n, cn, i)) for n, cn in enumerate(s.controlnet, 1)] \
            if s.controlnet else None
        motion = None
        if s.flow_init > 0 and i > 1:          # flow-guided init (issue 15): the source's motion
            from vid2vid.temporal.flowinit import source_motion

            assert prev_canvas is not None         # frame i - 1 came first
            motion = source_motion(prev_canvas, canvas)
        yield FrameJob(i, canvas, delta, depth, spatial, control, motion)
        prev_i, prev_canvas = i, canvas


# ---------------------------------------------------------------- model workers

def model_workers(requested: int, device_type: str, batches: int, threads: int) -> tuple[int, int]:
    """(workers, intra-op threads per worker) for running `batches` batches with `threads` CPU threads.

    A small model's UNet call cannot keep two cores busy (it is many short ops), so two batches
    run side by side, one core each, go about 1.25x faster than one after the other on both
    cores (tiny model, 2 cores). Automatic (requested 0): one worker on CUDA or with one thread;
    else 2, but 1 when there are fewer than 4 batches, because the last batch would run on half
    the cores while the other worker waits. The layout must not depend on which frames are left
    (intra-op thread counts change float rounding), so callers pass the batch count of the whole video.
    """
    threads = max(1, threads)
    if device_type != "cpu":
        return 1, threads
    if requested == 0:
        workers = 2 if threads >= 2 and batches >= 4 else 1
    else:
        workers = min(requested, threads)
    return workers, max(1, threads // workers)


# ---------------------------------------------------------------- stage

def check(settings: config.Settings) -> None:
    """The model and ControlNets the settings name exist and are complete, and the model takes the
    canvas (nothing is loaded)."""
    from vid2vid.config.canvas import canvas_rules, check_canvas
    from vid2vid.diffusion.controlnet import check_controlnet_spec
    from vid2vid.diffusion.loading import check_model_spec

    check_model_spec(settings.img2img.model)
    check_canvas(settings.img2img.width, settings.img2img.height, canvas_rules(settings.img2img.model))
    for cn in settings.img2img.controlnet:
        check_controlnet_spec(cn.model)
    s = settings.img2img
    if s.vae:                                       # issue 17: a missing VAE, a grid too short for the steps
        from vid2vid.diffusion.vae import check_vae_spec

        check_vae_spec(s.vae)
    from vid2vid.diffusion import fewstep

    if fewstep.is_fewstep(s.sampler):
        fewstep.timesteps(s.steps, s.denoise)


def check_space(ws: Workspace, settings: config.Settings, frames: list[Path], targets: list[Path], params: dict,
                inputs: tuple[str, ...], overwrite: bool) -> None:
    """Refuse before anything changes when the frames still to make (canvas-sized PNGs at the source
    frames' bytes per pixel, plus a grey motion mask each, about a third of that) will not fit."""
    from vid2vid.core import diskspace

    s = settings.img2img
    keep = ws.keeps_results(STAGE, params, inputs)
    todo = sum(1 for p in targets if not (keep and p.exists()))
    if not todo:
        return
    need = diskspace.scaled_need(STAGE, todo, frames, s.width, s.height, factor=4 / 3)
    freed = 0 if keep or not overwrite else diskspace.folder_bytes(ws.path(o) for o in ROW.outputs)
    diskspace.check_space(need, ws.root, "use a smaller canvas ({img2img.width}, {img2img.height}) or fewer "
                          "frames (extract again with a lower {extract.fps})", freed=freed)


def oriented(ws: Workspace, settings: config.Settings, job: Job) -> config.Settings:
    """The settings with the default landscape canvas turned upright for a portrait source."""
    from dataclasses import replace

    from vid2vid.config.canvas import oriented_canvas

    s = settings.img2img
    info = (ws.stage_record("extract") or {}).get("info", {})
    w, h = oriented_canvas(s.width, s.height, int(info.get("width") or 0), int(info.get("height") or 0))
    if (w, h) == (s.width, s.height):
        return settings
    job.say(render_settings(f"img2img: portrait source {info['width']}x{info['height']}: canvas turned to {w}x{h} "
                            "(give {img2img.width} and {img2img.height} to choose another)"))
    return replace(settings, img2img=replace(s, width=w, height=h))


def _load(settings: config.Settings, job: Job, model=None):
    from vid2vid.core.devices import describe
    from vid2vid.diffusion.engine import Img2ImgEngine
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.schedules import format_sigmas

    s = settings.img2img
    if model is None:
        check(settings)
        job.say(f"img2img: loading model {s.model}")
        model = load_model(s.model, device=s.device, dtype=s.dtype, loras=s.loras, embeddings=s.embeddings,
                           prediction_type=s.prediction_type(), vae=s.vae, progress=job.progress)
    job.say(f"img2img: device {describe(model.device)}, {str(model.dtype).removeprefix('torch.')}")
    from vid2vid.diffusion.controlnet import load_units

    engine = Img2ImgEngine(model, s, controlnets=load_units(s.controlnet, model, job.say) or None)
    from vid2vid.diffusion import fewstep  # issue 17: allowed, but said

    for warning in fewstep.warnings_for(s, model):
        job.say(f"img2img: warning: {warning}")
    grid = "" if engine.timesteps is None else f" at timesteps {[int(t) for t in engine.timesteps]}"  # issue 17
    job.say(f"img2img: real sigmas {format_sigmas(engine.real_sigmas)}{grid}, sampler {s.sampler}, seed {s.seed}")
    return engine


def batch_aligned(todo: list[int], n: int, batch_size: int) -> list[int]:
    """Frame numbers to generate so that every batch is a whole block [kB+1 .. (k+1)B] of the video.

    A frame's pixels may differ by float rounding with the batch it is computed in, so a resumed
    run regenerates the whole block that holds a missing frame (writing only the missing ones):
    it then computes every frame in the same batch as an uninterrupted run, bit for bit.
    """
    return [i for block in frameplan.blocks(todo, n, batch_size) for i in block]


def _keys(ws: Workspace, settings: config.Settings, params: dict, rec: dict | None, job: Job
          ) -> tuple[list[int], list[int]]:
    """(1-based frames this run paints, those of them that start a shot): every frame and frame 1, or
    with key frames on the keys and the shot starts (those recorded for the same parameters, else
    chosen from the source, see stages.propagate.workspace_shots). The shot starts are the
    cross-frame anchors (issue 15)."""
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


def _canvases(frames: list[Path], s) -> Iterator[np.ndarray]:
    """Every source frame fitted to the canvas, one at a time (issue 17: the still-frame plan)."""
    for f in frames:
        yield imageops.fit(imageops.read_image(f), s.width, s.height, s.resize)


def run(ws: Workspace, settings: config.Settings, job: Job, overwrite: bool | None = None,
        model=None) -> dict:
    """Repaint every extracted frame into img2img/ (or one frame into img2img.debug/ with --single).

    model: an already loaded `LoadedModel` to use instead of loading settings.img2img.model (the
    web UI keeps one loaded between runs); the caller makes sure it is the model the settings name.
    """
    # 1. check settings and inputs
    settings = oriented(ws, settings, job)
    s, c = settings.img2img, settings.correct
    s.validate()
    c.validate()
    frames = ws.frames()
    if not frames:
        raise BadInput(f"{ws.path('frames')} has no frames; run {stage_ref('extract', ws.root)} first")
    if s.single:
        return run_single(ws, settings, job, frames, model)
    overwrite = settings.run.overwrite if overwrite is None else overwrite
    inputs: tuple[str, ...] = ("extract", "depth") if needs_depth(c) else ("extract",)
    inputs += ("control",) if s.controlnet else ()
    for dep in inputs:
        if not ws.is_complete(dep):
            raise BadInput(f"stage 'img2img' needs the results of '{dep}', which are missing or out of date in "
                           f"{ws.root}; run {stage_ref(dep, ws.root)} first")
    if s.controlnet and (ws.stage_record("control") or {}).get("params") != ctl.stage_params(settings, len(frames)):
        raise BadInput(f"the control images in {ws.root} were made for other ControlNet sources or sizes; "
                       f"run {stage_ref('control', ws.root)} with these settings first")

    # 2. the model first (unless everything is done), so that a missing model never removes finished frames
    params = stage_params(settings)
    out_dir, mask_dir = ws.path(OUTPUT), ws.path(MASKS)
    rec = ws.stage_record(STAGE)
    check_flow_init_keys(settings)
    keys, shots = _keys(ws, settings, params, rec, job)   # 1-based frames to paint: all, or the key frames
    targets = {i: out_dir / frame_name(i) for i in keys}
    maybe_done = bool(rec and rec.get("complete") and rec.get("params") == params and
                      all(p.exists() for p in targets.values()))
    check_space(ws, settings, frames, list(targets.values()), params, inputs, overwrite)
    nbatches = math.ceil(len(targets) / s.batch_size)
    load = (lambda: ray_engine(settings, job, nbatches)) if settings.ray.enabled and model is None \
        else (lambda: _load(settings, job, model))
    engine = None if maybe_done else load()

    # 3. fresh / resume / done; the real sigmas are printed (by _load) and recorded
    status = ws.begin_stage(STAGE, params, inputs=inputs, overwrite=overwrite, outputs=ROW.outputs)
    keyed = settings.propagate.on
    if keyed:
        ws.update_stage_info(STAGE, keys=keys, keyframes=params["keyframes"], shots=shots)
    todo = [i for i, p in targets.items() if not p.exists()]
    if status.state == "done" and not todo:
        info = ws.stage_info(STAGE)
        job.say(f"img2img: already done ({info.get('frames')} frames)")
        return info
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or load()
    ws.update_stage_info(STAGE, **engine.describe())
    missing = set(todo)
    # issue 17: still frames (stages/still.py) are decided on the source frames and copied, not painted;
    # with key frames only the keys are painted anyway, and still frames are not looked for
    if s.skip_still > 0 and keyed:
        job.say(render_settings("img2img: key frames are on, so still frames are not looked for "
                                "({img2img.skip_still} ignored)"))
    still_plan = still.plan(_canvases(frames, s), s.skip_still) if s.skip_still > 0 and not keyed else {}
    painted = [i for i in keys if i not in still_plan]
    follow = still.painted_before(still_plan, len(frames))
    tracker = job.tracker(STAGE, len(targets), done=len(targets) - len(todo))
    times: dict[str, float] = defaultdict(float)
    prev_out: dict[int, np.ndarray] = {}

    def copy_still(t: int) -> None:
        # issue 17: a still frame's output is a byte copy of the output before it
        if t not in missing:
            return
        still.copy_output(targets[t - 1], targets[t])
        still.record(out_dir, t, *still_plan[t])
        missing.discard(t)
        if t - 1 in prev_out:
            prev_out[t] = prev_out.pop(t - 1)
        try:
            tracker.advance()
        except Interrupted:
            pass

    for t in sorted(still_plan):          # still frames whose previous output a former run wrote
        if t in missing and targets[t - 1].exists():
            copy_still(t)

    def previous(i: int) -> np.ndarray | None:
        """o_(i-1) as written: from this run's memory, or read back from disk after a resume."""
        if i == 1:
            return None
        if i - 1 in prev_out:
            return prev_out.pop(i - 1)
        return imageops.read_image(targets[i - 1])

    def finish_frame(fj: FrameJob, generated: np.ndarray) -> None:
        # correction in frame order, then atomic writes; the 8-bit result is the next prev_out
        if fj.index not in missing:
            return        # regenerated only to keep its batch whole (see batch_aligned); already written
        t0 = time.perf_counter()
        if c.method == "stats" and not keyed:
            out, mask = fdc.correct_frame(generated, previous(fj.index), fj.delta, c, depth=fj.depth)
        else:             # a sequence-level method (flow) corrects later, in its own stage
            out, mask = generated, None
        if mask is None and c.spatial_mask == "motion":
            mask = fj.spatial
        out8 = imageops.to_uint8(out)
        t1 = time.perf_counter()
        if mask is not None and (c.delta_mask == "motion" or c.spatial_mask == "motion"):
            imageops.write_mask(mask_dir / frame_name(fj.index), mask)
        imageops.write_image(targets[fj.index], out8)
        if not keyed:
            prev_out[fj.index] = imageops.to_float(out8)
        t2 = time.perf_counter()
        times["correct"] += t1 - t0
        times["write"] += t2 - t1
        try:
            tracker.advance()
        except Interrupted:
            pass          # the main thread stops before the next batch; frames already generated are kept
        for t in follow.get(fj.index, ()):   # issue 17: the still frames after it
            copy_still(t)

    def finish_batch(batch: list[FrameJob], generated: list[np.ndarray]) -> None:
        # 5. writer thread: correct and write frame by frame, in order
        for fj, g in zip(batch, generated):
            finish_frame(fj, g)

    def timed(jobs: Iterator[tuple[frameplan.Unit, list[FrameJob]]]):
        # reader thread: read, fit, deltas and masks of the next batch
        while True:
            t0 = time.perf_counter()
            item = next(jobs, None)
            times["read"] += time.perf_counter() - t0
            if item is None:
                return
            unit, batch = item
            yield unit, batch, engine.canvas_masks([fj.spatial for fj in batch])

    def previous_output(i: int) -> np.ndarray:
        """o_(i-1) as written, for flow init (this run's memory or the file)."""
        return prev_out[i - 1] if i - 1 in prev_out else imageops.read_image(out_dir / frame_name(i - 1))

    # 4. model work (encode, sample, decode) on the workers, while the reader prepares the next
    #    batch and the writer corrects and writes finished batches in frame order
    import torch

    threads_before = torch.get_num_threads()
    remote_layout = getattr(engine, "worker_layout", None)   # Ray: one driver thread per actor
    if remote_layout is not None:
        workers, threads, pool = remote_layout()
    else:
        workers, threads = worker_layout(s, engine.device.type, len(painted), threads_before)
        if workers > 1:
            job.say(f"img2img: {workers} model workers, {threads} CPU thread(s) each")
        pool = worker_pool(workers, threads, name="img2img-model")
    # cross-frame attention / flow init (issue 15): the plan says which frames run together and
    # which K/V they read; sequential modes run one frame at a time (see frame_order)
    units = frameplan.plan(s, painted, [i for i in todo if i not in still_plan],   # issue 17: painted frames
                             anchors=tuple(shots) if keyed else ())                 # issue 15: one anchor a shot
    say_order(job, s, units, missing)

    writer = InlineWriter(finish_batch) if s.flow_init > 0 else \
        SequentialWriter(finish_batch, depth=1, name="img2img-writer")
    xf = cross_frame(engine, s)
    pending: deque = deque()              # (batch, future) in frame order

    def hand_over(keep: int) -> None:
        while len(pending) > keep:
            batch, fut = pending.popleft()
            writer.put(batch, fut.result())

    try:
        jobs = frame_jobs(ws, frames, frameplan.frames_of(units), settings)
        for unit, batch, cmasks in prefetch(timed(unit_batches(jobs, units)), 1, name="img2img-reader"):
            writer.check()
            hand_over(workers - 1)        # wait for a free worker (the writer works meanwhile)
            job.check()                   # then, before committing to more work, honour an interrupt
            canvases = [init_canvas(fj, s, previous_output) for fj in batch]
            controls = [fj.control for fj in batch] if s.controlnet else None
            bind = getattr(engine, "bind_unit", None)        # Ray: the unit bound here, in plan order
            task = bind(unit, canvases, cmasks, controls) if bind is not None else \
                partial(sample_unit, xf, engine, unit, canvases, cmasks, controls)
            pending.append((batch, pool.submit(task)))
            if unit.keep:
                hand_over(0)              # later units read its K/V
        hand_over(0)
    except Interrupted:
        pool.shutdown(wait=True, cancel_futures=True)
        hand_over_finished(pending, writer)   # batches the workers had finished are written, not lost
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        if xf is not None:
            xf.close()                    # the model's own attention processors are back
        if workers > 1:
            torch.set_num_threads(threads_before)

    # 6. record
    seconds = {k: round(v, 3) for k, v in {**engine.timings.seconds, **times}.items()}
    fast = {"still_frames": sorted(still_plan)} if s.skip_still > 0 and not keyed else {}     # issue 17
    extra = {} if xf is None else {"cross_frame_peak_mb": round(xf.peak_bytes / 2 ** 20, 1)}
    ws.complete_stage(STAGE, frames=len(targets), width=s.width, height=s.height, time_breakdown=seconds,
                      model_workers=workers, threads_per_worker=threads, **extra, **fast, **engine.describe(),
                      **(engine.record() if remote_layout is not None else {}))
    return ws.stage_info(STAGE)


def run_single(ws: Workspace, settings: config.Settings, job: Job, frames: list[Path], model=None) -> dict:
    """Debug mode: generate frame `single` into img2img.debug/ (the real sigmas are said and returned).

    The frame is sampled as a full run samples it, so the file holds that run's raw generated
    frame: with its whole batch block, after the anchor it reads, after every earlier frame
    whose K/V it reads in a sequential mode, with the run's threads per worker; flow init reads
    the previous output from img2img/.
    """
    import torch

    s = settings.img2img
    n, t = len(frames), s.single
    if t > n:
        raise BadInput(f"{{img2img.single}} {t} is past the last frame; the workspace has {n} frames")
    check_flow_init_keys(settings)
    order: list[int] = list(range(1, n + 1))
    anchors: tuple[int, ...] = ()
    if settings.propagate.on:
        keys, shots = _keys(ws, settings, stage_params(settings), ws.stage_record(STAGE), job)
        if t in keys:                             # a key is painted as the keyed run paints it
            order, anchors = keys, tuple(shots)
    units = frameplan.plan(s, order, [t], anchors)
    lacking = [f for f in frameplan.frames_of(units) if s.flow_init > 0 and f > 1
               and not ws.path(OUTPUT, frame_name(f - 1)).is_file()]
    if lacking:
        raise BadInput(f"flow init reads the previous output {ws.path(OUTPUT, frame_name(lacking[0] - 1))}, which "
                       f"is missing; run {stage_ref('img2img', ws.root)} first or set {{img2img.flow_init}} to 0")
    engine = _load(settings, job, model)
    if len(frameplan.frames_of(units)) > 1:
        job.say(f"img2img: frame {t} is sampled as a full run samples it: "
                f"{len(frameplan.frames_of(units))} frames in {len(units)} call(s)")
    threads_before = torch.get_num_threads()
    _, threads = worker_layout(s, engine.device.type, len(order), threads_before)
    torch.set_num_threads(threads)
    xf = cross_frame(engine, s)
    generated = None
    t_controls: list[np.ndarray] = []
    try:
        previous = lambda i: imageops.read_image(ws.path(OUTPUT, frame_name(i - 1)))  # noqa: E731
        # ControlNet (issue 14): control images made here (the control stage need not have run)
        make_controls = ctl.FrameControls(ws, settings) if s.controlnet else None
        plain = replace(settings, img2img=replace(s, controlnet=[]))
        for unit, batch in unit_batches(frame_jobs(ws, frames, frameplan.frames_of(units), plain), units):
            job.check()
            controls = [[imageops.to_float(c) for c in make_controls(fj.index)] for fj in batch] \
                if make_controls else None
            out = sample_unit(xf, engine, unit, [init_canvas(fj, s, previous) for fj in batch],
                              engine.canvas_masks([fj.spatial for fj in batch]), controls)
            if make_controls and t in unit.frames:
                t_controls = controls[unit.frames.index(t)] if controls else []
            if t in unit.frames:
                generated = out[unit.frames.index(t)]
    finally:
        if xf is not None:
            xf.close()
        torch.set_num_threads(threads_before)
    assert generated is not None          # frame t is in one of the units
    path = ws.path(DEBUG, frame_name(t))
    for n_cn, (cn, img) in enumerate(zip(s.controlnet, t_controls), 1):
        imageops.write_image(path.with_name(f"{path.stem}-control-{ctl.folder_name(n_cn, cn)}.png"), img)
    imageops.write_image(path, generated)
    job.say(f"img2img: frame {t} written to {path}")
    ws.log("img2img-single", frame=t, path=str(path), real_sigmas=engine.describe()["real_sigmas"])
    return {"frame": t, "output": str(path), **engine.describe()}


# ---------------------------------------------------------------- frame order, cross-frame attention, flow init
# (issue 15: diffusion/crossframe.py, flowinit.py, stages/frameplan.py hold the mechanisms)

class InlineWriter:
    """The writer of a run whose next frame reads the previous output: handles each item at once."""

    def __init__(self, handle: Callable[..., None]):
        self.handle = handle

    def put(self, *item) -> None:
        self.handle(*item)

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


def check_flow_init_keys(settings: config.Settings) -> None:
    """Flow init reads the previous frame's output, which a key-frame run does not paint."""
    if settings.img2img.flow_init > 0 and settings.propagate.on:
        raise BadInput("flow init reads the previous frame's output, which key frames leave unpainted; set "
                       "{img2img.flow_init} to 0 or turn {propagate.keyframes} off")


def worker_layout(s: config.Img2ImgSettings, device_type: str, n: int, threads: int) -> tuple[int, int]:
    """(workers, threads per worker) of a run over n frames; sequential runs have one worker."""
    if frameplan.sequential(s):
        return model_workers(1, device_type, n, threads)
    return model_workers(s.workers, device_type, math.ceil(n / s.batch_size), threads)


def say_order(job: Job, s: config.Img2ImgSettings, units: list, missing: set[int]) -> None:
    if frameplan.sequential(s):
        job.say(f"img2img: {frameplan.why_sequential(s)}: frames run one at a time in order "
                "(batch 1, one model worker)")
    again = [u.frames[0] for u in units if u.keep and u.frames[0] not in missing]
    if again:
        job.say(f"img2img: sampling {len(again)} finished frame(s) again for the cross-frame references "
                "of the frames left (nothing is rewritten)")


def cross_frame(engine, s: config.Img2ImgSettings):
    """The run's CrossFrame on the engine's UNet, or None for cross-frame none."""
    if s.cross_frame == "none" or hasattr(engine, "bind_unit"):      # Ray: the actors hold the attention
        return None
    from vid2vid.diffusion.crossframe import CrossFrame

    return CrossFrame(engine.model.unet, s.cross_frame, s.cross_frame_blocks, s.cross_frame_bank)


def sample_unit(xf, engine, unit: frameplan.Unit, canvases: list[np.ndarray], masks,
                controls: list[list[np.ndarray]] | None = None) -> list[np.ndarray]:
    """Repaint one unit's canvases (with their ControlNet images), reading (and with unit.keep
    recording) cross-frame K/V."""
    repaint = partial(engine.repaint, controls=controls) if controls else engine.repaint
    if xf is None:
        return repaint(canvases, masks)
    out = xf.run(unit.frames[0] if unit.keep else None, unit.refs, unit.keep, repaint, canvases, masks)
    xf.release(unit.release)
    return out


def init_canvas(fj: FrameJob, s: config.Img2ImgSettings, previous_output: Callable[[int], np.ndarray]) -> np.ndarray:
    """The image img2img starts frame fj from: the canvas, or with flow init the mix with o_(t-1)."""
    if s.flow_init == 0 or fj.motion is None:
        return fj.canvas
    from vid2vid.temporal.flowinit import mix

    return mix(fj.canvas, previous_output(fj.index), fj.motion, s.flow_init)


def unit_batches(jobs: Iterator[FrameJob], units: list) -> Iterator[tuple[frameplan.Unit, list[FrameJob]]]:
    """(unit, its FrameJobs) for each unit, from the jobs of `frameplan.frames_of(units)`."""
    for unit in units:
        batch = [next(jobs) for _ in unit.frames]
        if [fj.index for fj in batch] != list(unit.frames):
            raise RuntimeError(f"frame jobs {[fj.index for fj in batch]} do not match unit {unit.frames}")
        yield unit, batch


class KeyFillAttention:
    """`--key-fill img2img` with cross-frame attention (anchor, anchor-prev or bank): the fill of
    frame t (0-based) joins the K/V of its nearest key (`crossframe.nearest_key`; between two keys,
    in the frame's own shot). The key's K/V are recorded by sampling the key's painted output with
    the fill's own engine (the fill's schedule and seed rule, the whole frame, a batch of one, with
    the key's ControlNet images) once per key, and kept while the frames near it are filled; the
    frames come in order, so each key is sampled at most once a run. Extra cost: one light
    sampling per key that some fill reads (`record()` says how many and how long).

    fill(t, frame, hole) is the plain fill; key_input(k) gives key k's painting and control images.
    """

    def __init__(self, engine, s: config.Img2ImgSettings, keys: list[int], fill, job: Job, key_input):
        from vid2vid.diffusion.crossframe import CrossFrame

        self.engine, self.keys, self.fill, self.job, self.key_input = engine, sorted(keys), fill, job, key_input
        self.xf = CrossFrame(engine.model.unet, "anchor", s.cross_frame_blocks, s.cross_frame_bank)
        self.key_samplings, self.key_seconds, self.fill_seconds = 0, 0.0, 0.0
        self.read: list[tuple[int, int]] = []        # (frame, key) of each fill, in order
        job.say(f"propagate: the img2img fill reads its nearest key's attention (cross-frame {s.cross_frame}); "
                "one light sampling per key it reads")

    def __call__(self, t: int, frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
        from vid2vid.diffusion.crossframe import nearest_key

        k = nearest_key(t, self.keys)
        if k not in self.xf.recorded:
            self.xf.release(list(self.xf.recorded))          # the frames before are done with their key
            image, controls = self.key_input(k)
            t0 = time.perf_counter()
            self.xf.run(k, (), True, self.engine.generate, [image], controls=controls)
            self.key_seconds += time.perf_counter() - t0
            self.key_samplings += 1
        t0 = time.perf_counter()
        out = self.xf.run(None, (k,), False, self.fill, t, frame, hole)
        self.fill_seconds += time.perf_counter() - t0
        self.read.append((t, k))
        return out

    def record(self) -> dict:
        """What the stage records: key samplings, their seconds and the fills' seconds."""
        return {"fill_key_samplings": self.key_samplings, "fill_key_seconds": round(self.key_seconds, 3),
                "fill_seconds": round(self.fill_seconds, 3),
                "fill_cross_frame_peak_mb": round(self.xf.peak_bytes / 2 ** 20, 1)}

    def close(self) -> None:
        self.xf.close()
