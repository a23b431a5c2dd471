"""The page's Live tab without a browser: which sources it accepts, and what its timer shows."""
from __future__ import annotations

import numpy as np
import pytest

from vid2vid.core.errors import BadInput
from vid2vid.live.sinks import LiveView
from vid2vid.live.sources import Captured
from vid2vid.ui.tab_live import Poll, source_spec


def test_cameras_urls_and_videos_of_the_cache_are_accepted_and_nothing_else(tmp_path):
    root = tmp_path / "cache"
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "clip.mp4").write_bytes(b"x")
    (tmp_path / "outside.mp4").write_bytes(b"x")
    assert source_spec(root, "/dev/video0") == "/dev/video0"
    assert source_spec(root, " rtsp://cam.local/stream ") == "rtsp://cam.local/stream"
    assert source_spec(root, "uploads/clip.mp4") == str((root / "uploads" / "clip.mp4").resolve())
    for bad in ("", "../outside.mp4", str(tmp_path / "outside.mp4"), "uploads/none.mp4", "ftp://x/y"):
        with pytest.raises(BadInput) as exc:
            source_spec(root, bad)
        assert str(exc.value).startswith("Live source") and "--" not in str(exc.value)


def test_the_timer_shows_the_newest_pair_once():
    view, skip = LiveView(), object()
    poll = Poll(view, skip)
    assert poll()[2] == "0 frames shown" and poll() == [skip] * 3
    a, b = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    view.show(Captured(0, 0.0, a), b)
    source, painted, text = poll()
    assert source is a and painted is b and text.startswith("1 frames shown")
    assert poll() == [skip] * 3
