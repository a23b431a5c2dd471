"""A step's windows on Ray actors: the `Spread` of `painting/windows.py` for a cluster (or this machine).

Each actor builds the painter's window model once, from a factory the painter gives (a picklable
callable, e.g. `functools.partial(load_window_model, settings)`), on the same number of intra-op
threads a local run uses, and answers `predict(x, sigma, frames, controls)` for one window at a
time. The driver keeps everything that is state (the clip's latents, the sampler's carry, the
step store, the blend): per step it hands each window's latents to a free actor and blends the
answers in window order, so the result is the same bits as the local run. Control images, when
the painter has them, travel with the window (`controls(frames)`, a few small images).

A lost actor is restarted by Ray and its window sent again (`max_restarts`, `max_task_retries`).
"""
from __future__ import annotations

import os
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from vid2vid.core.errors import Vid2VidError
from vid2vid.painting.raypool import RESTARTS, require_ray


class WindowActor:
    """One actor: the painter's window model, built once."""

    def __init__(self, factory: Callable, threads: int):
        torch.set_num_threads(threads)
        self.model = factory()

    def pid(self) -> int:
        return os.getpid()

    def predict(self, x: torch.Tensor, sigma: torch.Tensor, frames: range, controls=None) -> torch.Tensor:
        if controls is not None:
            self.model.controls = lambda fr, c=controls: c
        return self.model.predict(x, sigma, frames)


class RaySpread:
    """`Spread` over `actors` Ray actors of `threads` intra-op threads each."""

    def __init__(self, factory: Callable, actors: int, threads: int, controls: Callable | None = None,
                 gpus: int = 0):
        ray = require_ray()
        self.ray, self.controls = ray, controls
        remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=RESTARTS,
                            max_task_retries=RESTARTS)(WindowActor)
        self.actors = [remote.remote(factory, threads) for _ in range(max(1, actors))]
        try:
            self.pids = ray.get([a.pid.remote() for a in self.actors])
        except ray.exceptions.RayError as exc:
            self.close()
            raise Vid2VidError(f"the Ray actors could not load the model: {exc}") from exc
        self.free: queue.Queue = queue.Queue()
        for a in self.actors:
            self.free.put(a)
        self.pool = ThreadPoolExecutor(len(self.actors), thread_name_prefix="ray-window")

    def _one(self, frames: range, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        actor = self.free.get()
        try:
            controls = None if self.controls is None else self.controls(frames)
            return self.ray.get(actor.predict.remote(x, sigma, frames, controls))
        except self.ray.exceptions.RayError as exc:
            raise Vid2VidError(f"a window on Ray failed: {exc}") from exc
        finally:
            self.free.put(actor)

    def predict_all(self, jobs: list[tuple[range, torch.Tensor]], sigma: torch.Tensor) -> list[torch.Tensor]:
        futures = [self.pool.submit(self._one, frames, xw.cpu(), sigma[:len(frames)].cpu()) for frames, xw in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if hasattr(self, "pool"):
            self.pool.shutdown()
