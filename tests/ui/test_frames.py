"""The live preview: the newest painted frame beside the source frame of the same number."""
from __future__ import annotations

import os
import time

from conftest import make_workspace, moving_frames
from vid2vid.core.imageops import write_image
from vid2vid.core.workspace import Workspace
from vid2vid.ui import frames


def test_the_live_preview_follows_the_newest_painted_frame(tmp_path):
    src = moving_frames(6, 16, 16)
    make_workspace(tmp_path / "ws", src)
    ws = Workspace(tmp_path / "ws")
    assert frames.live(ws) is None                                 # nothing painted yet
    (tmp_path / "ws" / "img2img").mkdir()
    now = time.time()
    for i, n in enumerate((1, 2, 3)):
        p = tmp_path / "ws" / "img2img" / f"{n:05d}.png"
        write_image(p, src[n - 1])
        os.utime(p, (now + i, now + i))
    (tmp_path / "ws" / "img2img" / ".tmp-00004.png").write_bytes(b"half")    # a frame being written: not shown
    got = frames.live(ws)
    assert got.painted.name == "00003.png" and got.source == ws.frames()[2]
    assert (got.done, got.total) == (3, 6) and got.caption() == "img2img/00003.png: 3 of 6 frames painted"
    (tmp_path / "ws" / "propagate").mkdir()                        # key-frame mode: the propagated sequence
    write_image(tmp_path / "ws" / "propagate" / "00005.png", src[4])
    got = frames.live(ws)
    assert got.folder == "propagate" and got.source == ws.frames()[4]
