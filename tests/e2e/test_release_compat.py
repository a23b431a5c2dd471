"""Workspaces made by release 0.1.0 stay valid: unchanged settings keep their stage keys, so nothing is redone.

tests/data/release-0.1.0/ was written by the release's own code (tests/data/make_release_workspace.py):
a workspace whose img2img stage is complete and a `vid2vid correct` output folder, both made with the
correction method under its old name (`seed`). The settings name the model by a relative path
(tiny-sd), which the tests put back with the session's tiny model, since a stage checks its model
before it starts; a stage that wrongly starts over shows in the frames' file times and the run log.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vid2vid.cli import main as cli

FIXTURE = Path(__file__).parents[1] / "data" / "release-0.1.0"
# the method line of the release's settings file as the user may now write it
METHOD_LINES = {"old name": 'method = "seed"', "new name": 'method = "stats"', "default": ""}


@pytest.fixture
def release(tmp_path, monkeypatch):
    root = tmp_path / "release"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def release_with_model(release, tiny_model):
    (release / "tiny-sd").symlink_to(tiny_model, target_is_directory=True)
    return release


def _settings(root: Path, method: str) -> Path:
    text = (root / "settings.toml").read_text().replace('method = "seed"', METHOD_LINES[method])
    path = root / f"settings-{method.replace(' ', '-')}.toml"
    path.write_text(text)
    return path


def _stamps(*folders: Path) -> dict[str, int]:
    """When each frame file was written (the correct folder's record is rewritten, unchanged, on every run)."""
    return {str(p): p.stat().st_mtime_ns for f in folders for p in sorted(f.glob("*.png"))}


@pytest.mark.parametrize("method", METHOD_LINES)
def test_release_workspace_img2img_is_not_redone(release_with_model, method, capsys):
    release = release_with_model
    ws = release / "ws"
    manifest = json.loads((ws / "manifest.json").read_text())
    stamps = _stamps(ws / "img2img", ws / "motionmask")
    assert cli.main(["img2img", "-w", str(ws), "--config", str(_settings(release, method))]) == 0
    assert "already done" in capsys.readouterr().err
    after = json.loads((ws / "manifest.json").read_text())
    assert after["stages"]["img2img"]["key"] == manifest["stages"]["img2img"]["key"]
    old = manifest["stages"]["img2img"]["params"]                  # recorded now under the current name
    assert after["stages"]["img2img"]["params"] == {**old, "correct": {**old["correct"], "method": "stats"}}
    assert _stamps(ws / "img2img", ws / "motionmask") == stamps
    events = [json.loads(line) for line in (ws / "log.jsonl").read_text().splitlines()]
    assert [e.get("state") for e in events if e["event"] == "stage"] == ["done"]


@pytest.mark.parametrize("method", METHOD_LINES)
def test_release_correct_folder_is_not_redone(release, method, capsys):
    ws, out = release / "ws", release / "corrected"
    record = json.loads((out / "correct.json").read_text())
    stamps = _stamps(out)
    argv = ["correct", "--source", str(ws / "frames"), "--generated", str(ws / "img2img"), "--out", str(out),
            "--config", str(_settings(release, method))]
    assert cli.main(argv) == 0
    assert "(0 written, 3 kept" in capsys.readouterr().out
    now = json.loads((out / "correct.json").read_text())
    assert now["key"] == record["key"] and _stamps(out) == stamps
    assert now["params"] == {**record["params"], "method": "stats"}      # the record reads as settings do


def test_old_method_name_on_the_command_line_is_the_new_one(release, capsys):
    ws, out = release / "ws", release / "corrected"
    argv = ["correct", "--source", str(ws / "frames"), "--generated", str(ws / "img2img"), "--out", str(out)]
    for method in ("seed", "stats"):
        assert cli.main([*argv, "--method", method]) == 0
        assert capsys.readouterr().out.rstrip().endswith("method stats)")


def test_seed_is_an_alias_of_stats_however_the_method_is_set(tmp_path):
    from vid2vid import config
    from vid2vid.temporal.correction import key_params

    assert list(config.CORRECT_METHODS) == ["stats", "flow"]              # what help and the page list
    assert "seed" in config.CORRECT_METHODS and "seeds" not in config.CORRECT_METHODS
    c = config.CorrectSettings(method="seed")
    assert c.method == "stats"
    c.method = "flow"
    c.method = "seed"
    assert c.method == "stats" and config.CorrectSettings().method == "stats"
    (tmp_path / "s.toml").write_text('[correct]\nmethod = "seed"\n')
    assert config.load_toml(tmp_path / "s.toml").correct.method == "stats"
    # what people read says stats; the stage key hashes it under its first name, seed
    from vid2vid.core.workspace import params_key

    assert key_params(c)["method"] == "stats" and key_params(config.CorrectSettings(method="flow"))["method"] == "flow"
    assert params_key({"correct": key_params(c)}) == params_key({"correct": {**key_params(c), "method": "seed"}})
    assert params_key({"method": "flow"}) != params_key({"method": "seed"})
    from vid2vid.core.workspace import KEY_FIRST_NAMES

    assert KEY_FIRST_NAMES["method"] == {new: old for old, new in config.CORRECT_METHODS.aliases.items()}
    from vid2vid.temporal.correction import FLOW_ONLY_FIRST  # stats does not read them: their first values

    assert {k: v for k, v in key_params(c).items() if k != "method"} == \
        {k: v for k, v in {**config.to_dict(c), **FLOW_ONLY_FIRST}.items() if k != "method"}
    with pytest.raises(config.BadInput, match="'seeds' is not known; use one of: stats, flow"):
        config.CorrectSettings(method="seeds").validate()


def test_a_wrong_method_on_the_command_line_is_told_the_new_names(tmp_path, capsys):
    argv = ["correct", "--source", str(tmp_path), "--generated", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--method", "seeds"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "is not one of: stats, flow" in err and "'seed'" not in err.replace("'seeds'", "")


def test_help_lists_the_new_method_name(capsys):
    with pytest.raises(SystemExit):
        cli.main(["correct", "--help"])
    assert "{stats,flow}" in capsys.readouterr().out
