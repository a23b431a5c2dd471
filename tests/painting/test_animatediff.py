"""The AnimateDiff painter in the img2img stage: tiny model + tiny motion module, through the real loading code."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import moving_frames
from vid2vid.config import Img2ImgSettings, Settings
from vid2vid.core.errors import BadInput, Interrupted
from vid2vid.core.imageops import read_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import list_frames
from vid2vid.diffusion.tiny_motion import make_tiny_motion_module
from vid2vid.painting import painters, windows
from vid2vid.stages import img2img as stage


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory):
    return make_tiny_motion_module(tmp_path_factory.mktemp("mm"), single_file=True)


def settings(model, motion, **kw) -> Settings:
    st = Settings()
    base = dict(model=str(model), motion_module=str(motion), prompt="a red fox", negative="blurry", steps=4,
                denoise=0.75, width=64, height=64, sampler="dpm++-2m", context_length=4, context_overlap=2)
    base.update(kw)
    st.img2img = Img2ImgSettings(**base)
    return st


def painted(ws):
    return [read_image(p) for p in list_frames(ws.root / "img2img")]


def test_the_motion_module_chooses_the_painter(tiny_model, motion_file):
    assert painters.choose(settings(tiny_model, motion_file)).NAME == "animatediff"
    assert painters.choose(settings(tiny_model, "")).NAME == "image"


def test_stage_paints_windows_and_resumes_after_a_kill_with_the_same_bits(workspace_factory, tiny_model, motion_file):
    st = settings(tiny_model, motion_file)
    whole = workspace_factory(moving_frames(7), "whole")
    info = stage.run(whole, st, Job())
    assert info["painter"] == "animatediff" and info["frames"] == 7 and len(painted(whole)) == 7
    state = json.loads((whole.root / "img2img" / windows.STATE_JSON).read_text())
    assert state["steps_done"] == state["steps_total"] == info["sampler_steps"] == 4
    assert state["windows"] == [[1, 4], [3, 6], [4, 7]]
    assert not (whole.root / "img2img" / windows.STATE_FILE).exists()

    killed = workspace_factory(moving_frames(7), "killed")
    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.stage == "img2img steps" and ev.done >= 2 else None
    with pytest.raises(Interrupted):
        stage.run(killed, st, job)
    state = json.loads((killed.root / "img2img" / windows.STATE_JSON).read_text())
    assert state["steps_done"] == 2 and not painted(killed)
    stage.run(killed, st, Job())
    assert all(np.array_equal(a, b) for a, b in zip(painted(whole), painted(killed), strict=True))
    # killed while the frames are decoded: the steps are not run again, the frames left are written
    late = workspace_factory(moving_frames(7), "late")
    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.stage == "img2img" and ev.done >= 3 else None
    with pytest.raises(Interrupted):
        stage.run(late, st, job)
    assert len(painted(late)) == 3 and (late.root / "img2img" / windows.STATE_FILE).exists()
    said: list[str] = []
    stage.run(late, st, Job(log=said.append))
    assert any("resuming after step 4" in line for line in said)
    assert all(np.array_equal(a, b) for a, b in zip(painted(whole), painted(late), strict=True))


def test_accelerators_on_windows_identity_bits_and_kill_resume(workspace_factory, tiny_model, motion_file):
    """tome:0 cache:0 paint the plain bytes; tome:0.5 cache:1 paint others, and a run killed after step 3 (not a
    resume point: a cache cycle of 2 evaluations starts after steps 2 and 4) resumes after step 2 to the same bytes."""
    plain = workspace_factory(moving_frames(5), "plain")
    stage.run(plain, settings(tiny_model, motion_file), Job())
    identity = workspace_factory(moving_frames(5), "identity")
    stage.run(identity, settings(tiny_model, motion_file, accel=["tome:0", "cache:0"]), Job())
    assert [p.read_bytes() for p in plain.frames("img2img")] == [p.read_bytes() for p in identity.frames("img2img")]
    st = settings(tiny_model, motion_file, accel=["tome:0.5", "cache:1"])
    whole = workspace_factory(moving_frames(5), "whole")
    info = stage.run(whole, st, Job())
    assert info["accel"] == ["tome:0.5", "cache:1"]
    assert max(np.abs(a - b).max() for a, b in zip(painted(whole), painted(plain))) > 1 / 255
    killed = workspace_factory(moving_frames(5), "killed")
    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.stage == "img2img steps" and ev.done >= 3 else None
    with pytest.raises(Interrupted):
        stage.run(killed, st, job)
    assert json.loads((killed.root / "img2img" / windows.STATE_JSON).read_text())["steps_done"] == 2
    said: list[str] = []
    stage.run(killed, st, Job(log=said.append))
    assert any("resuming after step 2" in line for line in said)
    assert [p.read_bytes() for p in whole.frames("img2img")] == [p.read_bytes() for p in killed.frames("img2img")]


def test_motion_module_changes_the_frames(workspace_factory, tiny_model, motion_file):
    with_mm = workspace_factory(moving_frames(5), "mm")
    stage.run(with_mm, settings(tiny_model, motion_file), Job())
    zero = workspace_factory(moving_frames(5), "zero")
    stage.run(zero, settings(tiny_model, motion_file, motion_scale=0.0), Job())
    assert max(np.abs(a - b).max() for a, b in zip(painted(with_mm), painted(zero))) > 2 / 255


@pytest.mark.parametrize("kw,msg", [
    ({"context_length": 40}, r"more than this motion module was trained for \(32 frames\)"),
    ({"cross_frame": "anchor"}, "cross-frame attention runs frame by frame"),
    ({"skip_still": 0.01}, "still frame"),
    ({"flow_init": 0.5}, "flow init"),
    ({"accel": ["tome:0.5", "cache-frames"]}, "cache-frames accelerator lends one frame's deep features"),
])
def test_what_does_not_apply_is_refused_and_nothing_is_lost(workspace_factory, tiny_model, motion_file, kw, msg):
    ws = workspace_factory(moving_frames(3), "bad")
    with pytest.raises(BadInput, match=msg):
        stage.run(ws, settings(tiny_model, motion_file, **kw), Job())
    assert not painted(ws)


def test_key_frames_are_refused(workspace_factory, tiny_model, motion_file):
    st = settings(tiny_model, motion_file)
    st.propagate = dataclasses.replace(st.propagate, keyframes="every:2")
    if not st.propagate.on:
        pytest.skip("key frames are switched on by another field here")
    with pytest.raises(BadInput, match="key frames paint frames apart"):
        stage.run(workspace_factory(moving_frames(3), "keys"), st, Job())


def test_sdxl_model_with_an_sd1_module_is_one_line(workspace_factory, tmp_path, motion_file):
    from vid2vid.diffusion.tiny import make_tiny_model

    xl = make_tiny_model(tmp_path / "xl", config="tiny-sdxl")
    with pytest.raises(BadInput, match="made for SD 1.x but the model .* is SDXL; use an SDXL motion module"):
        stage.run(workspace_factory(moving_frames(3), "xl"), settings(xl, motion_file), Job())


def test_cli_bad_input_exits_2_with_one_line(workspace_factory, tmp_path, tiny_model, motion_file):
    broken = tmp_path / "mm_sd15_v2.ckpt"
    broken.write_bytes(b"PK\x03\x04 not a checkpoint")
    ws = workspace_factory(moving_frames(3), "cli")
    for extra, msg in ((["--motion-module", str(motion_file), "--context-length", "8", "--context-overlap", "8"],
                        "--context-overlap 8 is not below --context-length 8"),
                       (["--motion-module", str(motion_file), "--context-length", "1"], "--context-length 1"),
                       (["--motion-module", str(broken)], "cannot read motion module")):
        res = subprocess.run([sys.executable, "-m", "vid2vid", "img2img", "-w", str(ws.root), "--model",
                              str(tiny_model), "--width", "64", "--height", "64", *extra],
                             capture_output=True, text=True)
        assert res.returncode == 2, res.stderr
        errors = [line for line in res.stderr.splitlines() if msg in line]
        assert len(errors) == 1, res.stderr
    assert not painted(ws)


def test_controlnet_steers_each_window_with_its_frames_control_images(workspace_factory, tiny_model, motion_file,
                                                                      tmp_path):
    from vid2vid.config import ControlNetSettings
    from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet
    from vid2vid.stages import control

    net = make_tiny_controlnet(tmp_path / "cn")
    st = settings(tiny_model, motion_file, controlnet=[ControlNetSettings(model=str(net), control="canny",
                                                                          low=20, high=60)])
    ws = workspace_factory(moving_frames(5), "cn")
    control.run(ws, st, Job())
    stage.run(ws, st, Job())
    free = workspace_factory(moving_frames(5), "free")
    stage.run(free, settings(tiny_model, motion_file), Job())
    assert max(np.abs(a - b).max() for a, b in zip(painted(ws), painted(free), strict=True)) > 2 / 255
