"""Workspace rules: naming, atomic writes, lock, resume frame by frame, invalidation, settings files."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vid2vid import config
from vid2vid.config import Settings
from vid2vid.core.errors import BadInput, WorkspaceBusy
from vid2vid.core.progress import Job
from vid2vid.core.workspace import TMP_PREFIX, Workspace, atomic_path, frame_name, list_frames, workspace_name
from vid2vid.stages import extract
from vid2vid.video.democlip import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("c") / "clip.mp4", fps=12, seconds=1.5, audio=False)


def _extract(ws, clip, **opts):
    s = Settings()
    for k, v in opts.items():
        if hasattr(s.extract, k):
            setattr(s.extract, k, v)
        else:
            setattr(s.run, k, v)
    with ws.locked():
        return extract.run(ws, clip, s, Job())


def test_frame_names_and_natural_order(tmp_path):
    assert frame_name(1) == "00001.png" and frame_name(123, "jpg") == "00123.jpg"
    for name in ["00010.png", "00009.png", "00100.png", "00001.png", ".tmp-1-00002.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_frames(tmp_path)] == ["00001.png", "00009.png", "00010.png", "00100.png"]
    other = tmp_path / "unpadded"
    other.mkdir()
    for name in ["10.jpg", "9.jpg", "100.jpg", "frame2.webp", "frame11.webp"]:
        (other / name).write_bytes(b"x")
    assert [p.name for p in list_frames(other)] == ["9.jpg", "10.jpg", "100.jpg", "frame2.webp", "frame11.webp"]


def test_workspace_names_do_not_collide(tmp_path):
    long = "x" * 40
    a = workspace_name(tmp_path / "a" / f"{long}-part-one.mp4")
    b = workspace_name(tmp_path / "b" / f"{long}-part-one.mp4")
    c = workspace_name(tmp_path / "a" / f"{long}-part-two.mp4")
    assert len({a, b, c}) == 3
    assert workspace_name(tmp_path / "ünï cödé video.mp4").startswith("ünï_cödé_video-")
    assert "/" not in workspace_name(tmp_path / "a b.mp4")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_lock_refuses_a_second_holder_even_in_another_process(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.locked():
        with pytest.raises(WorkspaceBusy, match="in use"):
            with Workspace(tmp_path / "ws").locked():
                pass
        code = ("import sys; from vid2vid.core.workspace import Workspace\n"
                "try:\n    Workspace(sys.argv[1]).locked().__enter__()\n"
                "except Exception as e:\n    print(type(e).__name__)\n")
        out = subprocess.run([sys.executable, "-c", code, str(ws.root)], capture_output=True, text=True)
        assert out.stdout.strip() == "WorkspaceBusy"
    with Workspace(tmp_path / "ws").locked():   # released
        pass


def test_lock_cleans_half_written_files(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    (ws.root / "frames").mkdir()
    (ws.root / "frames" / f"{TMP_PREFIX}123-00004.png").write_bytes(b"half")
    with ws.locked():
        assert not any(p.name.startswith(TMP_PREFIX) for p in (ws.root / "frames").iterdir())


def test_resume_rewrites_only_missing_frames(tmp_path, clip):
    ws = Workspace(tmp_path / "ws").ensure()
    info = _extract(ws, clip)
    files = ws.frames()
    assert len(files) == info["frames"] == 18
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    # a crash in the middle: the last frames and the completion mark are gone
    for p in files[-5:]:
        p.unlink()
    ws.manifest["stages"]["extract"]["complete"] = False
    ws.save_manifest()
    ws2 = Workspace(ws.root)
    _extract(ws2, clip)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in ws2.frames()}
    assert sorted(after) == sorted(before)
    for name, (data, mtime) in before.items():
        assert after[name][0] == data                           # identical content
        if name not in {p.name for p in files[-5:]}:
            assert after[name][1] == mtime                      # untouched
    assert ws2.is_complete("extract")


def test_same_parameters_skip_finished_work(tmp_path, clip):
    ws = Workspace(tmp_path / "ws").ensure()
    _extract(ws, clip)
    mtimes = [p.stat().st_mtime_ns for p in ws.frames()]
    _extract(Workspace(ws.root), clip)
    assert [p.stat().st_mtime_ns for p in ws.frames()] == mtimes


def test_changed_parameters_invalidate_the_stage_and_later_ones_only(tmp_path, clip):
    ws = Workspace(tmp_path / "ws").ensure()
    _extract(ws, clip)
    with ws.locked():
        ws.begin_stage("delta", {"x": 1}, inputs=("extract",), outputs=())
        ws.complete_stage("delta")
        ws.begin_stage("img2img", {"y": 1}, inputs=("extract", "delta"), outputs=())
        ws.complete_stage("img2img")
        # re-running delta with other parameters: delta restarts, img2img becomes stale, extract stays
        ws.begin_stage("delta", {"x": 2}, inputs=("extract",), outputs=())
    assert ws.is_complete("extract")
    assert not ws.is_complete("delta")
    assert ws.is_stale("img2img") and not ws.is_complete("img2img")
    with pytest.raises(BadInput, match="needs the results of 'img2img'"):
        ws.begin_stage("upscale", {}, inputs=("img2img", "delta"), outputs=())
    # changing extract makes every later stage stale
    n_before = len(ws.frames())
    _extract(ws, clip, fps=6.0)
    assert len(ws.frames()) == 9 != n_before
    assert ws.is_complete("extract")
    with ws.locked():
        ws.begin_stage("delta", {"x": 2}, inputs=("extract",), outputs=())
        ws.complete_stage("delta")
        ws.begin_stage("delta", {"x": 2}, inputs=("extract",), outputs=())
    assert ws.stage_record("delta")["complete"] is True   # same key: still done


def test_overwrite_off_keeps_results_and_says_so(tmp_path, clip):
    ws = Workspace(tmp_path / "ws").ensure()
    _extract(ws, clip)
    before = sorted(p.name for p in ws.frames())
    with pytest.raises(BadInput, match="kept.*overwrite"):
        _extract(ws, clip, fps=6.0, overwrite=False)
    assert sorted(p.name for p in ws.frames()) == before
    assert ws.stage_record("extract")["params"]["fps"] == 12.0


def test_damaged_manifest_is_reported(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    (ws.root / "manifest.json").write_text("{not json")
    with pytest.raises(BadInput, match="damaged"):
        _ = Workspace(ws.root).manifest


def test_settings_round_trip_and_errors(tmp_path):
    s = Settings()
    s.img2img.prompt, s.img2img.steps, s.img2img.loras = "(masterpiece:1.3), cat", 12, ["a.safetensors:0.5"]
    s.extract.fps = 7.5
    path = tmp_path / "s.toml"
    config.save_toml(s, path)
    back = config.load_toml(path)
    assert back == s
    path.write_text("[img2img]\nsteps = 'many'\n")
    with pytest.raises(BadInput, match="wrong type"):
        config.load_toml(path)
    path.write_text("[img2img]\nstepz = 3\n")
    with pytest.raises(BadInput, match="stepz"):
        config.load_toml(path)
    path.write_text("[img2img\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        config.load_toml(path)


@pytest.mark.parametrize("section,field,value,match", [
    ("img2img", "sigma_max", 0.05, "below --sigma-min"),
    ("img2img", "steps", 0, "--steps"),
    ("img2img", "steps", 151, "--steps"),
    ("img2img", "denoise", 1.5, "--denoise"),
    ("img2img", "width", 833, "multiple of 8"),
    ("extract", "fps", -1.0, "positive"),
    ("interpolate", "ratio", 0.0, "--ratio"),
    ("correct", "motion_highext", 4, "odd"),
    ("export", "format", "mkv", "mp4, webm, gif, avi"),
])
def test_validation_messages(section, field, value, match):
    s = Settings()
    setattr(getattr(s, section), field, value)
    with pytest.raises(BadInput, match=match):
        s.validate()


def test_config_dump_is_loadable(tmp_path, capsys):
    from vid2vid.cli.main import main

    assert main(["config", "--dump"]) == 0
    text = capsys.readouterr().out
    p = tmp_path / "d.toml"
    p.write_text(text)
    assert config.load_toml(p) == Settings()
    assert "[img2img]" in text and 'schedule = "exponential"' in text


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "vid2vid", "--version"], capture_output=True, text=True,
                         env={**os.environ})
    assert out.returncode == 0 and out.stdout.startswith("vid2vid ")
