"""Non-square pixels (a sample aspect ratio, as DVD and DV video have): probe shows the ratio, frames
are made square at the shape the video is shown at, and the export has that shape."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from vid2vid.cli.main import main
from vid2vid.core.imageops import read_image
from vid2vid.core.workspace import Workspace
from vid2vid.video.decode import plan_decoding
from vid2vid.video.probe import format_probe, probe

W, H, SAR = 72, 48, Fraction(32, 27)          # shown as 85x48 (72 * 32 / 27 = 85.3)


def _write(path, sar: Fraction | None, n: int = 6):
    """Left half dark, right half bright: the edge sits at half the width whatever the pixel shape."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "0"}
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar
        img = np.full((H, W, 3), 40, np.uint8)
        img[:, W // 2:] = 210
        for _ in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def dv(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("sar") / "dv.mp4", SAR)


def test_probe_shows_the_ratio_and_the_shown_size(dv):
    info = probe(dv)
    assert info.sar == "32:27" and (info.width, info.height) == (85, 48)
    assert (info.stored_width, info.stored_height) == (W, H)
    assert "sample aspect ratio 32:27" in format_probe(info) and "shown 85x48" in format_probe(info)


def test_square_pixels_leave_the_extract_key_as_it_was(tmp_path):
    info = probe(_write(tmp_path / "square.mp4", None))
    assert info.sar == "1:1" and info.width == W
    assert "square" not in plan_decoding(info).to_dict()


def test_frames_are_square_at_the_shown_shape_and_the_export_keeps_it(tmp_path, dv, capsys):
    ws = tmp_path / "ws"
    assert main(["extract", str(dv), "-w", str(ws), "--frames", "all"]) == 0
    assert "non-square pixels (sample aspect ratio 32:27)" in capsys.readouterr().err
    frame = read_image(Workspace(ws).frames()[0])
    assert frame.shape[:2] == (48, 85)
    row = frame[24, :, 0] * 255
    edge = int(np.argmax(row > 125))
    assert abs(edge - 85 / 2) <= 1.5                          # the edge at half the shown width, not at 36
    out = tmp_path / "out.mp4"
    assert main(["export", "-w", str(ws), "--from", "frames", "-o", str(out)]) == 0
    shown = probe(out)
    assert shown.sar == "1:1" and abs(shown.width - 85) <= 1 and shown.height == 48
