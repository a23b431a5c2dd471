"""The whole pipeline: end to end on a tiny model, interrupt and resume, what a changed setting re-runs."""
from __future__ import annotations

import numpy as np
import pytest

from vid2vid import config
from vid2vid.cli.main import main
from vid2vid.config import Settings
from vid2vid.core.errors import BadInput, Interrupted
from vid2vid.core.imageops import read_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline.runner import run
from vid2vid.video.democlip import make_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("assets")
    clip = make_clip(d / "clip.mp4", width=80, height=48, fps=12, seconds=1.0, audio=True)
    return clip, tiny_model


def small_settings(model, **changes) -> Settings:
    s = Settings()
    s.extract.fps, s.extract.audio = 6.0, True
    s.img2img.model, s.img2img.prompt = str(model), "(watercolor:1.2), shapes"
    s.img2img.width, s.img2img.height, s.img2img.steps = 64, 48, 8
    s.upscale.model = "lanczos-x2"
    s.export.audio = True
    for dotted, value in changes.items():
        section, name = dotted.split("__")
        setattr(getattr(s, section), name, value)
    return s


def frames_of(ws: Workspace, folder: str) -> list[np.ndarray]:
    return [read_image(p) for p in ws.frames(folder)]


def test_end_to_end_and_rerun_skips_everything(tmp_path, assets):
    clip, model = assets
    s = small_settings(model)
    result = run(clip, s, workspace=tmp_path / "ws")
    ws = Workspace(result.workspace)
    assert result.output == ws.path("synth-rife.mp4") and result.output.is_file()
    assert len(ws.frames("img2img")) == 6 and len(ws.frames("resr")) == 6 and len(ws.frames("rife")) == 12
    assert read_image(ws.frames("resr")[0]).shape == (96, 128, 3)
    assert set(result.stages) == {"extract", "delta", "img2img", "upscale", "interpolate", "export"}
    m = result.metrics
    assert m is not None and m["warp_error"] >= 0 and m["source_warp_error"] >= 0
    assert "warping error" in result.summary()
    # the settings are saved in the workspace
    assert config.load_toml(ws.path("settings.toml")).img2img.prompt == s.img2img.prompt
    # the same command again: nothing is redone
    mtimes = {p: p.stat().st_mtime_ns for f in ("img2img", "rife") for p in ws.frames(f)}
    run(clip, s, workspace=tmp_path / "ws")
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_interrupt_then_resume_gives_the_uninterrupted_frames(tmp_path, assets):
    clip, model = assets
    # 12 frames: with model workers a frame is written a batch or two after it was started,
    # so a stop asked for at frame 3 is honoured a few frames later
    s = small_settings(model, run__upscale=False, run__interpolate=False, extract__fps=12.0)
    ref = Workspace(run(clip, s, workspace=tmp_path / "ref", measure=False).workspace)

    job = Job()

    def stop_after_three(ev):
        if ev.stage.endswith("img2img") and ev.done >= 3:
            job.cancel.set()

    job.on_progress = stop_after_three
    with pytest.raises(Interrupted):
        run(clip, s, workspace=tmp_path / "cut", job=job)
    cut = Workspace(tmp_path / "cut")
    assert 3 <= len(cut.frames("img2img")) < 12
    assert not cut.is_complete("img2img")
    run(clip, s, workspace=tmp_path / "cut", measure=False)
    a, b = frames_of(ref, "img2img"), frames_of(cut, "img2img")
    assert len(a) == len(b) == 12
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_changed_setting_reruns_only_what_it_affects(tmp_path, assets):
    clip, model = assets
    s = small_settings(model, run__interpolate=False)
    ws = Workspace(run(clip, s, workspace=tmp_path / "ws", measure=False).workspace)
    stamp = lambda folder: {p.name: p.stat().st_mtime_ns for p in ws.frames(folder)}   # noqa: E731
    frames0, delta0, gen0, up0 = stamp("frames"), stamp("framedelta"), stamp("img2img"), stamp("resr")
    # a new upscaler: extract, delta and img2img stay; upscale is redone
    s.upscale.model = "lanczos-x3"
    run(clip, s, workspace=ws.root, measure=False)
    assert stamp("frames") == frames0 and stamp("framedelta") == delta0 and stamp("img2img") == gen0
    assert stamp("resr") != up0
    assert read_image(ws.frames("resr")[0]).shape == (144, 192, 3)
    # a new prompt: img2img and upscale are redone, extract and delta stay
    up1 = stamp("resr")
    s.img2img.prompt = "a different prompt"
    run(clip, s, workspace=ws.root, measure=False)
    assert stamp("frames") == frames0 and stamp("framedelta") == delta0
    assert stamp("img2img") != gen0 and stamp("resr") != up1


def test_flow_method_runs_as_its_own_stage(tmp_path, assets):
    clip, model = assets
    s = small_settings(model, run__upscale=False, run__interpolate=False, correct__method="flow")
    result = run(clip, s, workspace=tmp_path / "ws")
    ws = Workspace(result.workspace)
    assert "flow" in result.stages and len(ws.frames("flow")) == 6
    assert result.output == ws.path("synth-img2img.mp4")
    # the flow pass changed the generated frames, and later stages read its folder
    assert any(not np.array_equal(a, b) for a, b in zip(frames_of(ws, "img2img"), frames_of(ws, "flow")))


def test_missing_model_is_bad_input_before_any_work(tmp_path, assets):
    clip, _ = assets
    s = small_settings("")
    with pytest.raises(BadInput, match="--model"):
        run(clip, s, workspace=tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_cli_run_and_config_file(tmp_path, assets, capsys):
    clip, model = assets
    cfg = tmp_path / "s.toml"
    config.save_toml(small_settings(model, run__upscale=False, run__interpolate=False), cfg)
    code = main(["run", str(clip), "--config", str(cfg), "-w", str(tmp_path / "ws"), "--steps", "4",
                 "--format", "webm"])
    assert code == 0
    out = capsys.readouterr().out
    assert "synth-img2img.webm" in out
    saved = config.load_toml(tmp_path / "ws" / "settings.toml")
    assert saved.img2img.steps == 4 and saved.export.format == "webm" and saved.img2img.width == 64
