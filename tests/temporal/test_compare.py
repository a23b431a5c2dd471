"""The side-by-side comparison video: panel timing (held, not stretched), layout, labels, audio."""
from __future__ import annotations

import numpy as np
import pytest

from vid2vid.cli.main import main
from vid2vid.core.imageops import write_image
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.temporal import compare
from vid2vid.video.democlip import make_clip


def test_panel_index_holds_frames_in_time():
    # a full panel shows the frame of its slot; a half-rate panel holds each frame for two output frames
    assert [compare.panel_index(list(range(1, 9)), 8, j, 8) for j in range(8)] == list(range(8))
    assert [compare.panel_index(list(range(1, 5)), 4, j, 8) for j in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    # key frames only (1, 4, 7 of 9 slots): each is held until the next key's time, never shown early
    assert [compare.panel_index([1, 4, 7], 9, j, 9) for j in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # a first frame that is not frame 1 is shown from the start
    assert compare.panel_index([3, 6], 6, 0, 6) == 0


def test_grid_shape():
    assert [compare.grid_shape(n) for n in (1, 2, 3, 4, 5, 6)] == [(1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (2, 3)]


def test_label_changes_the_pixels_it_covers_only():
    img = np.full((40, 120, 3), 200, np.uint8)
    out = compare.draw_label(img, "img2img")
    changed = np.any(out != img, axis=2)
    assert changed[:20, :60].any() and not changed[30:, :].any()


@pytest.fixture
def ws(tmp_path):
    """A workspace made by extract (8 frames of 64x48 with audio), a 'generated' folder of the same
    frames darkened, and a 'rife' folder with twice as many frames."""
    clip = make_clip(tmp_path / "c.mp4", width=64, height=48, fps=8, seconds=1.0, audio=True)
    root = tmp_path / "ws"
    assert main(["extract", str(clip), "-w", str(root), "--fps", "8", "--audio"]) == 0
    w = Workspace(root)
    frames = w.frames()
    for i, p in enumerate(frames, 1):
        from vid2vid.core.imageops import read_image

        img = read_image(p)
        write_image(w.path("img2img", frame_name(i)), img * 0.5)
        write_image(w.path("rife", frame_name(2 * i - 1)), img * 0.5)
        write_image(w.path("rife", frame_name(2 * i)), img * 0.5)
    for name in ("img2img", "interpolate"):
        w.begin_stage(name, {"synthetic": True}, outputs=())
        w.complete_stage(name)
    return w


def _decode(path):
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
        c.seek(0)
        has_audio = bool(c.streams.audio)
        duration = float(c.duration / 1_000_000) if c.duration else 0.0
    return frames, has_audio, duration


def test_comparison_video_has_the_panels_side_by_side_with_audio(ws):
    info = compare.make_comparison(ws, ["frames", "img2img", "final"])
    frames, has_audio, duration = _decode(info["output"])
    n_src = len(ws.frames())
    assert info["frames"] == len(frames) == 2 * n_src             # the final video's frame rate (rife)
    assert frames[0].shape == (48, 3 * 64, 3)                      # three panels of one height in a row
    assert has_audio and abs(duration - 1.0) <= 1.0 / info["fps"] + 0.05
    # the source panel is brighter than the darkened ones (away from the label)
    f = frames[5].astype(float)
    assert f[30:, :64].mean() > f[30:, 64:128].mean() + 20


def test_a_panel_with_half_the_frames_is_held(ws):
    info = compare.make_comparison(ws, ["img2img", "final"])
    frames, _, _ = _decode(info["output"])
    left = [f[28:, :64].astype(float) for f in frames]
    # output frames 2k and 2k+1 show the same img2img frame (only codec noise apart) ...
    held = [np.abs(left[2 * k] - left[2 * k + 1]).mean() for k in range(len(left) // 2)]
    moved = [np.abs(left[2 * k + 1] - left[2 * k + 2]).mean() for k in range(len(left) // 2 - 1)]
    assert max(held) < 1.5 and np.mean(moved) > 2 * np.mean(held)


def test_four_panels_make_a_grid_and_unknown_panels_are_refused(ws, capsys):
    for p in ws.frames("img2img"):
        (ws.path("resr") / p.name).parent.mkdir(exist_ok=True)
        (ws.path("resr") / p.name).write_bytes(p.read_bytes())
    info = compare.make_comparison(ws, ["frames", "img2img", "resr", "rife"], stats=True)
    assert (info["width"], info["height"]) == (2 * 64, 2 * (48 + compare.STATS_H))
    assert main(["compare", "-w", str(ws.root), "--panels", "frames,nonsense"]) == 2
    assert "panel 'nonsense' is not known" in capsys.readouterr().err
    assert main(["compare", "-w", str(ws.root), "--panels", "flow"]) == 2
    assert "no frames" in capsys.readouterr().err


def test_the_demo_settings_keep_the_clip_recognisable(tmp_path):
    """At the demo's settings the tiny model's frames correlate with the source frames (the demo
    shows what the stages do, not noise)."""
    from vid2vid.cli import demo
    from vid2vid.core.imageops import fit, read_image
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.pipeline import runner

    clip = make_clip(tmp_path / "c.mp4", width=128, height=72, fps=8, seconds=0.5, audio=True)
    model = make_tiny_model(tmp_path / "tiny", passthrough_vae=True)
    s = demo.demo_settings(model, tmp_path / "cache")
    s.img2img.width, s.img2img.height, s.img2img.steps = 128, 72, 8
    s.run.upscale = s.run.interpolate = False
    result = runner.run(clip, s, workspace=tmp_path / "ws")
    ws = Workspace(result.workspace)
    assert result.comparison is not None and result.comparison.is_file()
    corr = []
    for src, gen in zip(ws.frames(), ws.frames("img2img")):
        a = fit(read_image(src), 128, 72).ravel()
        corr.append(np.corrcoef(a, read_image(gen).ravel())[0, 1])
    assert min(corr) > 0.5, corr
    assert ws.is_complete("flow")


def test_the_pages_compare_action_writes_inside_the_workspace(ws):
    from vid2vid.core.progress import Job
    from vid2vid.ui import actions

    info = actions.compare(ws.root.parent, ws.root.name, Job())
    assert info["output"] == str(ws.path("compare.mp4")) and ws.path("compare.mp4").is_file()


def test_default_panels_include_the_propagated_sequence_with_key_frames(ws):
    """With key frames img2img/ holds only the keys; the propagated sequence gets its own panel."""
    for i, p in enumerate(ws.frames("img2img"), 1):
        if i % 2 == 0:
            p.unlink()                                   # img2img painted every 2nd frame only
    for p in ws.frames():
        (ws.path("propagate") / p.name).parent.mkdir(exist_ok=True)
        (ws.path("propagate") / p.name).write_bytes(p.read_bytes())
    labels = [p.label for p in compare.resolve_panels(ws, None)]
    assert labels[:3] == ["source", "img2img", "propagated from the keys"]
