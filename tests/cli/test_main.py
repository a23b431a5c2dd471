"""The entry point: messages after a live progress bar start on their own line."""
from __future__ import annotations

import io

from vid2vid.cli import commands
from vid2vid.cli import main as main_mod
from vid2vid.core.progress import ConsoleProgress, ProgressEvent


def test_interrupted_message_is_on_its_own_line_after_a_live_bar(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(main_mod, "ConsoleProgress", lambda: ConsoleProgress(stream, live=True))

    def handler(args, parser, job):
        job.on_progress(ProgressEvent("img2img", 3, 10, 1.5))
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_probe", handler)
    monkeypatch.setattr(main_mod.sys, "stderr", stream)
    assert main_mod.main(["probe", "x.mp4"]) == 130
    text = stream.getvalue()
    assert "\ninterrupted: finished work is kept" in text
    assert text.splitlines()[-1].startswith("interrupted:")
