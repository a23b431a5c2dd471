"""Run the `vid2vid` command and SIGKILL it at one chosen moment (fault injection for tests).

    VID2VID_KILL=STAGE:EVENT:N[:TERM] python tests/fault_kill.py run VIDEO ...

EVENT is what is counted while STAGE is the stage reporting progress in this process:
  advance         the N-th `Tracker.advance` (a frame reported; extract's and export's writers
                  are still busy on other threads: a kill mid-write)
  before-replace  the N-th atomic rename, just before it (a complete temporary file is left)
  after-replace   the N-th atomic rename, just after it (the file is there, the manifest is not)
The process kills itself with SIGKILL: no handler, `finally` or atexit runs, as with a power cut
or the OOM killer. With `:TERM` it sends itself SIGTERM instead (what `kill PID` or a service
manager does), which the command answers by stopping after the current frame (exit 130).
Without VID2VID_KILL it is the plain command.
"""
from __future__ import annotations

import os
import signal
import sys


def install(spec: str) -> None:
    from vid2vid.core import progress

    stage, event, n, *how = spec.split(":")
    limit = int(n)
    sig = signal.SIGTERM if how == ["TERM"] else signal.SIGKILL
    state = {"stage": None, "count": 0}

    def hit(kind: str) -> bool:
        if state["stage"] != stage or kind != event:
            return False
        state["count"] += 1
        return state["count"] == limit

    def _die() -> None:
        os.kill(os.getpid(), sig)

    real_tracker = progress.Job.tracker

    def tracker(self, name, total, done=0):
        state["stage"] = name
        return real_tracker(self, name, total, done)

    real_advance = progress.Tracker.advance

    def advance(self, n=1, message=""):
        if hit("advance"):
            _die()
        return real_advance(self, n, message)

    real_replace = os.replace

    def replace(src, dst, *a, **kw):
        if hit("before-replace"):
            _die()
        real_replace(src, dst, *a, **kw)
        if hit("after-replace"):
            _die()

    progress.Job.tracker = tracker
    progress.Tracker.advance = advance
    os.replace = replace


if __name__ == "__main__":
    if os.environ.get("VID2VID_KILL"):
        install(os.environ["VID2VID_KILL"])
    from vid2vid.cli.main import main

    sys.exit(main(sys.argv[1:]))
