"""Stage `img2img`: every extracted frame repainted, then frame delta correction, into `img2img/`.

Work per frame t (1-based), DESIGN §4:
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
import queue
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from vid2vid import config, fdc, imageops
from vid2vid.errors import BadInput, Interrupted
from vid2vid.progress import Job
from vid2vid.stages import still, table
from vid2vid.workspace import Workspace, frame_name

STAGE = "img2img"
ROW = table.stage(STAGE)
OUTPUT = "img2img"
MASKS = "motionmask"
DEBUG = "img2img.debug"
DEPTH = "depthmask"
# Settings that change how fast, not what: left out of the stage key.
RUNTIME_ONLY = ("batch_size", "workers", "single", "compile")
# issue 17: settings that enter the stage key only when used, so older workspaces keep their keys
KEYED_WHEN_SET = {"vae": "", "tcd_gamma": 0.3, "skip_still": 0.0}


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
        st = p.stat()
        return {"path": str(p.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
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
    return {"img2img": gen, "correct": config.to_dict(settings.correct)}


def needs_depth(c: config.CorrectSettings) -> bool:
    return c.delta_mask == "depth" or c.spatial_mask == "depth"


# ---------------------------------------------------------------- reading (pure given the files)

def read_depth(ws: Workspace, frame: Path, width: int, height: int, resize: str) -> np.ndarray:
    """depthmask/<stem>.png as float32 HxWx1 in [0, 1] at the canvas size."""
    p = ws.path(DEPTH, frame.stem + ".png")
    if not p.is_file():
        raise BadInput(f"depth mask {p} is missing; run `vid2vid depth -w {ws.root}` first")
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
            if prev_i != i - 1:
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


# ---------------------------------------------------------------- threads

_END = object()


def prefetch(it: Iterator, depth: int) -> Iterator:
    """Run iterator `it` in a thread, `depth` items ahead; exceptions surface in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            while not stop.is_set():
                try:
                    item = next(it)
                except StopIteration:
                    break
                q.put(item)
        except BaseException as exc:          # handed to the consumer, which re-raises it
            q.put(exc)
            return
        q.put(_END)

    th = threading.Thread(target=work, name="img2img-reader", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while th.is_alive():                  # unblock a reader waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(0.05)


class SequentialWriter:
    """One thread that handles items (decode, correct, write) strictly in the order they are handed in."""

    def __init__(self, handle: Callable[..., None], depth: int = 2):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.handle = handle
        self.thread = threading.Thread(target=self._work, name="img2img-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            item = self.q.get()
            if item is _END:
                return
            if self.error is not None:
                continue                      # drain after a failure; nothing more is written
            try:
                self.handle(*item)
            except BaseException as exc:      # handed to the main thread by check()/close()
                self.error = exc

    def put(self, *item) -> None:
        self.check()
        self.q.put(item)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Finish every item handed in (finished work is never dropped), then re-raise a failure."""
        self.q.put(_END)
        self.thread.join()
        self.check()


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


class InlineExecutor:
    """The executor for one worker: runs each job at once on the calling thread (a GPU's only driver)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:          # handed to whoever reads the result
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def worker_pool(workers: int, threads: int):
    """An executor running model work on `workers` threads, each with `threads` intra-op threads."""
    if workers == 1:
        return InlineExecutor()
    import torch

    return ThreadPoolExecutor(workers, thread_name_prefix="img2img-model",
                              initializer=torch.set_num_threads, initargs=(threads,))


# ---------------------------------------------------------------- stage

def check(settings: config.Settings) -> None:
    """The model the settings name exists and is complete (nothing is loaded)."""
    from vid2vid.diffusion.loading import check_model_spec

    check_model_spec(settings.img2img.model)
    s = settings.img2img
    if s.vae:                                       # issue 17: a missing VAE, a grid too short for the steps
        from vid2vid.diffusion.vae import check_vae_spec

        check_vae_spec(s.vae)
    from vid2vid.diffusion import fewstep

    if fewstep.is_fewstep(s.sampler):
        fewstep.timesteps(s.steps, s.denoise)


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
                           prediction_type=s.prediction_type(), vae=s.vae)
    job.say(f"img2img: device {describe(model.device)}, {str(model.dtype).removeprefix('torch.')}")
    engine = Img2ImgEngine(model, s)
    from vid2vid.diffusion import fewstep          # issue 17: allowed, but said

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
    blocks = sorted({(i - 1) // batch_size for i in todo})
    return [i for b in blocks for i in range(b * batch_size + 1, min((b + 1) * batch_size, n) + 1)]


def batch_aligned_among(todo: list[int], painted: list[int], batch_size: int) -> list[int]:
    """`batch_aligned` over the painted frames only (issue 17: still frames are not painted), so a
    batch is always the same block of painted frames, on a fresh run and on a resumed one."""
    pos = {i: k for k, i in enumerate(painted, 1)}
    return [painted[k - 1] for k in batch_aligned([pos[i] for i in todo], len(painted), batch_size)]


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
    s, c = settings.img2img, settings.correct
    s.validate()
    c.validate()
    frames = ws.frames()
    if not frames:
        raise BadInput(f"{ws.path('frames')} has no frames; run `vid2vid extract VIDEO -w {ws.root}` first")
    if s.single:
        return run_single(ws, settings, job, frames, model)
    overwrite = settings.run.overwrite if overwrite is None else overwrite
    inputs = ("extract", "depth") if needs_depth(c) else ("extract",)
    for dep in inputs:
        if not ws.is_complete(dep):
            raise BadInput(f"stage 'img2img' needs the results of '{dep}', which are missing or out of date in "
                           f"{ws.root}; run `vid2vid {dep} -w {ws.root}` first")

    # 2. the model first (unless everything is done), so that a missing model never removes finished frames
    params = stage_params(settings)
    out_dir, mask_dir = ws.path(OUTPUT), ws.path(MASKS)
    targets = [out_dir / frame_name(i) for i in range(1, len(frames) + 1)]
    rec = ws.stage_record(STAGE)
    maybe_done = bool(rec and rec.get("complete") and rec.get("params") == params and all(p.exists() for p in targets))
    engine = None if maybe_done else _load(settings, job, model)

    # 3. fresh / resume / done; the real sigmas are printed (by _load) and recorded
    status = ws.begin_stage(STAGE, params, inputs=inputs, overwrite=overwrite, outputs=ROW.outputs)
    todo = [i for i, p in enumerate(targets, 1) if not p.exists()]
    if status.state == "done" and not todo:
        info = dict(ws.stage_record(STAGE).get("info", {}))
        job.say(f"img2img: already done ({info.get('frames')} frames)")
        return info
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or _load(settings, job, model)
    ws.update_stage_info(STAGE, **engine.describe())
    missing = set(todo)
    # issue 17: still frames (stages/still.py) are decided on the source frames and copied, not painted
    still_plan = still.plan(_canvases(frames, s), s.skip_still) if s.skip_still > 0 else {}
    painted = [i for i in range(1, len(frames) + 1) if i not in still_plan]
    follow = still.painted_before(still_plan, len(frames))
    tracker = job.tracker(STAGE, len(targets), done=len(targets) - len(todo))
    times: dict[str, float] = defaultdict(float)
    prev_out: dict[int, np.ndarray] = {}

    def copy_still(t: int) -> None:
        # issue 17: a still frame's output is a byte copy of the output before it
        if t not in missing:
            return
        still.copy_output(targets[t - 2], targets[t - 1])
        still.record(out_dir, t, *still_plan[t])
        missing.discard(t)
        if t - 1 in prev_out:
            prev_out[t] = prev_out.pop(t - 1)
        try:
            tracker.advance()
        except Interrupted:
            pass

    for t in sorted(still_plan):          # still frames whose previous output a former run wrote
        if t in missing and targets[t - 2].exists():
            copy_still(t)

    def previous(i: int) -> np.ndarray | None:
        """o_(i-1) as written: from this run's memory, or read back from disk after a resume."""
        if i == 1:
            return None
        if i - 1 in prev_out:
            return prev_out.pop(i - 1)
        return imageops.read_image(targets[i - 2])

    def finish_frame(fj: FrameJob, generated: np.ndarray) -> None:
        # correction in frame order, then atomic writes; the 8-bit result is the next prev_out
        if fj.index not in missing:
            return        # regenerated only to keep its batch whole (see batch_aligned); already written
        t0 = time.perf_counter()
        if c.method == "seed":
            out, mask = fdc.correct_frame(generated, previous(fj.index), fj.delta, c, depth=fj.depth)
        else:             # a sequence-level method (flow) corrects later, in its own stage
            out, mask = generated, None
        if mask is None and c.spatial_mask == "motion":
            mask = fj.spatial
        out8 = imageops.to_uint8(out)
        t1 = time.perf_counter()
        if mask is not None and (c.delta_mask == "motion" or c.spatial_mask == "motion"):
            imageops.write_mask(mask_dir / frame_name(fj.index), mask)
        imageops.write_image(targets[fj.index - 1], out8)
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
    workers, threads = model_workers(s.workers, engine.device.type, math.ceil(len(painted) / s.batch_size),
                                     threads_before)
    if workers > 1:
        job.say(f"img2img: {workers} model workers, {threads} CPU thread(s) each")

    writer = SequentialWriter(finish_batch, depth=1)
    pool = worker_pool(workers, threads)
    pending: deque = deque()              # (batch, future) in frame order

    def hand_over(keep: int) -> None:
        while len(pending) > keep:
            batch, fut = pending.popleft()
            writer.put(batch, fut.result())

    try:
        to_paint = batch_aligned_among([i for i in todo if i not in still_plan], painted, s.batch_size)
        jobs = frame_jobs(ws, frames, to_paint, settings)
        for batch, cmasks in prefetch(timed(batches(jobs, s.batch_size)), 1):
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
    fast = {"still_frames": sorted(still_plan)} if s.skip_still > 0 else {}     # issue 17
    ws.complete_stage(STAGE, frames=len(targets), width=s.width, height=s.height, time_breakdown=seconds,
                      model_workers=workers, threads_per_worker=threads, **fast, **engine.describe())
    return dict(ws.stage_record(STAGE)["info"])


def hand_over_finished(pending: deque, writer: SequentialWriter) -> None:
    """Hand the writer every leading batch whose generation finished (after an interruption)."""
    while pending:
        batch, fut = pending[0]
        if fut.cancelled() or fut.exception() is not None:
            return
        pending.popleft()
        writer.put(batch, fut.result())


def run_single(ws: Workspace, settings: config.Settings, job: Job, frames: list[Path], model=None) -> dict:
    """Debug mode: generate frame `single` alone into img2img.debug/ (the real sigmas are said and returned)."""
    s = settings.img2img
    if s.single > len(frames):
        raise BadInput(f"--single {s.single} is past the last frame; the workspace has {len(frames)} frames")
    engine = _load(settings, job, model)
    fj = next(frame_jobs(ws, frames, [s.single], settings))
    generated = engine.generate([fj.canvas], masks=None if fj.spatial is None else [fj.spatial])[0]
    path = ws.path(DEBUG, frame_name(s.single))
    imageops.write_image(path, generated)
    job.say(f"img2img: frame {s.single} written to {path}")
    ws.log("img2img-single", frame=s.single, path=str(path), real_sigmas=engine.describe()["real_sigmas"])
    return {"frame": s.single, "output": str(path), **engine.describe()}

