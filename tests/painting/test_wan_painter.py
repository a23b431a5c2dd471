"""The Wan VACE painter in the img2img stage: every frame painted, step state, kill + resume, refusals."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from vid2vid.core.errors import BadInput, Interrupted, ModelNotFound
from vid2vid.core.progress import Job


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory):
    from vid2vid.diffusion.wan_tiny import make_tiny_wan_vace

    return make_tiny_wan_vace(tmp_path_factory.mktemp("wan") / "tiny-wan-vace")


def wan_settings(video, **kw):
    from vid2vid.config import Img2ImgSettings, Settings

    st = Settings()
    base = dict(video_model=str(video), width=64, height=48, steps=2, cfg=3.0, prompt="a cat", negative="blurry",
                context_length=9, context_overlap=5)
    st.img2img = dataclasses.replace(Img2ImgSettings(), **{**base, **kw})
    st.correct.fdc = "none"
    return st


def read_all(folder):
    from test_img2img import _read_all

    return _read_all(folder)


def test_stage_paints_every_frame_and_resumes_with_the_same_bits(workspace_factory, tiny_wan):
    from conftest import moving_frames
    from vid2vid.stages import img2img as stage

    src = moving_frames(11)
    full, cut = workspace_factory(src, "full"), workspace_factory(src, "cut")
    info = stage.run(full, wan_settings(tiny_wan), Job())
    assert info["frames"] == 11 and info["painter"] == "wan-vace" and info["context"] == [9, 5]
    state = json.loads((full.root / "img2img" / "windows-state.json").read_text())
    assert state["steps_done"] == state["steps_total"] == 2 and state["windows"] == [[1, 9], [5, 11]]
    assert not (full.root / "img2img" / "windows-latents.pt").exists()

    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.stage == "img2img steps" and ev.done >= 1 else None
    with pytest.raises(Interrupted):
        stage.run(cut, wan_settings(tiny_wan), job)
    assert json.loads((cut.root / "img2img" / "windows-state.json").read_text())["steps_done"] == 1
    assert not list((cut.root / "img2img").glob("*.png"))
    stage.run(cut, wan_settings(tiny_wan), Job())
    a, b = read_all(full.root / "img2img"), read_all(cut.root / "img2img")
    assert len(a) == len(b) == 11 and all(np.array_equal(x, y) for x, y in zip(a, b))

    other = stage.run(workspace_factory(src, "other"), wan_settings(tiny_wan, video_control="canny"), Job())
    assert other["frames"] == 11
    c = read_all(workspace_factory(src, "other").root / "img2img")
    assert max(np.abs(x - y).max() for x, y in zip(a, c)) > 0          # another control video, other frames


def test_reference_image_changes_the_frames(workspace_factory, tiny_wan, tmp_path):
    from conftest import moving_frames
    from vid2vid.core.imageops import write_image
    from vid2vid.stages import img2img as stage

    src = moving_frames(5)
    ref = tmp_path / "look.png"
    write_image(ref, np.random.default_rng(3).random((40, 40, 3)).astype(np.float32))
    plain = workspace_factory(src, "plain")
    stage.run(plain, wan_settings(tiny_wan), Job())
    with_ref = workspace_factory(src, "ref")
    stage.run(with_ref, wan_settings(tiny_wan, video_reference=str(ref)), Job())
    a, b = read_all(plain.root / "img2img"), read_all(with_ref.root / "img2img")
    assert max(np.abs(x - y).max() for x, y in zip(a, b)) > 0


@pytest.mark.parametrize("change, message", [
    (dict(context_length=16, context_overlap=5), "4n\\+1"),
    (dict(context_length=17, context_overlap=4), "multiple of 4"),
    (dict(video_reference="/no/such/look.png"), "video.reference.* does not exist"),
    (dict(controlnet=["x"]), "ControlNets belong to image UNets"),
    (dict(width=72), "multiples of 16"),
])
def test_bad_settings_are_refused_before_anything_changes(workspace_factory, tiny_wan, change, message):
    from conftest import moving_frames
    from vid2vid import config
    from vid2vid.stages import img2img as stage

    if "controlnet" in change:
        change = {"controlnet": [config.ControlNetSettings(model="cn", control="canny")]}
    ws = workspace_factory(moving_frames(5), "bad")
    with pytest.raises(BadInput, match=message):
        st = wan_settings(tiny_wan, **change)
        stage.check(st)
        stage.run(ws, st, Job())
    assert not (ws.root / "img2img").exists()


def test_model_files_that_are_not_wan_vace_are_refused(tiny_wan, tiny_model, tmp_path):
    from vid2vid.diffusion.wan_loading import check_video_model_spec

    with pytest.raises(BadInput, match="StableDiffusionPipeline, not a video model"):
        check_video_model_spec(str(tiny_model))
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"x")
    with pytest.raises(BadInput, match="single file"):
        check_video_model_spec(str(single))
    index = json.loads((tiny_wan / "model_index.json").read_text())
    variant = tmp_path / "t2v"
    variant.mkdir()
    (variant / "model_index.json").write_text(json.dumps({**index, "_class_name": "WanPipeline"}))
    with pytest.raises(BadInput, match="another Wan variant"):
        check_video_model_spec(str(variant))
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(tiny_wan, partial, ignore=shutil.ignore_patterns("text_encoder"))
    with pytest.raises(ModelNotFound, match="lacks the UMT5 text encoder"):
        check_video_model_spec(str(partial))


@pytest.mark.slow
@pytest.mark.ray
def test_windows_on_ray_actors_give_the_same_bits(workspace_factory, tiny_wan):
    import torch

    from conftest import moving_frames
    from vid2vid.painting import raypool
    from vid2vid.stages import img2img as stage

    ray = pytest.importorskip("ray")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        src = moving_frames(11)
        local, remote = workspace_factory(src, "local"), workspace_factory(src, "ray")
        stage.run(local, wan_settings(tiny_wan), Job())
        st = wan_settings(tiny_wan)
        st.ray.enabled, st.ray.actors = True, 2
        stage.run(remote, st, Job())
    finally:
        raypool.close_pools()
        ray.shutdown()
        torch.set_num_threads(threads)
    assert [p.read_bytes() for p in local.frames("img2img")] == [p.read_bytes() for p in remote.frames("img2img")]


def test_command_line_bad_input_is_one_line_and_exit_2(workspace_factory, tiny_wan, tiny_model, capsys):
    from conftest import moving_frames
    from vid2vid.cli.main import main

    ws = workspace_factory(moving_frames(5), "cli")
    base = ["img2img", "-w", str(ws.root), "--video-model", str(tiny_wan), "--width", "64", "--height", "48"]
    for extra, words in ((["--context-length", "16", "--context-overlap", "5"], "--context-length 16"),
                         (["--controlnet", "cn.pth", "--control", "canny"], "--controlnet"),
                         (["--video-reference", "missing.png"], "--video-reference 'missing.png' does not exist"),
                         (["--control", "depth", "--control", "canny"], "give one --control"),
                         (["--control", "sketch"], "sketch")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert main(["img2img", "-w", str(ws.root), "--video-model", str(tiny_model)]) == 2
    assert "StableDiffusionPipeline, not a video model" in capsys.readouterr().err
    assert not (ws.root / "img2img").exists()


def test_control_flag_names_the_video_models_control(tmp_path):
    from vid2vid import config
    from vid2vid.cli.options import video_control_from_flag

    s = config.Settings()
    video_control_from_flag(s, ["depth"])
    assert s.img2img.video_control == "depth"
    video_control_from_flag(s, [str(tmp_path)])
    assert (s.img2img.video_control, s.img2img.video_control_folder) == ("folder", str(tmp_path))


def test_comfyui_split_files_paint_the_folders_frames_and_a_missing_part_is_one_line(workspace_factory, tiny_wan,
                                                                                      tmp_path, capsys):
    """`make-tiny-model --video-model --single-file` writes the same weights in ComfyUI's layout; through the
    CLI they paint the same bytes as the diffusers folder; without the VAE file: one line, exit 2, nothing lost."""
    import shutil

    from conftest import moving_frames
    from vid2vid.cli.main import main

    assert main(["make-tiny-model", str(tmp_path / "ComfyUI"), "--video-model", "--single-file"]) == 0
    transformer = next((tmp_path / "ComfyUI" / "models" / "diffusion_models").glob("*.safetensors"))
    src = moving_frames(9)
    flags = ["--width", "64", "--height", "48", "--steps", "2", "--cfg", "3", "--prompt", "a cat",
             "--context-length", "9", "--context-overlap", "5"]
    runs, spaces = {}, {}
    for name, spec in (("folder", tiny_wan), ("file", transformer)):
        spaces[name] = ws = workspace_factory(src, name)
        assert main(["img2img", "-w", str(ws.root), "--video-model", str(spec), *flags]) == 0
        runs[name] = [p.read_bytes() for p in ws.frames("img2img")]
    assert len(runs["folder"]) == 9 and runs["file"] == runs["folder"]
    shutil.rmtree(tmp_path / "ComfyUI" / "models" / "vae")
    capsys.readouterr()
    assert main(["img2img", "-w", str(spaces["file"].root), "--video-model", str(transformer), *flags,
                 "--steps", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--video-model" in err[0] and "the Wan 2.1 VAE is missing" in err[0], err
    assert [p.read_bytes() for p in spaces["file"].frames("img2img")] == runs["file"]


def test_the_stage_key_follows_each_split_file(tmp_path):
    """Replacing the UMT5 or VAE file beside the same transformer file changes the img2img key (paints again)."""
    import os

    from vid2vid.diffusion.wan_tiny import write_comfy_layout
    from vid2vid.painting.painters.wan_vace import key_params

    transformer = write_comfy_layout(tmp_path / "ComfyUI")
    st = wan_settings(transformer)
    first = key_params(st)
    assert key_params(wan_settings(tmp_path / "ComfyUI")) == first          # another spelling, the same files
    vae = next((tmp_path / "ComfyUI" / "models" / "vae").glob("*.safetensors"))
    stat = vae.stat()
    os.utime(vae, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert key_params(st) != first and key_params(st)["video_model"]["vae"]["path"] == str(vae)


def test_first_painted_reference_is_frame_one_painted_by_the_image_model(workspace_factory, tiny_wan, tiny_model):
    from conftest import moving_frames
    from vid2vid.core.imageops import read_image
    from vid2vid.stages import img2img as stage

    src = moving_frames(5)
    plain = workspace_factory(src, "plain")
    stage.run(plain, wan_settings(tiny_wan), Job())
    first = workspace_factory(src, "first")
    st = wan_settings(tiny_wan, video_reference="first-painted", model=str(tiny_model))
    messages = []
    stage.run(first, st, Job(log=messages.append))
    painted = first.root / "img2img.reference" / "first-painted.png"
    assert painted.is_file() and read_image(painted).shape == (48, 64, 3)
    assert any("painting frame 1 with the image model first" in m for m in messages)
    a, b = read_all(plain.root / "img2img"), read_all(first.root / "img2img")
    assert max(np.abs(x - y).max() for x, y in zip(a, b)) > 0
