"""The output video's place is checked before any work: read-only, no permission, a file as parent,
a full disk, a folder as the output."""
from __future__ import annotations

import errno
import os
import shutil
from collections import namedtuple

import pytest

from vid2vid.cli.main import main
from vid2vid.core.errors import BadInput
from vid2vid.core.outputpath import check_output
from vid2vid.video.democlip import make_clip


def _failing_open(err: int, real=os.open):
    def fake(path, flags, *a, **kw):
        if ".tmp-vid2vid-probe" in str(path):
            raise OSError(err, os.strerror(err), str(path))
        return real(path, flags, *a, **kw)
    return fake


@pytest.mark.parametrize("err,words", [(errno.EROFS, "read-only file system"), (errno.EACCES, "no permission")])
def test_unwritable_folder(tmp_path, monkeypatch, err, words):
    monkeypatch.setattr(os, "open", _failing_open(err))
    with pytest.raises(BadInput, match=words):
        check_output(tmp_path / "new" / "out.mp4")


def test_parent_is_a_file_output_is_a_folder_and_writable_is_fine(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInput, match="is a file, not a folder"):
        check_output(tmp_path / "f" / "sub" / "out.mp4")
    with pytest.raises(BadInput, match="is a folder; name the video file"):
        check_output(tmp_path)
    check_output(tmp_path / "a" / "b" / "out.mp4")
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".tmp-*"))   # nothing left behind


def test_not_enough_space(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(BadInput, match="only 1.0 MB is free"):
        check_output(tmp_path / "out.mp4", 5 * 10**6)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_no_permission_for_real(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(BadInput, match="no permission"):
        check_output(ro / "out.mp4")


def test_run_refuses_before_the_first_stage(tmp_path, monkeypatch, capsys, tiny_model):
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=48, fps=8, seconds=0.5, audio=False)
    monkeypatch.setattr(os, "open", _failing_open(errno.EROFS))
    code = main(["run", str(clip), "-w", str(tmp_path / "ws"), "--model", str(tiny_model), "--prompt", "x",
                 "-o", str(tmp_path / "ro" / "out.mp4")])     # 8 fps clip, --fps 12: every frame
    err = capsys.readouterr().err
    assert code == 2 and "read-only" in err
    assert not (tmp_path / "ws").exists()                          # no stage started
