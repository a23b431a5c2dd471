"""img2img on Ray actors (a local Ray of two CPUs, started once for this module): the same bytes
as a local run, also after an actor is SIGKILLed mid-run; several videos in one command."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import make_workspace, moving_frames
from vid2vid.cli.main import main
from vid2vid.config import Settings
from vid2vid.core.progress import Job
from vid2vid.painting import raypool
from vid2vid.pipeline.runner import run_stage
from vid2vid.video.democlip import make_clip

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def local_ray():
    import torch

    ray = pytest.importorskip("ray")
    # one thread per model call, so each actor reserves one CPU and two fit on the two CPUs (other
    # test modules set two threads when they are imported)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    raypool.close_pools()
    ray.shutdown()
    torch.set_num_threads(threads)


def settings_for(model: Path, **ray_changes) -> Settings:
    s = Settings()
    s.img2img.model, s.img2img.prompt = str(model), "(watercolor:1.2), shapes"
    s.img2img.width, s.img2img.height, s.img2img.steps, s.img2img.batch_size = 64, 48, 4, 2
    s.img2img.workers = 1
    for k, v in ray_changes.items():
        setattr(s.ray, k, v)
    return s


def frame_bytes(ws) -> list[bytes]:
    return [p.read_bytes() for p in ws.frames("img2img")]


@pytest.fixture(scope="module")
def local_frames(tmp_path_factory, tiny_model):
    """img2img of 8 frames in this process, the reference for the Ray runs."""
    ws = make_workspace(tmp_path_factory.mktemp("local") / "ws", moving_frames(8))
    run_stage("img2img", ws, settings_for(tiny_model))
    return frame_bytes(ws)


def test_ray_run_is_byte_identical_to_a_local_run(tmp_path, tiny_model, local_ray, local_frames):
    ws = make_workspace(tmp_path / "ws", moving_frames(8))
    info = run_stage("img2img", ws, settings_for(tiny_model, enabled=True, actors=2))
    assert info["ray_actors"] == 2 and info["model_workers"] == 2
    assert frame_bytes(ws) == local_frames


def test_a_killed_actor_loses_only_its_block(tmp_path, tiny_model, local_ray, local_frames):
    ws = make_workspace(tmp_path / "ws", moving_frames(8))
    s = settings_for(tiny_model, enabled=True, actors=2)
    killed: list[int] = []

    def kill_one_after_the_first_frame(ev):
        if ev.done >= 1 and not killed:
            pool = raypool.current_pool()
            killed.append(pool.pids()[1])
            os.kill(killed[0], signal.SIGKILL)

    run_stage("img2img", ws, s, Job(on_progress=kill_one_after_the_first_frame))
    assert killed, "the run never reported progress"
    pool = raypool.current_pool()
    now = local_ray.get([a.info.remote() for a in pool.actors])
    assert killed[0] not in {i["pid"] for i in now}        # Ray restarted that actor
    assert frame_bytes(ws) == local_frames


@pytest.fixture(scope="module")
def loud_model(tmp_path_factory):
    """A tiny model whose self-attention reaches the pixels (test_crossframe.make_loud_model)."""
    from test_crossframe import make_loud_model

    return make_loud_model(tmp_path_factory.mktemp("loud") / "model")


def test_ray_anchor_mode_is_byte_identical_to_a_local_anchor_run(tmp_path, loud_model, local_ray):
    """Cross-frame anchor mode (issue 15) on two actors: each samples the anchor itself, alone."""
    from vid2vid.core.imageops import read_image

    src = moving_frames(7)
    local, plain, remote = (make_workspace(tmp_path / name, src) for name in ("local", "plain", "ray"))
    s = settings_for(loud_model)
    s.img2img.cross_frame = "anchor"
    run_stage("img2img", local, s)
    run_stage("img2img", plain, settings_for(loud_model))
    r = settings_for(loud_model, enabled=True, actors=2)
    r.img2img.cross_frame = "anchor"
    info = run_stage("img2img", remote, r)
    assert info["ray_actors"] == 2
    assert frame_bytes(remote) == frame_bytes(local)
    a, b = (read_image(ws.path("img2img", "00005.png")) for ws in (plain, local))
    assert abs(a - b).mean() > 5e-4                       # the actors did read the anchor
    # a resume on Ray after losing frames of two blocks: the same bytes again
    want = frame_bytes(local)
    for i in (3, 6):
        remote.path("img2img", f"{i:05d}.png").unlink()
    remote.manifest["stages"]["img2img"]["complete"] = False
    remote.save_manifest()
    run_stage("img2img", remote, r)
    assert frame_bytes(remote) == want


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    a = make_clip(d / "a.mp4", width=80, height=48, fps=6, seconds=1.0)
    b = make_clip(d / "b.mp4", width=80, height=48, fps=6, seconds=1.0)
    bad = d / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    return a, b, bad


def run_args(model: Path, cache: Path, out: Path) -> list[str]:
    return ["--model", str(model), "--width", "64", "--height", "48", "--steps", "3", "--fps", "6",
            "--no-upscale", "--no-interpolate", "--cache", str(cache), "-o", str(out), "--ray"]


def test_several_videos_share_one_pool_and_a_bad_one_does_not_stop_the_others(tmp_path, tiny_model, clips,
                                                                              local_ray, capsys):
    a, b, bad = clips
    folder = tmp_path / "videos"
    folder.mkdir()
    for v in (a, bad, b):
        (folder / v.name).write_bytes(v.read_bytes())
    code = main(["run", str(folder), *run_args(tiny_model, tmp_path / "cache", tmp_path / "out")])
    cap = capsys.readouterr()
    assert code == 1, cap.err
    assert (tmp_path / "out" / "a.mp4").stat().st_size > 0 and (tmp_path / "out" / "b.mp4").stat().st_size > 0
    assert not (tmp_path / "out" / "bad.mp4").exists()
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2      # one workspace per good video
    assert cap.err.count("Ray actor(s), 1 CPU thread(s) each") == 1                  # one pool for both videos
    assert cap.err.count("img2img: 2 Ray actor(s) on cpu") == 2
    assert "FAILED" in cap.out and str(folder / "bad.mp4") in cap.out and "2 of 3 videos done, 1 failed" in cap.out
    assert "1 of 3 videos failed" in cap.err


def test_several_videos_refuse_one_workspace(tmp_path, clips, capsys):
    a, b, _ = clips
    assert main(["run", str(a), str(b), "-w", str(tmp_path / "ws")]) == 2
    assert "-w names one workspace" in capsys.readouterr().err


def test_ray_asked_without_ray_installed_is_one_clear_line(tmp_path, tiny_model, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)          # as if it were not installed
    ws = make_workspace(tmp_path / "ws", moving_frames(2))
    assert main(["img2img", "-w", str(ws.root), "--model", str(tiny_model), "--ray"]) == 2
    err = capsys.readouterr().err
    assert "--ray needs Ray, which is not installed" in err and "bash install.sh --ray" in err
    assert not ws.path("img2img").exists()


def test_the_pages_interrupt_stops_the_actors_after_their_block(tmp_path, tiny_model, local_ray):
    """Generate on the page with Ray (issue 20): Interrupt sets the cancel flag Ctrl+C sets, the actors
    finish the block they hold, and the run never used the page's preloaded local model."""
    import time

    from vid2vid.core.errors import Interrupted
    from vid2vid.ui import actions, paths
    from vid2vid.ui.runner import Runner

    root = paths.cache_root(tmp_path / "cache")
    ws = make_workspace(root / "ws", moving_frames(12))
    s = settings_for(tiny_model, enabled=True, actors=1)
    s.img2img.steps = 20
    runner, models = Runner(), actions.ModelCache()
    task = runner.start("img2img", lambda job: actions.img2img(root, "ws", s, job, models))
    end = time.monotonic() + 300
    while not (task.event is not None and task.event.done >= 2) and not task.done.is_set():
        assert time.monotonic() < end, task.status()
        time.sleep(0.05)
    assert not task.done.is_set(), task.final()
    runner.interrupt()
    assert task.done.wait(300)
    assert isinstance(task.error, Interrupted) and "after Interrupt" in task.final(), task.final()
    kept = len(ws.frames("img2img"))
    assert 2 <= kept < 12 and kept % 2 == 0            # whole blocks of 2, written before the actors stopped
    assert models._model is None                        # the page's local model was never loaded
    assert raypool.current_pool() is not None       # the frames came from the actors


def test_ray_with_the_accelerators_is_byte_identical_to_a_local_run(tmp_path, loud_model, local_ray):
    """Token merging, deep features cached in a frame and across frames (the holders are anchors of
    the plan) on two actors: each actor rebuilds a holder's features itself, so the bytes match."""
    src = moving_frames(6)
    local, remote = (make_workspace(tmp_path / name, src) for name in ("local", "ray"))
    accel = ["tome:0.5", "cache:1", "cache-frames:0.5"]
    s = settings_for(loud_model)
    s.img2img.accel = accel
    run_stage("img2img", local, s)
    r = settings_for(loud_model, enabled=True, actors=2)
    r.img2img.accel = accel
    info = run_stage("img2img", remote, r)
    assert info["ray_actors"] == 2 and info["accel"] == ["tome:0.5", "cache:1", "cache-frames:0.5"]
    assert frame_bytes(remote) == frame_bytes(local)
