"""img2img on Ray actors: the same fixed blocks of frames as a local run, computed elsewhere.

The driver (the process running the stage) keeps everything that is state: the workspace, the
manifest, the lock, the reader and the in-order writer of `painting/loop.py`. Only the model
work moves: each actor loads the model once (through the stage's own loader, so whatever the
stage loads the actors load) and answers `repaint(canvases, masks)` for one block of frames at a
time; the canvases go to it and the generated frames come back through Ray's object store, so no
shared file system is needed for frames. The blocks are the stage's own (`batch_aligned`: whole
blocks [kB+1 .. (k+1)B]) and each actor runs its UNet calls on the same number of intra-op
threads a local run gives a model worker, so the frames are the same bits as a local run.

A lost actor (its process killed, its node gone) is restarted by Ray and the block it held is
sent again (`max_restarts`, `max_task_retries`); the other blocks are not touched. Cancelling
the job stops handing out blocks: the actors finish the block they hold and the writer keeps it.

Model files given as paths must be readable under the same path on every node (shared storage:
NFS, a synced folder); hub ids are loaded on each node from its own cache.

Cross-frame attention in anchor mode keeps frames independent, so it runs here too.
Each actor samples the anchors its blocks read itself, alone (a batch of one, the same threads as a
local model worker, so the same bits as the local run's anchor), records their K/V in its own UNet
and keeps them while its blocks read them (an actor's blocks come in frame order, so it samples
each anchor at most once). The driver sends an anchor's inputs (its canvas, mask and control
images: a few MB) with each block that reads it (`RayEngine.bind_unit`), and writes the anchor frame once, from the unit
that paints it. Shipping the recorded K/V instead would move the anchor's self-attention inputs
of every UNet call through the object store (about 0.8 GB a frame at 512x512 in float32) to every
actor; sampling it again costs one frame's sampling per actor and anchor. Modes that read the
previous frame (anchor-prev, bank) and flow init are sequential and refused.

The pool stays open for the life of the process (or until `close_pools()`, or until img2img runs
with other settings), so several videos in one command (`vid2vid.pipeline.multirun`) share one pool and
load the model once per actor.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from vid2vid import config
from vid2vid.core import devices
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.painting.rayactors import ActorSet, connect

# ---------------------------------------------------------------- the actor

class Painter:
    """One actor: the img2img engine of fixed settings, loaded once, repainting block after block."""

    def __init__(self, settings: config.Settings, threads: int):
        import torch

        torch.set_num_threads(threads)      # the same intra-op threads as a local model worker
        from vid2vid.painting.painters import image

        session = image.load(settings, Job())
        self.engine, self.xf = session.engine, session.xf               # xf: anchor mode, else None

    def info(self) -> dict:
        import torch

        return {"pid": os.getpid(), "device": str(self.engine.device), "threads": torch.get_num_threads(),
                "describe": self.engine.describe()}

    def repaint(self, canvases: list[np.ndarray], masks: list[np.ndarray] | None,
                controls: list[list[np.ndarray]] | None = None,
                refs: dict[int, tuple] | None = None) -> tuple[list[np.ndarray], float]:
        """One block; refs: {anchor frame: (canvas, mask or None, controls or None)} the block reads
        (anchor mode), each sampled here alone, once, and kept while blocks read it."""
        t0 = time.perf_counter()
        repaint = partial(self.engine.repaint, controls=controls) if controls else self.engine.repaint
        if not refs or self.xf is None:
            out = repaint(canvases, masks)
        else:
            for f, (canvas, mask, ref_controls) in sorted(refs.items()):
                if f not in self.xf.recorded:
                    self.xf.release([r for r in self.xf.recorded if r not in refs])   # earlier shots' anchors
                    self.xf.run(f, (), True, partial(self.engine.repaint, controls=None if ref_controls is None
                                                                    else [ref_controls]),
                                [canvas], None if mask is None else [mask])
            out = self.xf.run(None, tuple(sorted(refs)), False, repaint, canvases, masks)
        return out, time.perf_counter() - t0


# ---------------------------------------------------------------- the pool

@dataclass
class Layout:
    """How many actors, with what each reserves."""

    actors: int
    threads: int          # intra-op threads per actor (and CPUs it reserves)
    gpus: int             # GPUs per actor (0 or 1)


def plan(rs: config.RaySettings, s: config.Img2ImgSettings, batches: int, resources: dict,
         local_threads: int) -> Layout:
    """The actor layout: one per GPU when the model runs on CUDA and the cluster has GPUs, else one
    per `threads` CPU cores; never more actors than blocks of frames. `threads` 0 means what a local
    run on `local_threads` threads gives each of its model workers (so the frames are the same bits)."""
    from vid2vid.painting.loop import model_workers

    threads = rs.threads or model_workers(s.workers, "cpu", batches, local_threads)[1]
    gpu_total = int(resources.get("GPU", 0))
    gpus = 1 if gpu_total and devices.parse(s.device)[0] in ("auto", "cuda") else 0
    fit = max(1, gpu_total if gpus else int(resources.get("CPU", 1)) // threads)
    # never more actors than the cluster can hold at once: Ray would keep the others pending forever
    # (and the pool waits for every actor's model before it hands out a block)
    actors = min(rs.actors, fit) if rs.actors else fit
    return Layout(actors=max(1, min(actors, batches)), threads=threads, gpus=gpus)


@dataclass
class Timings:
    """Seconds the actors computed and what Ray added on top (transfer, scheduling), summed over blocks."""

    seconds: dict[str, float] = field(default_factory=lambda: {"ray_compute": 0.0, "ray_overhead": 0.0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, compute: float, total: float) -> None:
        with self.lock:
            self.seconds["ray_compute"] += compute
            self.seconds["ray_overhead"] += max(0.0, total - compute)


class RayPool:
    """Actors of one settings key; `repaint` runs a block on a free actor (blocking, thread-safe)."""

    def __init__(self, settings: config.Settings, layout: Layout):
        self.layout = layout
        self.set = ActorSet(Painter, (settings, layout.threads), layout.actors, layout.threads, layout.gpus,
                            probe="info")
        self.infos, self.actors = self.set.infos, self.set.actors

    def pids(self) -> list[int]:
        """The actors' process ids as they were when loaded (tests kill one)."""
        return [i["pid"] for i in self.infos]

    def repaint(self, canvases, masks, timings: Timings | None = None, controls=None, refs=None):
        t0 = time.perf_counter()
        out, compute = self.set.call("img2img", "repaint", canvases, masks, controls, refs)
        if timings is not None:
            timings.add(compute, time.perf_counter() - t0)
        return out

    def close(self) -> None:
        self.set.close()


