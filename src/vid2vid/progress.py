"""Progress reporting and cancellation shared by the CLI, the web UI and the library API.

A `Job` carries a progress callback and a cancel flag. Stages call `job.tracker(stage, total)`
and `tracker.advance()` once per frame; `advance` raises `Interrupted` as soon as the cancel
flag is set, so work stops after the current frame with everything finished kept.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from vid2vid.errors import Interrupted


def stop_signals() -> list[signal.Signals]:
    """The signals that ask a run to stop: SIGINT (Ctrl+C), SIGTERM and, on Windows, SIGBREAK (Ctrl+Break)."""
    return [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)]


@dataclass
class ProgressEvent:
    """One progress report: `done` of `total` units (frames) of `stage`."""

    stage: str
    done: int
    total: int
    elapsed: float
    message: str = ""
    resumed: int = 0   # units already done when this run started (not counted in the rate)

    @property
    def rate(self) -> float:
        """Units per second computed in this run."""
        n = self.done - self.resumed
        return n / self.elapsed if self.elapsed > 0 and n > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None until a rate is known)."""
        return max(0.0, (self.total - self.done) / self.rate) if self.rate > 0 else None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


ProgressCallback = Callable[[ProgressEvent], None]


def format_seconds(s: float | None) -> str:
    if s is None:
        return "--"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def format_event(ev: ProgressEvent) -> str:
    line = (f"[{ev.stage}] {ev.done}/{ev.total} frames  {ev.rate:.2f} fr/s  "
            f"elapsed {format_seconds(ev.elapsed)}  left {format_seconds(ev.eta)}")
    return f"{line}  {ev.message}" if ev.message else line


class ConsoleProgress:
    """Prints progress to a stream: one rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(self, stream: TextIO | None = None, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.every = every
        self._last = 0.0

    def __call__(self, ev: ProgressEvent) -> None:
        tty = getattr(self.stream, "isatty", lambda: False)()
        final = ev.done >= ev.total
        now = time.monotonic()
        if tty:
            self.stream.write("\r" + format_event(ev) + ("\n" if final else ""))
            self.stream.flush()
        elif final or now - self._last >= self.every or ev.done == 1:
            self.stream.write(format_event(ev) + "\n")
            self.stream.flush()
            self._last = now


@dataclass
class Job:
    """Progress sink and cancel flag for one piece of work."""

    on_progress: ProgressCallback | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    log: Callable[[str], None] | None = None

    def check(self) -> None:
        """Raise `Interrupted` if cancellation was asked for."""
        if self.cancel.is_set():
            raise Interrupted("interrupted; finished frames are kept - run the same command again to resume")

    def say(self, text: str) -> None:
        """A one-line message for the person watching (console or UI status line)."""
        if self.log is not None:
            self.log(text)

    def tracker(self, stage: str, total: int, done: int = 0) -> "Tracker":
        return Tracker(self, stage, total, done)


class Tracker:
    """Counts finished units of one stage and reports them; checks for cancellation."""

    def __init__(self, job: Job, stage: str, total: int, done: int = 0):
        self.job, self.stage, self.total, self.done = job, stage, total, done
        self._start = time.monotonic()
        self._resumed = done

    def advance(self, n: int = 1, message: str = "") -> None:
        self.done += n
        self.report(message)
        self.job.check()

    def report(self, message: str = "") -> None:
        if self.job.on_progress is not None:
            self.job.on_progress(ProgressEvent(self.stage, self.done, self.total,
                                               time.monotonic() - self._start, message, self._resumed))
