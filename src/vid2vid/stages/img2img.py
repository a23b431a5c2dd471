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
"""
from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vid2vid import config, fdc, imageops
from vid2vid.errors import BadInput, Interrupted, render_settings, stage_ref
from vid2vid.fileid import file_id
from vid2vid.progress import Job
from vid2vid.stages import table
from vid2vid.stages.correct import key_params
from vid2vid.threads import SequentialWriter, hand_over_finished, prefetch, worker_pool
from vid2vid.workspace import Workspace, frame_name

STAGE = "img2img"
ROW = table.stage(STAGE)
OUTPUT = "img2img"
MASKS = "motionmask"
DEBUG = "img2img.debug"
DEPTH = "depthmask"
# Settings that change how fast, not what: left out of the stage key.
RUNTIME_ONLY = ("batch_size", "workers", "single")


@dataclass
class FrameJob:
    """Everything known about frame `index` before generation (canvas-sized arrays)."""

    index: int                      # 1-based
    canvas: np.ndarray              # float32 HxWx3 [0, 1]
    delta: np.ndarray | None        # float32 HxWx3 [-1, 1]; None for the first frame
    depth: np.ndarray | None        # float32 HxWx1 [0, 1]
    spatial: np.ndarray | None      # float32 HxWx1 [0, 1], 1 = may change


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
    gen["model"] = _path_identity(s.model)
    gen["loras"] = [_path_identity(x) for x in s.loras]
    gen["embeddings"] = [_path_identity(x) for x in s.embeddings]
    params: dict[str, Any] = {"img2img": gen, "correct": key_params(settings.correct)}
    if settings.propagate.on:             # (absent when off, so records made before key frames stay valid)
        from vid2vid.propagate import parse_keyframes

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
        yield FrameJob(i, canvas, delta, depth, spatial)
        prev_i, prev_canvas = i, canvas


def batches(jobs: Iterator[FrameJob], size: int) -> Iterator[list[FrameJob]]:
    batch: list[FrameJob] = []
    for j in jobs:
        batch.append(j)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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
    """The model the settings name exists and is complete, and takes the canvas (nothing is loaded)."""
    from vid2vid.diffusion.loading import check_model_spec
    from vid2vid.diffusion.sizes import canvas_rules, check_canvas

    check_model_spec(settings.img2img.model)
    check_canvas(settings.img2img.width, settings.img2img.height, canvas_rules(settings.img2img.model))


def check_space(ws: Workspace, settings: config.Settings, frames: list[Path], targets: list[Path], params: dict,
                inputs: tuple[str, ...], overwrite: bool) -> None:
    """Refuse before anything changes when the frames still to make (canvas-sized PNGs at the source
    frames' bytes per pixel, plus a grey motion mask each, about a third of that) will not fit."""
    from vid2vid import diskspace

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

    from vid2vid.diffusion.sizes import oriented_canvas

    s = settings.img2img
    info = (ws.stage_record("extract") or {}).get("info", {})
    w, h = oriented_canvas(s.width, s.height, int(info.get("width") or 0), int(info.get("height") or 0))
    if (w, h) == (s.width, s.height):
        return settings
    job.say(render_settings(f"img2img: portrait source {info['width']}x{info['height']}: canvas turned to {w}x{h} "
                            "(give {img2img.width} and {img2img.height} to choose another)"))
    return replace(settings, img2img=replace(s, width=w, height=h))


def _load(settings: config.Settings, job: Job, model=None):
    from vid2vid.devices import describe
    from vid2vid.diffusion.img2img import Img2ImgEngine
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.schedules import format_sigmas

    s = settings.img2img
    if model is None:
        check(settings)
        job.say(f"img2img: loading model {s.model}")
        model = load_model(s.model, device=s.device, dtype=s.dtype, loras=s.loras, embeddings=s.embeddings,
                           prediction_type=s.prediction_type())
    job.say(f"img2img: device {describe(model.device)}, {str(model.dtype).removeprefix('torch.')}")
    engine = Img2ImgEngine(model, s)
    job.say(f"img2img: real sigmas {format_sigmas(engine.real_sigmas)}, sampler {s.sampler}, seed {s.seed}")
    return engine


def batch_aligned(todo: list[int], n: int, batch_size: int) -> list[int]:
    """Frame numbers to generate so that every batch is a whole block [kB+1 .. (k+1)B] of the video.

    A frame's pixels may differ by float rounding with the batch it is computed in, so a resumed
    run regenerates the whole block that holds a missing frame (writing only the missing ones):
    it then computes every frame in the same batch as an uninterrupted run, bit for bit.
    """
    blocks = sorted({(i - 1) // batch_size for i in todo})
    return [i for b in blocks for i in range(b * batch_size + 1, min((b + 1) * batch_size, n) + 1)]


def _keys(ws: Workspace, settings: config.Settings, params: dict, rec: dict | None, job: Job) -> list[int]:
    """1-based frames this run paints: every frame, or with key frames on the keys (those recorded for
    the same parameters, else chosen from the source, see stages.propagate.workspace_keys)."""
    n = len(ws.frames())
    if not settings.propagate.on:
        return list(range(1, n + 1))
    if rec and rec.get("params") == params and rec.get("info", {}).get("keys"):
        return list(rec["info"]["keys"])
    from vid2vid.stages.propagate import workspace_keys

    keys = [k + 1 for k in workspace_keys(ws, settings, job)]
    job.say(f"img2img: {len(keys)} key frames of {n} ({settings.propagate.keyframes}, scene cuts included)")
    return keys


def _aligned(todo: list[int], order: list[int], batch_size: int) -> list[int]:
    """batch_aligned over the positions of the frames to paint (`order`: all frames, or the keys)."""
    pos = {i: k for k, i in enumerate(order, 1)}
    return [order[k - 1] for k in batch_aligned([pos[i] for i in todo], len(order), batch_size)]


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
    inputs = ("extract", "depth") if needs_depth(c) else ("extract",)
    for dep in inputs:
        if not ws.is_complete(dep):
            raise BadInput(f"stage 'img2img' needs the results of '{dep}', which are missing or out of date in "
                           f"{ws.root}; run {stage_ref(dep, ws.root)} first")

    # 2. the model first (unless everything is done), so that a missing model never removes finished frames
    params = stage_params(settings)
    out_dir, mask_dir = ws.path(OUTPUT), ws.path(MASKS)
    rec = ws.stage_record(STAGE)
    keys = _keys(ws, settings, params, rec, job)          # 1-based frames to paint: all, or the key frames
    targets = {i: out_dir / frame_name(i) for i in keys}
    maybe_done = bool(rec and rec.get("complete") and rec.get("params") == params and
                      all(p.exists() for p in targets.values()))
    check_space(ws, settings, frames, list(targets.values()), params, inputs, overwrite)
    engine = None if maybe_done else _load(settings, job, model)

    # 3. fresh / resume / done; the real sigmas are printed (by _load) and recorded
    status = ws.begin_stage(STAGE, params, inputs=inputs, overwrite=overwrite, outputs=ROW.outputs)
    keyed = settings.propagate.on
    if keyed:
        ws.update_stage_info(STAGE, keys=keys, keyframes=params["keyframes"])
    todo = [i for i, p in targets.items() if not p.exists()]
    if status.state == "done" and not todo:
        info = ws.stage_info(STAGE)
        job.say(f"img2img: already done ({info.get('frames')} frames)")
        return info
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or _load(settings, job, model)
    ws.update_stage_info(STAGE, **engine.describe())
    missing = set(todo)
    tracker = job.tracker(STAGE, len(targets), done=len(targets) - len(todo))
    times: dict[str, float] = defaultdict(float)
    prev_out: dict[int, np.ndarray] = {}

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

    def finish_batch(batch: list[FrameJob], generated: list[np.ndarray]) -> None:
        # 5. writer thread: correct and write frame by frame, in order
        for fj, g in zip(batch, generated):
            finish_frame(fj, g)

    def timed(jobs: Iterator[list[FrameJob]]):
        # reader thread: read, fit, deltas and masks of the next batch
        while True:
            t0 = time.perf_counter()
            batch = next(jobs, None)
            times["read"] += time.perf_counter() - t0
            if batch is None:
                return
            yield batch, engine.canvas_masks([fj.spatial for fj in batch])

    # 4. model work (encode, sample, decode) on the workers, while the reader prepares the next
    #    batch and the writer corrects and writes finished batches in frame order
    import torch

    threads_before = torch.get_num_threads()
    workers, threads = model_workers(s.workers, engine.device.type, math.ceil(len(targets) / s.batch_size),
                                     threads_before)
    if workers > 1:
        job.say(f"img2img: {workers} model workers, {threads} CPU thread(s) each")

    writer = SequentialWriter(finish_batch, depth=1, name="img2img-writer")
    pool = worker_pool(workers, threads, name="img2img-model")
    pending: deque = deque()              # (batch, future) in frame order

    def hand_over(keep: int) -> None:
        while len(pending) > keep:
            batch, fut = pending.popleft()
            writer.put(batch, fut.result())

    try:
        jobs = frame_jobs(ws, frames, _aligned(todo, keys, s.batch_size), settings)
        for batch, cmasks in prefetch(timed(batches(jobs, s.batch_size)), 1, name="img2img-reader"):
            writer.check()
            hand_over(workers - 1)        # wait for a free worker (the writer works meanwhile)
            job.check()                   # then, before committing to more work, honour an interrupt
            pending.append((batch, pool.submit(engine.repaint, [fj.canvas for fj in batch], cmasks)))
        hand_over(0)
    except Interrupted:
        pool.shutdown(wait=True, cancel_futures=True)
        hand_over_finished(pending, writer)   # batches the workers had finished are written, not lost
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        if workers > 1:
            torch.set_num_threads(threads_before)

    # 6. record
    seconds = {k: round(v, 3) for k, v in {**engine.timings.seconds, **times}.items()}
    ws.complete_stage(STAGE, frames=len(targets), width=s.width, height=s.height, time_breakdown=seconds,
                      model_workers=workers, threads_per_worker=threads, **engine.describe())
    return ws.stage_info(STAGE)


def run_single(ws: Workspace, settings: config.Settings, job: Job, frames: list[Path], model=None) -> dict:
    """Debug mode: generate frame `single` alone into img2img.debug/ (the real sigmas are said and returned)."""
    s = settings.img2img
    if s.single > len(frames):
        raise BadInput(f"{{img2img.single}} {s.single} is past the last frame; the workspace has {len(frames)} frames")
    engine = _load(settings, job, model)
    fj = next(frame_jobs(ws, frames, [s.single], settings))
    generated = engine.generate([fj.canvas], masks=None if fj.spatial is None else [fj.spatial])[0]
    path = ws.path(DEBUG, frame_name(s.single))
    imageops.write_image(path, generated)
    job.say(f"img2img: frame {s.single} written to {path}")
    ws.log("img2img-single", frame=s.single, path=str(path), real_sigmas=engine.describe()["real_sigmas"])
    return {"frame": s.single, "output": str(path), **engine.describe()}