_POOL: tuple[str, RayPool] | None = None        # (settings key, pool): one pool at a time
_POOL_LOCK = threading.Lock()


def _key(settings: config.Settings, layout: Layout) -> str:
    import json

    s = replace(settings.img2img, batch_size=1, workers=0, single=0)   # runtime-only fields
    return json.dumps([config.to_dict(s), settings.ray.actors, layout.threads, layout.gpus], sort_keys=True)


def pool_for(settings: config.Settings, layout: Layout, job: Job) -> RayPool:
    """The pool of these settings: the open one when it was made for the same settings (whatever
    its actor count when the count is automatic), else a new one; an open pool of other settings
    is stopped first, so that its actors give their CPUs and GPUs back."""
    global _POOL
    key = _key(settings, layout)
    with _POOL_LOCK:
        if _POOL is not None and _POOL[0] == key:
            return _POOL[1]
        if _POOL is not None:
            _POOL[1].close()
            _POOL = None
        job.say(f"img2img: starting {layout.actors} Ray actor(s), "
                + ("1 GPU each" if layout.gpus else f"{layout.threads} CPU thread(s) each")
                + f"; each loads {settings.img2img.model}")
        pool = RayPool(settings, layout)
        _POOL = (key, pool)
        return pool


def current_pool() -> RayPool | None:
    """The open pool, if any."""
    with _POOL_LOCK:
        return None if _POOL is None else _POOL[1]


