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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from vid2vid.core.errors import Interrupted


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
    unit: str = "frames"   # or "bytes" (downloads)

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


def human_bytes(n: float) -> str:
    from vid2vid.core.diskspace import human_bytes as hb

    return hb(n)


def format_event(ev: ProgressEvent) -> str:
    if ev.unit == "bytes":
        total = human_bytes(ev.total) if ev.total else "?"
        line = (f"[{ev.stage}] {human_bytes(ev.done)} of {total}  {human_bytes(ev.rate)}/s  "
                f"elapsed {format_seconds(ev.elapsed)}  left {format_seconds(ev.eta)}")
    else:
        line = (f"[{ev.stage}] {ev.done}/{ev.total} {ev.unit}  {ev.rate:.2f} fr/s  "
                f"elapsed {format_seconds(ev.elapsed)}  left {format_seconds(ev.eta)}")
    return f"{line}  {ev.message}" if ev.message else line


def format_bar(ev: ProgressEvent, columns: int = 100) -> str:
    """One terminal line: stage, a bar, the count, rate and time left, cut to `columns`."""
    text = format_event(ev)
    stage, _, rest = text.partition("] ")
    width = max(10, min(40, columns - len(text) - 4))
    filled = ev.fraction * width
    full = int(filled)
    bar = "\u2588" * full + (BAR_PARTS[int((filled - full) * 8)] if full < width else "")
    bar = bar.ljust(width, " ")
    line = f"{stage}] |{bar}| {rest}"
    return line[:max(20, columns - 1)]


BAR_PARTS = " \u258f\u258e\u258d\u258c\u258b\u258a\u2589"   # eighths of a block


class ConsoleProgress:
    """Prints progress to a stream: a live bar on a terminal (stage, bar, count, rate, time left,
    redrawn in place at most 10 times a second), a plain line every few seconds otherwise (logs,
    pipes, the page's server), as before."""

    def __init__(self, stream: TextIO | None = None, every: float = 5.0, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.every = every
        self.live = getattr(self.stream, "isatty", lambda: False)() if live is None else live
        self._last = 0.0
        self._shown = ""          # the stage whose bar is on the current line
        self._finished: tuple[str, int] | None = None

    def __call__(self, ev: ProgressEvent) -> None:
        final = ev.done >= ev.total > 0
        if final and self._finished == (ev.stage, ev.done):
            return                                  # a stage's closing report repeats its last line
        self._finished = (ev.stage, ev.done) if final else None
        now = time.monotonic()
        if self.live:
            if final or ev.stage != self._shown or now - self._last >= 0.1:
                if self._shown and ev.stage != self._shown:
                    self.stream.write("\n")            # the previous stage's bar stays above
                line = format_bar(ev, _columns(self.stream) or 100)
                self.stream.write("\r" + line + "\x1b[K" + ("\n" if final else ""))
                self.stream.flush()
                self._shown = "" if final else ev.stage
                self._last = now
            return
        if final or now - self._last >= self.every or ev.done == 1:
            self.stream.write(format_event(ev) + "\n")
            self.stream.flush()
            self._last = now


    def end_line(self) -> None:
        """End a live bar's line, so that a message written next (interrupted, an error) starts on its own."""
        if self.live and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = ""


def _columns(stream: TextIO) -> int:
    """The terminal's width, 0 when it tells none."""
    import os

    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


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

    def progress(self, ev: ProgressEvent) -> None:
        """Pass `ev` on, then stop (`Interrupted`) if cancellation was asked for: what a download's
        progress callback is given, so that stopping a job stops its download at the next chunk."""
        if self.on_progress is not None:
            self.on_progress(ev)
        self.check()

    def tracker(self, stage: str, total: int, done: int = 0) -> Tracker:
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
