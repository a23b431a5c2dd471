"""Issue 19: every stage that writes frames compares what it will write with the free disk space
before it starts (`space_need` of its module, checked by `runner.run_stage`), refuses with one
line that says how much is missing and what to change, and writes or removes nothing.

The free space is faked (diskspace.free_bytes / shutil.disk_usage); the estimates are compared
with the bytes the stages really write when there is room.
"""
from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from conftest import make_workspace, moving_frames
from vid2vid import config
from vid2vid.cli.main import main
from vid2vid.core import diskspace
from vid2vid.core.errors import BadInput
from vid2vid.core.imageops import write_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.pipeline import runner

N = 6


def grainy_frames(n: int = N) -> list[np.ndarray]:
    """Moving frames with a camera's grain: synthetic gradients compress 40 times, which no
    real frame (and no generated one) does."""
    rng = np.random.default_rng(1)
    return [np.clip(f + rng.normal(0, 0.03, f.shape), 0, 1).astype(np.float32) for f in moving_frames(n, 64, 48)]


def painted_workspace(root: Path, keys: list[int] | None = None) -> Workspace:
    """Extracted frames and complete img2img frames (all of them, or the key frames)."""
    frames = grainy_frames()
    ws = make_workspace(root, frames)
    for i, f in enumerate(frames, 1):
        if keys is None or i in keys:
            write_image(ws.path("img2img", frame_name(i)), f[::-1])
    ws.begin_stage("img2img", {"synthetic": True}, inputs=("extract",), outputs=())
    ws.complete_stage("img2img", frames=N)
    if keys is not None:
        ws.update_stage_info("img2img", keys=keys, keyframes="every:3")
    return ws


def settings_for(stage: str) -> config.Settings:
    s = config.Settings()
    s.img2img.width, s.img2img.height = 64, 48
    if stage == "upscale":
        s.upscale.model, s.upscale.device = "lanczos-x2", "cpu"
    if stage == "interpolate":
        s.interpolate.model, s.interpolate.ratio, s.interpolate.device = "blend", 2.0, "cpu"
    if stage == "flow":
        s.correct.method, s.correct.flow_mask = "flow", "none"
    if stage == "control":
        s.img2img.controlnet = [config.ControlNetSettings(model="cn.safetensors", control="canny"),
                                config.ControlNetSettings(model="cn.safetensors", control="softedge")]
    if stage == "propagate":
        s.propagate.keyframes = "every:3"
    return s


# stage -> (its output folder, the files it writes for N frames)
WRITES = {"delta": ("framedelta", N - 1), "depth": ("depthmask", N), "control": ("control", 2 * N),
          "propagate": ("propagate", N), "flow": ("flow", N), "upscale": ("resr", N),
          "interpolate": ("rife", 2 * N)}
FIXES = {"delta": "--fps", "depth": "--fps", "control": "fewer ControlNets",
         "propagate": "--width", "flow": "--width", "upscale": "--model",
         "interpolate": "--ratio"}


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("log.jsonl", ".lock")}


def workspace_for(stage: str, root: Path) -> Workspace:
    return painted_workspace(root, keys=[1, 4, 6] if stage == "propagate" else None)


@pytest.mark.parametrize("stage", sorted(WRITES))
def test_a_stage_the_disk_cannot_hold_is_refused_before_it_writes(tmp_path, monkeypatch, stage):
    ws = workspace_for(stage, tmp_path / "ws")
    s = settings_for(stage)
    folder, total = WRITES[stage]
    # two files of an earlier run are there already: they count as done, and are kept
    module = __import__(f"vid2vid.stages.{stage}", fromlist=["space_need"])
    full = module.space_need(ws, s)
    assert full is not None and full.frames == total
    out = ws.path(folder, "1-canny") if stage == "control" else ws.path(folder)
    out.mkdir(parents=True)
    for i in (1, 2):
        write_image(out / frame_name(i), moving_frames(1, 8, 8)[0])
    need = module.space_need(ws, s)
    assert need.frames == total - 2 and need.bytes_per_frame == pytest.approx(full.bytes_per_frame)
    before = snapshot(ws.root)
    monkeypatch.setattr(diskspace, "free_bytes", lambda p: diskspace.RESERVE + need.bytes)  # short of the margin
    with pytest.raises(BadInput) as exc:
        runner.run_stage(stage, ws, s, Job())
    line = str(exc.value)
    assert "\n" not in line and line.startswith(f"{stage} would write about")
    assert f"({total - 2:,} png frames of" in line and "missing" in line and FIXES[stage] in line
    assert snapshot(ws.root) == before                  # nothing written, nothing removed


