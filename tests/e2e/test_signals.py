"""Ctrl+C, SIGTERM and (on Windows) Ctrl+Break all ask a CLI run to stop after the current frame."""
from __future__ import annotations

import signal

import pytest

from vid2vid.cli import main as cli
from vid2vid.core.progress import Job, stop_signals


@pytest.fixture
def keep_handlers():
    sigs = stop_signals() + [signal.SIGUSR1] * hasattr(signal, "SIGUSR1")
    saved = {s: signal.getsignal(s) for s in sigs}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_stop_signals_here():
    expected = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])
    assert stop_signals() == expected


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGBREAK"])
def test_first_signal_stops_after_the_frame_second_stops_now(monkeypatch, keep_handlers, capsys, name):
    if name == "SIGBREAK" and not hasattr(signal, "SIGBREAK"):
        # Windows' Ctrl+Break, played by SIGUSR1 here: the handler must be installed for it too
        monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    sig = getattr(signal, name)
    job = Job()
    cli._install_signal_handlers(job)
    signal.raise_signal(sig)
    assert job.cancel.is_set()
    assert "stopping after the current frame" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(sig)
