"""Frame sequences for measuring (video/read.py): the same frames as the whole-list reader that
came before, read one at a time."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

import metrics_reference as reference
from vid2vid.core.errors import BadInput
from vid2vid.core.imageops import write_image
from vid2vid.core.workspace import frame_name
from vid2vid.video.democlip import make_clip
from vid2vid.video.read import frame_count, iter_sequence


def _write_video(path, frames, fps=24):
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _read(path, count=None):
    return [frame() for frame in iter_sequence(path, count)]


def test_video_is_read_at_the_output_frame_times(tmp_path):
    # 24 frames at 24 fps whose grey level is 10 * index; 7 output frames sample k / 7 s
    frames = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(24)]
    _write_video(tmp_path / "v.mkv", frames)
    got = _read(tmp_path / "v.mkv", 7)
    expect = [int(Fraction(k, 7) * 24) for k in range(7)]    # last frame shown at or before k / 7 s
    assert [int(g[0, 0, 0]) // 10 for g in got] == expect
    assert len(_read(tmp_path / "v.mkv")) == 24 == frame_count(tmp_path / "v.mkv")


@pytest.mark.parametrize("count", [None, 1, 5, 12, 24, 30, 47])
def test_sampled_frames_equal_the_whole_list_reader(tmp_path_factory, count):
    # H.264 with B-frames (display order differs from decode order); 12 and 24 put sample times
    # exactly on frame times, where the rule must pick the frame itself
    clip = tmp_path_factory.getbasetemp() / "read-clip.mp4"
    if not clip.exists():
        make_clip(clip, width=48, height=32, fps=24, seconds=1.0, audio=False)
    got, expect = _read(clip, count), reference.read_video(clip, count)
    assert len(got) == len(expect) == (count or 24)
    assert all(np.array_equal(a, b) for a, b in zip(got, expect))


def test_frames_are_read_only_when_asked_for(tmp_path):
    for i in range(3):
        write_image(tmp_path / "f" / frame_name(i + 1), np.full((8, 8, 3), 0.25 * i, np.float32))
    lazy = list(iter_sequence(tmp_path / "f", 3))
    (tmp_path / "f" / frame_name(2)).unlink()       # gone before it is read: only reading it fails
    assert int(lazy[2]()[0, 0, 0]) == 128 and lazy[0]().dtype == np.uint8
    with pytest.raises(BadInput, match="does not exist"):
        lazy[1]()


def test_folders_and_bad_paths(tmp_path):
    for i in range(4):
        write_image(tmp_path / "f" / frame_name(i + 1), np.full((8, 8, 3), 0.1 * i, np.float32))
    assert frame_count(tmp_path / "f") == 4 and len(_read(tmp_path / "f")) == 4
    with pytest.raises(BadInput, match="has 4 frames but the output has 5; pass the source video"):
        iter_sequence(tmp_path / "f", 5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no image frames"):
        frame_count(tmp_path / "empty")
    with pytest.raises(BadInput, match="neither a frame folder nor a video"):
        iter_sequence(tmp_path / "missing")
    with pytest.raises(BadInput, match="does not exist"):
        frame_count(tmp_path / "missing.mp4")