def close_pools() -> None:
    """Stop the actors this process started (the Ray connection stays)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = (None if _POOL is None else _POOL[1]), None
    if pool is not None:
        pool.close()


# ---------------------------------------------------------------- the engine the stage sees

class RayEngine:
    """Stands in for the image painter's session in the unit loop (`painting/loop.py`): units run on
    actors, and `worker_layout` gives the loop one driver thread per actor instead of its own model workers."""

    def __init__(self, settings: config.Settings, pool: RayPool):
        import torch

        self.settings = settings.img2img
        self.pool = pool
        self.device = torch.device("cpu")          # the driver's side: arrays only
        self.timings = Timings()
        self._anchors: dict[int, tuple] = {}        # anchor mode: anchor frame -> its inputs
        self.remote_devices = sorted({i["device"] for i in pool.infos})

    sequential = False                              # sequential settings are refused (ray_engine)

    def close(self) -> None:
        """Nothing to undo here: the pool stays open for the process (`close_pools`)."""

    def canvas_masks(self, masks):
        from vid2vid.diffusion.engine import fit_canvas_masks

        return fit_canvas_masks(self.settings, masks)

    def repaint(self, canvases, masks=None, controls=None):
        return self.pool.repaint(canvases, masks, self.timings, controls)

    def bind_unit(self, unit, canvases, masks, controls=None) -> Callable[[], list[np.ndarray]]:
        """One unit of the stage's plan (stages/frameplan.py), bound in plan order on the stage's
        thread, to run on an actor: an anchor unit's inputs (canvas, mask, controls) are kept here
        and bound to every later unit that reads it, and dropped after its last reader is bound."""
        if unit.keep:
            self._anchors[unit.frames[0]] = (canvases[0], None if masks is None else masks[0],
                                             None if controls is None else controls[0])
        refs = {r: self._anchors[r] for r in unit.refs}
        for r in unit.release:
            self._anchors.pop(r, None)
        return partial(self.pool.repaint, canvases, masks, self.timings, controls, refs or None)

    def describe(self) -> dict:
        return dict(self.pool.infos[0]["describe"])

    def worker_layout(self) -> tuple[int, int, ThreadPoolExecutor]:
        n = len(self.pool.actors)
        return n, self.pool.layout.threads, ThreadPoolExecutor(n, thread_name_prefix="img2img-ray")

    def record(self) -> dict:
        """What the manifest says about the distribution (not part of the stage key)."""
        return {"ray_actors": len(self.pool.actors), "ray_devices": self.remote_devices}


def ray_engine(settings: config.Settings, job: Job, batches: int) -> RayEngine:
    """The Ray stand-in for the stage's engine: connects, plans the actors, reuses or starts a pool."""
    from vid2vid.painting import frameplan

    if frameplan.sequential(settings.img2img):
        why = frameplan.why_sequential(settings.img2img)
        raise BadInput(f"{{ray.enabled}} cannot run these img2img settings: {why}, "
                       "so the frames run one at a time in order and cannot be spread over actors; use "
                       "{img2img.cross_frame} anchor or none and {img2img.flow_init} 0, or run without {ray.enabled}")
    rs = settings.ray
    ray = connect(rs)
    import torch

    layout = plan(rs, settings.img2img, batches, ray.cluster_resources(), torch.get_num_threads())
    if rs.actors > layout.actors and layout.actors < batches:
        job.say(f"img2img: {rs.actors} Ray actors asked, the cluster holds {layout.actors} now "
                + ("(one GPU each)" if layout.gpus else f"({layout.threads} CPU(s) each)"))
    pool = pool_for(settings, layout, job)
    engine = RayEngine(settings, pool)
    job.say(f"img2img: {len(pool.actors)} Ray actor(s) on {', '.join(engine.remote_devices)}")
    return engine
