"""Web UI without a browser: widget values -> Settings, the path rules, the background runner, actions.

Needs neither gradio nor a browser (the page itself is tested in test_ui_browser.py).
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_workspace, moving_frames
from vid2vid import config
from vid2vid.core.errors import BadInput, Interrupted, ModelNotFound, Vid2VidError
from vid2vid.ui import actions, form, paths
from vid2vid.ui.runner import Runner, error_message


@pytest.fixture
def root(tmp_path):
    return paths.cache_root(tmp_path / "cache")


# ---------------------------------------------------------------- paths

def test_inside_accepts_paths_in_the_cache(root):
    (root / "a").mkdir()
    assert paths.inside(root, "a/clip.mp4") == root / "a" / "clip.mp4"
    assert paths.inside(root, str(root / "a" / "x.mp4")) == root / "a" / "x.mp4"
    assert paths.inside(root, "a/../b.mp4") == root / "b.mp4"          # '..' that stays inside is fine


@pytest.mark.parametrize("text", ["../clip.mp4", "a/../../clip.mp4", "/etc/passwd", "..", "~/../../etc/passwd/.."])
def test_inside_refuses_paths_outside(root, text):
    if text.startswith("~"):
        text = os.path.expanduser("~") + "/../.."      # an absolute path above the cache, however spelled
    with pytest.raises(BadInput, match="outside the cache folder"):
        paths.inside(root, text)


def test_inside_follows_symlinks_out_of_the_cache(root, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    (root / "link.txt").symlink_to(secret)
    (root / "dirlink").symlink_to(tmp_path)
    with pytest.raises(BadInput, match="outside"):
        paths.inside(root, "link.txt")
    with pytest.raises(BadInput, match="outside"):
        paths.existing_file(root, "dirlink/secret.txt")


@pytest.mark.parametrize("text", ["", "   ", None, "a\x00b"])
def test_inside_refuses_empty_and_nul(root, text):
    with pytest.raises(BadInput):
        paths.inside(root, text)


def test_existing_file_must_exist(root):
    with pytest.raises(BadInput, match="does not exist"):
        paths.existing_file(root, "missing.mp4")
    (root / "folder").mkdir()
    with pytest.raises(BadInput, match="does not exist"):
        paths.existing_file(root, "folder")


def test_model_spec_rules(root, tmp_path, monkeypatch):
    (root / "models" / "tiny").mkdir(parents=True)
    (root / "models" / "m.safetensors").write_bytes(b"x")
    # inside the cache: the resolved absolute path
    assert paths.model_spec(root, "models/tiny") == str(root / "models" / "tiny")
    assert paths.model_spec(root, str(root / "models" / "m.safetensors")) == str(root / "models" / "m.safetensors")
    # names and hub ids pass through as names
    assert paths.model_spec(root, "rife", names=("rife", "blend")) == "rife"
    assert paths.model_spec(root, "Intel/dpt-hybrid-midas") == "Intel/dpt-hybrid-midas"
    assert paths.model_spec(root, "") == ""
    # outside the cache, or neither path nor name nor hub id
    for bad in ("../m.safetensors", "/etc/passwd", str(tmp_path), "models/../../x"):
        with pytest.raises(BadInput, match="outside the cache"):
            paths.model_spec(root, bad)
    with pytest.raises(BadInput, match="neither"):
        paths.model_spec(root, "model.safetensors", names=("rife",))
    # a hub id that is also a folder relative to the server's working folder would be read from there
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    with pytest.raises(BadInput, match="outside the cache"):
        paths.model_spec(root, "owner/name")


def test_model_list_keeps_lora_weights(root):
    (root / "lora.safetensors").write_bytes(b"x")
    got = paths.model_list(root, "lora.safetensors:0.6\n\n  lora.safetensors  \n", "LoRA")
    assert got == [f"{root / 'lora.safetensors'}:0.6", str(root / "lora.safetensors")]
    with pytest.raises(BadInput, match="outside"):
        paths.model_list(root, "../lora.safetensors:0.5", "LoRA")


def test_workspace_rules(root):
    make_workspace(root / "ws1", moving_frames(3))
    (root / "plain").mkdir()
    assert paths.workspace(root, "ws1").root == root / "ws1"
    assert paths.list_workspaces(root) == ["ws1"]
    for bad, msg in (("", "no workspace"), ("ws1/frames", "folder name"), ("..", "folder name"),
                     ("/tmp", "folder name"), ("plain", "does not exist"), ("nope", "does not exist")):
        with pytest.raises(BadInput, match=msg):
            paths.workspace(root, bad)


@pytest.mark.parametrize("original, expected", [
    ("my clip; rm -rf.mp4", "my_clip_rm_-rf.mp4"),
    ("../../etc/passwd.MP4", "passwd.mp4"),
    ("C:\\Users\\me\\a b.webm", "a_b.webm"),
    ("..mkv", "video.mkv"),
    ("日本語.mov", "日本語.mov"),
])
def test_upload_names_are_sanitised(original, expected):
    assert paths.upload_name(original) == expected


@pytest.mark.parametrize("original", ["run.sh", "clip.mp4.exe", "noext"])
def test_upload_refuses_non_videos(original):
    with pytest.raises(BadInput, match="does not look like a video"):
        paths.upload_name(original)


def test_store_upload_copies_into_uploads(root, tmp_path):
    src = tmp_path / "tmpupload" / "x.bin"
    src.parent.mkdir()
    src.write_bytes(b"\x00\x01video")
    dest = paths.store_upload(root, src, "../evil name.mp4")
    assert dest == root / "uploads" / "evil_name.mp4"
    assert dest.read_bytes() == b"\x00\x01video"
    assert paths.relative(root, dest) == "uploads/evil_name.mp4"
    with pytest.raises(BadInput, match="did not arrive"):
        paths.store_upload(root, tmp_path / "gone.mp4", "gone.mp4")


# ---------------------------------------------------------------- form -> settings

def test_every_widget_key_is_a_setting():
    keys = set(form.all_keys())
    assert set(form.LABELS) <= keys
    assert set(form.MODEL_FIELDS) <= keys and set(form.LIST_PATH_FIELDS) <= keys


def test_choices_show_the_seed_labels_and_return_tokens():
    assert form.choices(["euler-a", "default", "shift-mean-std", "crop"]) == [
        ("Euler a", "euler-a"), ("(use default)", "default"), ("shift mean & std", "shift-mean-std"),
        ("Crop and resize", "crop")]
    for tokens in (config.SAMPLERS, config.SCHEDULES, config.FDC_METHODS, config.FRAME_MODES, config.RESIZE_MODES):
        assert [t for _, t in form.choices(tokens)] == list(tokens)


def test_coerce_types():
    assert form.coerce("img2img.steps", 4.0) == 4 and isinstance(form.coerce("img2img.steps", 4.0), int)
    assert form.coerce("img2img.denoise", "0.5") == 0.5
    assert form.coerce("img2img.prompt", "  1girl  ") == "1girl"
    assert form.coerce("run.overwrite", 0) is False
    assert form.coerce("img2img.loras", "a\n\n b \n") == ["a", "b"]
    for key, bad, msg in (("img2img.steps", 4.5, "whole number"), ("img2img.seed", None, "empty"),
                          ("img2img.cfg", "abc", "not a number"), ("img2img.cfg", float("nan"), "finite")):
        with pytest.raises(BadInput, match=msg):
            form.coerce(key, bad)


def test_settings_from_form_maps_every_field(root):
    (root / "tiny").mkdir()
    values = {
        "run.overwrite": False,
        "extract.frames": "i", "extract.fps": 6.0, "extract.format": "webp", "extract.audio": True,
        "img2img.model": "tiny", "img2img.prompt": "(masterpiece:1.3), 1girl", "img2img.negative": "bad",
        "img2img.sampler": "dpm++-2m", "img2img.steps": 12.0, "img2img.denoise": 0.5, "img2img.schedule": "karras",
        "img2img.sigma_min": 0.2, "img2img.sigma_max": 2.0, "img2img.init_noise": 0.9, "img2img.cfg": 5.5,
        "img2img.seed": 42.0, "img2img.width": 512.0, "img2img.height": 256.0, "img2img.resize": "fill",
        "img2img.batch_size": 2.0,
        "correct.method": "seed", "correct.fdc": "clip", "correct.delta_mask": "depth",
        "correct.spatial_mask": "motion",
        "correct.motion_highext": 9.0, "correct.motion_lowcut": 40.0, "correct.depth_lowcut": 10.0,
        "correct.flow_strength": 0.5, "correct.flow_mask": "motion",
        "export.source": "img2img", "export.format": "webm", "export.audio": True, "export.crf": 30.0,
        "upscale.model": "lanczos-x2", "interpolate.model": "blend", "interpolate.ratio": 1.5,
    }
    s = form.settings_from_form(values, root)
    expected = config.Settings()
    expected.run.overwrite = False
    expected.run.cache = str(root)
    expected.extract = config.ExtractSettings(frames="i", fps=6.0, format="webp", audio=True)
    i = expected.img2img
    i.model, i.prompt, i.negative, i.sampler, i.steps, i.denoise = str(root / "tiny"), "(masterpiece:1.3), 1girl", \
        "bad", "dpm++-2m", 12, 0.5
    i.schedule, i.sigma_min, i.sigma_max, i.init_noise, i.cfg, i.seed = "karras", 0.2, 2.0, 0.9, 5.5, 42
    i.width, i.height, i.resize, i.batch_size = 512, 256, "fill", 2
    expected.correct = config.CorrectSettings(fdc="clip", delta_mask="depth", spatial_mask="motion",
                                              motion_highext=9, motion_lowcut=40, depth_lowcut=10, method="stats",
                                              flow_strength=0.5, flow_mask="motion")
    expected.export = config.ExportSettings(source="img2img", format="webm", audio=True, crf=30, output="")
    expected.upscale.model = "lanczos-x2"
    expected.interpolate.model, expected.interpolate.ratio = "blend", 1.5
    assert config.to_dict(s) == config.to_dict(expected)
    assert form.form_values(s, ["img2img.steps", "img2img.loras"]) == {"img2img.steps": 12, "img2img.loras": ""}


def test_settings_from_form_checks_only_the_sections_asked_for(root):
    values = {"extract.fps": 4.0, "img2img.width": 65.0, "img2img.model": "../outside.safetensors"}
    s = form.settings_from_form(values, root, sections=("extract",))
    # img2img is not validated: a value that reads is kept (the workspace's saved settings show the whole
    # page), one that breaks a path rule keeps the default and is never handed on
    assert s.extract.fps == 4.0 and s.img2img.width == 65
    assert s.img2img.model == config.Img2ImgSettings().model
    with pytest.raises(BadInput, match="outside the cache"):
        form.settings_from_form(values, root, sections=("img2img",))
    with pytest.raises(BadInput, match="multiple of 8"):
        form.settings_from_form({"img2img.width": 65.0}, root, sections=("img2img",))
    with pytest.raises(BadInput, match="must be odd"):
        form.settings_from_form({"correct.motion_highext": 8.0}, root, sections=("correct",))


def test_export_output_cannot_be_set_from_the_page(root):
    base = config.Settings()
    base.export.output = "/etc/evil.mp4"
    s = form.settings_from_form({"export.output": "/tmp/x.mp4"}, root, base=base)
    assert s.export.output == ""


# ---------------------------------------------------------------- runner

def test_error_messages_are_one_line_without_traceback():
    assert error_message(BadInput("--steps 0 is out of range; use 1..150")) == \
        "Error: --steps 0 is out of range; use 1..150"
    assert error_message(ModelNotFound("model 'x' not found")).startswith("Error: model 'x'")
    assert error_message(Vid2VidError("disk full\nmore")) == "Failed: disk full"
    shown = error_message(Interrupted("interrupted; finished frames are kept - run the same command again to resume"))
    assert shown.startswith("Interrupted: finished frames are kept") and "command" not in shown
    msg = error_message(ValueError("bad shape (3,)"))
    assert msg == "Failed: ValueError: bad shape (3,) (details in the server log)"


def test_runner_reports_progress_and_results():
    runner = Runner()

    def work(job):
        tr = job.tracker("demo", 3)
        for _ in range(3):
            tr.advance()
        job.say("demo: finished")
        return {"frames": 3}

    task = runner.run("demo", work, timeout=10)
    assert task.done.is_set() and task.result == {"frames": 3} and task.error is None
    assert (task.event.done, task.event.total, task.fraction) == (3, 3, 1.0)
    assert task.status() == "demo: finished"


def test_runner_interrupt_stops_after_the_current_frame():
    runner = Runner()
    started, written = threading.Event(), []

    def work(job):
        tr = job.tracker("slow", 1000)
        for i in range(1000):
            started.set()
            time.sleep(0.01)
            written.append(i)
            tr.advance()

    task = runner.start("slow", work)
    assert started.wait(5)
    with pytest.raises(BadInput, match="still running"):
        runner.start("other", lambda job: None)
    assert runner.interrupt().startswith("Interrupting slow")
    assert task.done.wait(5)
    assert isinstance(task.error, Interrupted)
    assert task.status().startswith("Interrupted:")
    assert len(written) < 1000 and task.event.done == len(written)
    assert runner.interrupt() == "Nothing is running."
    assert runner.run("after", lambda job: 7, timeout=5).result == 7     # the runner is free again


def test_runner_turns_unexpected_errors_into_a_line():
    def work(job):
        return {"a": 1}["b"]

    task = Runner().run("boom", work, timeout=5)
    assert task.status() == "Failed: KeyError: 'b' (details in the server log)"


# ---------------------------------------------------------------- actions

def test_mask_grid_is_the_library_sheet_of_the_source_delta(root):
    from vid2vid.temporal import fdc, fdc_debug

    frames = moving_frames(4, width=32, height=24)
    make_workspace(root / "ws", frames)
    c = config.CorrectSettings(motion_highext=3)
    sheet = actions.mask_grid(root, "ws", 3, c, tile_width=32)
    from vid2vid.core.imageops import read_image
    written = [read_image(p) for p in sorted((root / "ws" / "frames").glob("*.png"))]
    direct = fdc_debug.motion_mask_grid(fdc.frame_delta(written[1], written[2]), 3, tile_width=32)
    assert np.array_equal(sheet, direct)
    with pytest.raises(BadInput, match="from 2 to 4"):
        actions.mask_grid(root, "ws", 1, c)


def test_fdc_sheet_needs_generated_frames(root):
    make_workspace(root / "ws", moving_frames(3, width=16, height=16))
    with pytest.raises(BadInput, match="two generated frames"):
        actions.fdc_sheet(root, "ws", 2, config.Settings())


def test_real_sigmas_text_matches_the_formula():
    s = config.Img2ImgSettings(schedule="exponential", steps=4, denoise=0.75, sigma_min=0.1, sigma_max=1.2)
    text = actions.real_sigmas_text(s)
    shown = [float(v) for v in text[text.index("[") + 1:text.index("]")].split(",")]
    expected = [1.2 * (0.1 / 1.2) ** (i / 3) for i in range(4)] + [0.0]
    assert np.allclose(shown, expected, atol=1e-4)
    # linear, 10 steps, denoise 0.5: t_enc = 5, the last 6 values of linspace(1.2, 0.1, 10) + [0]
    s = config.Img2ImgSettings(schedule="linear", steps=10, denoise=0.5, sigma_min=0.1, sigma_max=1.2)
    text = actions.real_sigmas_text(s)
    shown = [float(v) for v in text[text.index("[") + 1:text.index("]")].split(",")]
    assert np.allclose(shown, list(np.linspace(1.2, 0.1, 10)[4:]) + [0.0], atol=1e-4)


def test_actions_refuse_paths_outside_the_cache(root, tmp_path):
    from vid2vid.core.progress import Job

    (tmp_path / "clip.mp4").write_bytes(b"not really")
    with pytest.raises(BadInput, match="outside the cache"):
        actions.extract(root, "../clip.mp4", config.Settings(), Job())
    with pytest.raises(BadInput, match="outside the cache"):
        actions.probe_text(root, str(tmp_path / "clip.mp4"))
    with pytest.raises(BadInput, match="folder name"):
        actions.run_stage(root, "../cache", "delta", config.Settings(), Job())
    assert not any(tmp_path.glob("clip-*"))          # nothing was written beside the outside file


def test_export_writes_inside_the_workspace(root):
    from vid2vid.core.progress import Job

    make_workspace(root / "ws", moving_frames(4, width=16, height=16), fps=4)
    s = config.Settings()
    s.export.source, s.export.format, s.export.output = "frames", "webm", "/tmp/elsewhere.webm"
    info = actions.export(root, "ws", s, Job())
    assert Path(info["output"]) == root / "ws" / "synth-frames.webm"
    assert (root / "ws" / "synth-frames.webm").is_file()


def test_loopback_check():
    from vid2vid.ui.launch import is_loopback
    from vid2vid.ui.page import progress_html

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")
    assert "value='50.0'" in progress_html(0.5, "x") and "<progress" not in progress_html(None)


def test_top_tags_rank_the_mean_score_over_frames(root):
    import json

    make_workspace(root / "ws", moving_frames(3, width=16, height=16))
    per_frame = {"00001.png": {"1girl": 0.9, "smile": 0.5}, "00002.png": {"1girl": 0.7, "hat": 0.9},
                 "00003.png": {"1girl": 0.8, "smile": 0.8}}
    (root / "ws" / "tags.json").write_text(json.dumps(per_frame))
    # means over the 3 frames, a frame without the tag counting 0: 1girl 0.8, smile 0.433, hat 0.3
    got = actions.top_tags(root, "ws", 2)
    assert [name for name, _ in got] == ["1girl", "smile"]
    assert np.allclose([score for _, score in got], [0.8, 1.3 / 3])
    assert actions.top_tags(root, "ws", 10)[-1][0] == "hat"