@pytest.mark.parametrize("stage", ["delta", "flow", "upscale", "interpolate", "propagate", "control"])
def test_with_room_the_stage_runs_and_the_estimate_is_not_under_what_it_writes(tmp_path, monkeypatch, stage):
    ws = workspace_for(stage, tmp_path / "ws")
    s = settings_for(stage)
    module = __import__(f"vid2vid.stages.{stage}", fromlist=["space_need"])
    need = module.space_need(ws, s)
    seen = []
    real_check = diskspace.check_space
    monkeypatch.setattr(diskspace, "check_space", lambda n, where, *a, **k: (seen.append(n), real_check(n, where)))
    runner.run_stage(stage, ws, s, Job(), follow=False)
    assert seen == [need]
    folder, total = WRITES[stage]
    files = [f for f in ws.path(folder).rglob("*.png")]
    assert len(files) == total
    written = sum(f.stat().st_size for f in files)
    assert need.bytes >= 0.8 * written                  # an over-estimate where content differs (delta views)
    if stage in ("flow", "upscale", "interpolate", "propagate"):
        assert need.bytes <= 2.5 * written              # close where the pictures are alike
    assert module.space_need(ws, s) is None             # done: nothing left to write


def test_a_jpg_workspace_is_estimated_as_the_pngs_later_stages_write(tmp_path):
    from vid2vid.stages import delta

    frames = grainy_frames()
    png, jpg = make_workspace(tmp_path / "png", frames), Workspace(tmp_path / "jpg").ensure()
    for i, f in enumerate(frames, 1):
        write_image(jpg.path("frames", f"{i:05d}.jpg"), f)
    s = config.Settings()
    a, b = delta.space_need(png, s), delta.space_need(jpg, s)
    assert b.bytes_per_frame == pytest.approx(a.bytes_per_frame, rel=0.5)
    assert b.bytes_per_frame > 1.5 * diskspace.bytes_per_pixel(jpg.frames()) * 64 * 48


def test_cli_says_it_in_one_line_with_exit_2(tmp_path, monkeypatch, capsys):
    ws = painted_workspace(tmp_path / "ws")
    before = snapshot(ws.root)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))   # 1 MB free
    capsys.readouterr()
    assert main(["upscale", "-w", str(ws.root), "--model", "lanczos-x4"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "upscale would write" in lines[0] and "256x192" in lines[0]
    assert "--model" in lines[0] and "--fps" in lines[0]                  # settings named as options
    assert snapshot(ws.root) == before


def test_a_later_stage_is_estimated_from_the_frames_extract_made(tmp_path, monkeypatch):
    """Extract fits, then delta is refused; the extracted frames stay."""
    from vid2vid.video.democlip import make_clip

    clip = make_clip(tmp_path / "c.mp4", width=64, height=48, fps=8, seconds=0.5, audio=False)
    s = config.Settings()
    s.extract.fps = 8.0
    calls = []

    def free(path):
        calls.append(path)
        return 10**12 if len(calls) == 1 else 0     # room for extract only

    monkeypatch.setattr(diskspace, "free_bytes", free)
    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    runner.run_stage("extract", ws, s, Job(), video=clip)
    frames = snapshot(ws.path("frames"))
    with pytest.raises(BadInput, match="^delta would write"):
        runner.run_stage("delta", ws, s, Job())
    assert snapshot(ws.path("frames")) == frames and not ws.path("framedelta").exists()
