"""The unit loop of frame painters: read -> paint -> write in order, resumable and interruptible.

    reader thread   FrameJobs of the next unit (canvas, delta, masks, control images)
    model workers   session.paint(unit, ...) on `workers` threads (or Ray actors), in plan order
    writer thread   correction and atomic writes, strictly in frame order (painting/writer.py)

Units come from `painting/frameplan.py`: whole blocks of frames for independent frames (so a frame is
always painted in the same batch, whatever is left to do), one frame at a time in order when the
painter reads earlier frames. On a CPU, `workers` model threads may run whole units side by side,
each with its share of the intra-op threads (`model_workers`); on CUDA one thread drives the GPU.
The layout depends only on the settings, the frame count and the machine, never on which frames
are left, so a resumed run paints the same bits. An interrupt stops before the next unit; units the
workers had finished are written, not lost.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from vid2vid import config
from vid2vid.core.errors import Interrupted
from vid2vid.core.progress import Job
from vid2vid.core.threads import SequentialWriter, hand_over_finished, prefetch, worker_pool
from vid2vid.core.workspace import Workspace
from vid2vid.painting import frameplan
from vid2vid.painting.inputs import FrameJob, frame_jobs, init_canvas, unit_batches
from vid2vid.painting.writer import FrameWriter, InlineWriter


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


def worker_layout(s: config.Img2ImgSettings, device_type: str, n: int, threads: int) -> tuple[int, int]:
    """(workers, threads per worker) of a run over n frames; sequential runs have one worker."""
    if frameplan.sequential(s):
        return model_workers(1, device_type, n, threads)
    return model_workers(s.workers, device_type, math.ceil(n / s.batch_size), threads)


@dataclass
class FrameRun:
    """One run of a frame painter over a workspace: what to paint and where it goes."""

    ws: Workspace
    settings: config.Settings
    frames: list[Path]                # the source frames
    painted: list[int]                # 1-based frames this run paints (every frame, or the keys), not still ones
    units: list[frameplan.Unit]       # the plan for the frames left to do
    writer: FrameWriter


def say_order(job: Job, s: config.Img2ImgSettings, units: list[frameplan.Unit], missing: set[int]) -> None:
    """The progress lines about the order: sequential runs, and finished frames sampled again."""
    if frameplan.sequential(s):
        job.say(f"img2img: {frameplan.why_sequential(s)}: frames run one at a time in order "
                "(batch 1, one model worker)")
    again = [u.frames[0] for u in units if u.keep and u.frames[0] not in missing]
    if again:
        job.say(f"img2img: sampling {len(again)} finished frame(s) again for the cross-frame references "
                "of the frames left (nothing is rewritten)")


def _layout(session, run: FrameRun, job: Job, threads_before: int):
    """(workers, threads per worker, executor): Ray actors (one driver thread each) or local model threads."""
    remote_layout = getattr(session, "worker_layout", None)
    if remote_layout is not None:
        return remote_layout()
    s = run.settings.img2img
    workers, threads = worker_layout(s, session.device.type, len(run.painted), threads_before)
    if workers > 1:
        job.say(f"img2img: {workers} model workers, {threads} CPU thread(s) each")
    return workers, threads, worker_pool(workers, threads, name="img2img-model")


def _bind(session, unit: frameplan.Unit, batch: list[FrameJob], cmasks, s: config.Img2ImgSettings,
          previous: Callable[[int], object]) -> Callable[[], list]:
    """The unit's painting as a call for a worker, bound on the loop's thread in plan order."""
    canvases = [init_canvas(fj, s, previous) for fj in batch]   # type: ignore[arg-type]
    controls = [fj.control for fj in batch] if s.controlnet else None
    bind = getattr(session, "bind_unit", None)        # Ray: anchors' inputs travel with their readers
    if bind is not None:
        return bind(unit, canvases, cmasks, controls)
    return partial(session.paint, unit, canvases, cmasks, controls)


def _timed(jobs: Iterator[tuple[frameplan.Unit, list[FrameJob]]], session, times: dict):
    """The reader thread's work: the next unit's FrameJobs and their canvas-sized masks, timed."""
    while True:
        t0 = time.perf_counter()
        item = next(jobs, None)
        times["read"] += time.perf_counter() - t0
        if item is None:
            return
        unit, batch = item
        yield unit, batch, session.canvas_masks([fj.spatial for fj in batch])


def paint_frames(run: FrameRun, session, job: Job) -> tuple[int, int]:
    """Paint the run's units with the session and write them in frame order; (workers, threads) used."""
    import torch

    s, writer = run.settings.img2img, run.writer
    threads_before = torch.get_num_threads()
    workers, threads, pool = _layout(session, run, job, threads_before)
    out = InlineWriter(writer.batch) if s.flow_init > 0 else \
        SequentialWriter(writer.batch, depth=1, name="img2img-writer")
    pending: deque = deque()              # (batch, future) in frame order

    def hand_over(keep: int) -> None:
        while len(pending) > keep:
            batch, fut = pending.popleft()
            out.put(batch, fut.result())

    try:
        jobs = frame_jobs(run.ws, run.frames, frameplan.frames_of(run.units), run.settings)
        for unit, batch, cmasks in prefetch(_timed(unit_batches(jobs, run.units), session, writer.times), 1,
                                            name="img2img-reader"):
            out.check()
            hand_over(workers - 1)        # wait for a free worker (the writer works meanwhile)
            job.check()                   # then, before committing to more work, honour an interrupt
            pending.append((batch, pool.submit(_bind(session, unit, batch, cmasks, s, writer.previous_output))))
            if unit.keep:
                hand_over(0)              # later units read its K/V
        hand_over(0)
    except Interrupted:
        pool.shutdown(wait=True, cancel_futures=True)
        hand_over_finished(pending, out)  # units the workers had finished are written, not lost
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        out.close()
        if workers > 1:
            torch.set_num_threads(threads_before)
    return workers, threads
