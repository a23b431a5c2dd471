"""A workspace remembers the settings it was worked with (`pipeline/saved.py`): every stage writes
them when it starts, a stage command on the workspace starts from them, then --config, then flags."""
from __future__ import annotations

import pytest
from PIL import Image

from vid2vid import config
from vid2vid.cli.main import main
from vid2vid.config import Settings
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline import runner, saved
from vid2vid.video.democlip import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("saved") / "clip.mp4", width=64, height=48, fps=8, seconds=0.5,
                     audio=False)


def test_saved_settings_none_without_the_file_and_round_trip(tmp_path):
    assert saved.saved_settings(tmp_path) is None
    s = Settings()
    s.img2img.width, s.img2img.single, s.run.overwrite = 256, 3, False
    saved.save_settings(tmp_path, s)
    assert saved.saved_settings(tmp_path) == s                    # as saved, one-offs included
    start = saved.starting_settings(tmp_path)
    assert start.img2img.width == 256
    assert start.img2img.single == 0 and start.run.overwrite is True  # one-offs are not inherited


def test_config_file_sets_only_its_own_keys_over_the_saved_ones(tmp_path):
    s = Settings()
    s.img2img.width, s.img2img.prompt = 256, "old"
    saved.save_settings(tmp_path, s)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[img2img]\nprompt = "new"\n', encoding="utf-8")
    start = saved.starting_settings(tmp_path, cfg)
    assert (start.img2img.width, start.img2img.prompt) == (256, "new")
    assert config.load_toml(cfg).img2img.width == Settings().img2img.width     # alone: over the defaults


def test_changes_name_each_setting_old_to_new():
    a, b = Settings(), Settings()
    a.img2img.width, a.img2img.height, a.img2img.single = 256, 144, 5
    got = saved.changes(a, b, ("img2img", "correct"))
    assert got == ["{img2img.width} 256 -> 832", "{img2img.height} 144 -> 448"]   # the one-off is left out


def _stage(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def test_stage_commands_start_from_the_workspace_settings(tmp_path, clip, tiny_model, capsys):
    ws = tmp_path / "ws"
    assert main(["extract", str(clip), "-w", str(ws), "--fps", "4"]) == 0
    assert saved.saved_settings(ws).extract.fps == 4.0            # extract wrote what it ran with
    assert main(["delta", "-w", str(ws)]) == 0
    first = ["img2img", "-w", str(ws), "--model", str(tiny_model), "--prompt", "shapes", "--width", "64",
             "--height", "48", "--steps", "2"]
    assert main(first) == 0
    w = Workspace(ws)
    key = w.stage_record("img2img")["key"]
    # no --model, --width or --steps: all come from the workspace, so nothing is redone
    assert main(["img2img", "-w", str(ws)]) == 0
    assert Workspace(ws).stage_record("img2img")["key"] == key
    # --single paints the debug frame at the workspace's size, and is not remembered
    assert main(["img2img", "-w", str(ws), "--single", "1"]) == 0
    debug = sorted((ws / "img2img.debug").glob("*.png"))
    assert debug and Image.open(debug[0]).size == (64, 48)
    assert saved.starting_settings(ws).img2img.single == 0
    # a refusal names the changed settings in one line and keeps the saved ones
    code, err = _stage(["img2img", "-w", str(ws), "--width", "32", "--steps", "3", "--no-overwrite"], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "(--steps 2 -> 3, --width 64 -> 32)" in lines[0], err
    assert saved.saved_settings(ws).img2img.width == 64
    assert Workspace(ws).stage_record("img2img")["key"] == key


def test_run_stage_writes_the_settings_on_every_interface(tmp_path, clip):
    s = Settings()
    s.extract.fps = 2.0
    ws = Workspace(tmp_path / "ws")
    runner.run_stage("extract", ws, s, video=clip)
    assert saved.saved_settings(ws).extract.fps == 2.0
    assert runner.SETTINGS_FILE == saved.SETTINGS_FILE == "settings.toml"
