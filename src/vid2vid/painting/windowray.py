"""A step's windows on Ray actors: the `Spread` of `painting/windows.py` for a cluster (or this machine).

Each actor builds the painter's window model once, from a factory the painter gives (a picklable
callable, e.g. `functools.partial(load_window_model, settings)`), on the same number of intra-op
threads a local run uses, and answers `predict(x, sigma, frames, controls)` for one window at a
time. The driver keeps everything that is state (the clip's latents, the sampler's carry, the
step store, the blend): per step it hands each window's latents to its actor and blends the
answers in window order, so the result is the same bits as the local run. Window i always runs on
actor i modulo the actors' number, so a model that keeps a window's features from one evaluation to
the next (deep-feature caching) finds them where it left them. Control images, when
the painter has them, travel with the window (`controls(frames)`, a few small images).

A lost actor is restarted by Ray and its window sent again (`max_restarts`, `max_task_retries`).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from vid2vid.painting.rayactors import ActorSet


class WindowActor:
    """One actor: the painter's window model, built once."""

    def __init__(self, factory: Callable, threads: int):
        torch.set_num_threads(threads)
        self.model = factory()

    def pid(self) -> int:
        return os.getpid()

    def predict(self, x: torch.Tensor, sigma: torch.Tensor, frames: range, controls=None,
                evaluation: int = 0) -> torch.Tensor:
        if controls is not None:
            self.model.controls = lambda fr, c=controls: c
        return self.model.predict(x, sigma, frames, evaluation)


class RaySpread:
    """`Spread` over `actors` Ray actors of `threads` intra-op threads each."""

    def __init__(self, factory: Callable, actors: int, threads: int, controls: Callable | None = None,
                 gpus: int = 0):
        self.controls = controls
        self.set = ActorSet(WindowActor, (factory, threads), actors, threads, gpus, probe="pid")
        self.pids = self.set.infos
        self.pool = ThreadPoolExecutor(len(self.set.actors), thread_name_prefix="ray-window")

    def _one(self, index: int, frames: range, x: torch.Tensor, sigma: torch.Tensor, evaluation: int) -> torch.Tensor:
        controls = None if self.controls is None else self.controls(frames)
        return self.set.call_at(index, "a window", "predict", x, sigma, frames, controls, evaluation)

    def predict_all(self, jobs: list[tuple[range, torch.Tensor]], sigma: torch.Tensor,
                    evaluation: int = 0) -> list[torch.Tensor]:
        futures = [self.pool.submit(self._one, i, frames, xw.cpu(), sigma[:len(frames)].cpu(), evaluation)
                   for i, (frames, xw) in enumerate(jobs)]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.set.close()
        self.pool.shutdown()
