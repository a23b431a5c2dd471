"""Clips below the default 12 fps: every source frame is taken (said in one line) and the export
lasts as long as the source; only what is not a rate is refused."""
from __future__ import annotations

import av
import numpy as np
import pytest

from vid2vid.cli.main import main
from vid2vid.core.workspace import Workspace
from vid2vid.video.democlip import make_clip
from vid2vid.video.probe import probe


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("lowfps") / "five.mp4", width=64, height=48, fps=5, seconds=2.0,
                     audio=False)


def _decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_fps_above_the_source_takes_every_frame_and_exports_at_its_duration(tmp_path, slow_clip, capsys):
    ws = tmp_path / "ws"
    capsys.readouterr()
    assert main(["extract", str(slow_clip), "-w", str(ws)]) == 0            # the default --fps 12
    err = capsys.readouterr().err
    said = [ln for ln in err.splitlines() if "taking every frame" in ln]
    assert len(said) == 1 and "--fps 12 is above the video's own rate of 5 fps" in said[0]
    from vid2vid.core.imageops import read_image

    frames = Workspace(ws).frames()
    src = _decoded(slow_clip)
    assert len(frames) == len(src) == 10
    assert all(np.abs(read_image(p) * 255 - s).max() <= 1 for p, s in zip(frames, src))
    out = tmp_path / "out.mp4"
    assert main(["export", "-w", str(ws), "--from", "frames", "-o", str(out)]) == 0
    info = probe(out)
    assert info.frames == 10 and info.duration == pytest.approx(2.0, abs=0.05) and float(info.fps) == 5.0


@pytest.mark.parametrize("fps,words", [("0", "--fps 0 is not a positive number"),
                                       ("nan", "--fps nan is not a finite number")])
def test_only_what_is_not_a_rate_is_refused(tmp_path, slow_clip, capsys, fps, words):
    assert main(["extract", str(slow_clip), "-w", str(tmp_path / "ws"), "--fps", fps]) == 2
    assert words in capsys.readouterr().err
