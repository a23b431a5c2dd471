"""Long work off the page's thread: one task at a time, progress polled, Interrupt sets job.cancel.

The page starts a library call with `Runner.start(fn)`; `fn(job)` runs in a worker thread with a
`progress.Job` whose callback keeps the latest event and messages. The page polls `Task.status()`
for its status line and progress bar, and `Runner.interrupt()` sets the job's cancel flag (the
stages stop after the current frame, keeping finished work). Errors become one readable line
(`error_message`); a traceback goes to the server log only.

The runner is the one place the server keeps the current task (its progress, status and
outcome), so a reloaded page finds the running task there and follows it (`Runner.current`),
and an Interrupt pressed on any page reaches it and can wait for it to stop.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vid2vid.core.errors import BadInput, Interrupted, Vid2VidError
from vid2vid.core.progress import Job, ProgressEvent, format_event

log = logging.getLogger("vid2vid.ui")


INTERRUPTED = "Interrupted: finished frames are kept; press the same button again to resume"


def error_message(exc: BaseException) -> str:
    """One line for the status line: what went wrong and (from the library's message) how to fix it."""
    from vid2vid.ui.form import error_text

    full = error_text(exc).strip()                 # settings named by the page's field labels
    text = full.splitlines()[0] if full else type(exc).__name__
    if isinstance(exc, Interrupted):      # the library's text speaks of running "the same command" again
        return INTERRUPTED
    if isinstance(exc, BadInput):
        return f"Error: {text}"
    if isinstance(exc, Vid2VidError):
        return f"Failed: {text}"
    return f"Failed: {type(exc).__name__}: {text} (details in the server log)"


@dataclass
class Task:
    """One library call running in a worker thread."""

    name: str
    job: Job
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    event: ProgressEvent | None = None
    messages: list[str] = field(default_factory=list)
    outcome: str | None = None          # the page's "Done: ..." line, set by the handler that started it
    interrupted_at: float | None = None  # when Interrupt was pressed (monotonic)
    ended: float | None = None           # when the call returned or raised (monotonic)

    @property
    def fraction(self) -> float | None:
        return self.event.fraction if self.event is not None else None

    def status(self) -> str:
        """The status line while running (latest progress, else latest message) or when finished."""
        if self.error is not None:
            return error_message(self.error)
        if self.event is not None and not self.done.is_set():
            return format_event(self.event)
        if self.messages:
            return self.messages[-1]
        return f"{self.name}: running ({time.monotonic() - self.started:.0f} s)"

    def final(self) -> str:
        """The line for a finished task: its error, else the outcome its page wrote, else a plain Done;
        after an Interrupt, how long after it the task stopped."""
        text = error_message(self.error) if self.error is not None else self.outcome or f"Done: {self.name}"
        if self.interrupted_at is None or self.ended is None:
            return text
        return f"{text} (stopped {max(0.0, self.ended - self.interrupted_at):.1f} s after Interrupt)"


class Runner:
    """Runs at most one task at a time (the machine has one model loaded and one workspace lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: Task | None = None

    def busy(self) -> bool:
        return self.current is not None and not self.current.done.is_set()

    def start(self, name: str, fn: Callable[[Job], Any]) -> Task:
        """Run `fn(job)` in a thread; `BadInput` when another task is still running."""
        with self._lock:
            if self.current is not None and self.busy():
                raise BadInput(f"'{self.current.name}' is still running; wait for it or press Interrupt")
            task = Task(name, Job())
            task.job.on_progress = lambda ev: setattr(task, "event", ev)
            task.job.log = task.messages.append
            self.current = task

        def work() -> None:
            try:
                task.result = fn(task.job)
            except Vid2VidError as exc:
                task.error = exc
            except Exception as exc:          # shown as one line on the page; full traceback in the log
                log.exception("%s failed", name)
                task.error = exc
            finally:
                task.ended = time.monotonic()
                task.done.set()

        threading.Thread(target=work, name=f"vid2vid-ui-{name}", daemon=True).start()
        return task

    def run(self, name: str, fn: Callable[[Job], Any], timeout: float | None = None) -> Task:
        """Start and wait (for callers that need no polling, e.g. tests)."""
        task = self.start(name, fn)
        task.done.wait(timeout)
        return task

    def interrupt(self) -> str:
        """Set the running task's cancel flag; returns the status line to show."""
        task = self.current
        if task is None or task.done.is_set():
            return "Nothing is running."
        if task.interrupted_at is None:
            task.interrupted_at = time.monotonic()
        task.job.cancel.set()
        return f"Interrupting {task.name}: it stops after the current frame (finished frames are kept)."
