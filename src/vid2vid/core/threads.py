"""Thread helpers for pipelined stages: a reader running ahead, an in-order writer, a pool of model workers.

`prefetch` runs an iterator on its own thread a few items ahead; `SequentialWriter` handles items on one
thread strictly in the order they are handed in; `worker_pool` runs model calls on several threads (each
with its own intra-op thread count) or inline on the caller's thread. Failures on a helper thread are
re-raised on the caller's thread; finished work is never dropped.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_END = object()


def prefetch(it: Iterator, depth: int, name: str = "prefetch") -> Iterator:
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

    th = threading.Thread(target=work, name=name, daemon=True)
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

    def __init__(self, handle: Callable[..., None], depth: int = 2, name: str = "writer"):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.handle = handle
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
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


def worker_pool(workers: int, threads: int, name: str = "model"):
    """An executor running model work on `workers` threads, each with `threads` intra-op threads."""
    if workers == 1:
        return InlineExecutor()
    import torch

    return ThreadPoolExecutor(workers, thread_name_prefix=name,
                              initializer=torch.set_num_threads, initargs=(threads,))


def hand_over_finished(pending: deque, writer: SequentialWriter | Any) -> None:
    """Hand the writer every leading batch whose generation finished (after an interruption)."""
    while pending:
        batch, fut = pending[0]
        if fut.cancelled() or fut.exception() is not None:
            return
        pending.popleft()
        writer.put(batch, fut.result())
