"""One way to run a stage: the stage table, `runner.run_stage`, and the settings' own metadata
reaching the command line, the TOML file and the page alike."""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from vid2vid import config
from vid2vid.cli.main import build_parser, flag_namer, main
from vid2vid.config import Settings, stagetable
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline import runner
from vid2vid.ui import actions, form
from vid2vid.video.democlip import make_clip


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("runner")
    clip = make_clip(d / "clip.mp4", width=64, height=48, fps=8, seconds=0.75, audio=False)
    return clip, tiny_model


def small(model) -> Settings:
    s = Settings()
    s.extract.fps = 4.0
    s.img2img.model, s.img2img.prompt = str(model), "shapes"
    s.img2img.width, s.img2img.height, s.img2img.steps = 64, 48, 2
    s.run.upscale = s.run.interpolate = False
    return s


def errors_logged(ws: Workspace) -> list[dict]:
    return [e for e in ws.events() if e.get("event") == "error"]


# ---------------------------------------------------------------- the table

def test_table_rows_are_consistent():
    names = [row.name for row in stagetable.STAGES]
    assert names[0] == "extract" and names[-1] == "export" and len(set(names)) == len(names)
    for row in stagetable.STAGES:
        assert set(row.sections) <= set(config.SECTIONS), row.name
        assert all(nxt in stagetable.BY_NAME for nxt in row.then)
        __import__(row.module)                      # every row names a real module with run()
        assert callable(sys.modules[row.module].run)
    # every --from token of export is a frame folder some stage makes
    assert {stagetable.by_frames(t).name for t in config.EXPORT_SOURCES} == {"extract", "img2img", "upscale",
                                                                         "interpolate"}
    outs = [o for row in stagetable.STAGES for o in row.outputs]
    assert len(outs) == len(set(outs)), "two stages own the same folder"


def test_export_source_follows_the_enabled_stages():
    s = Settings()
    assert stagetable.export_source(s) == "rife"
    s.run.interpolate = False
    assert stagetable.export_source(s) == "resr"
    s.run.upscale = False
    assert stagetable.export_source(s) == "img2img"


# ---------------------------------------------------------------- the three disagreements

def test_cli_img2img_then_run_on_the_same_settings_redoes_nothing(tmp_path, assets):
    """The flow method's adjustment (no in-loop statistics) applies on every interface, so the
    img2img stage key of `vid2vid img2img --config S` is the one `vid2vid run --config S` wants."""
    clip, model = assets
    s = small(model)
    s.correct.method = "flow"
    cfg = tmp_path / "s.toml"
    config.save_toml(s, cfg)
    ws = tmp_path / "ws"
    assert main(["extract", str(clip), "-w", str(ws), "--config", str(cfg)]) == 0
    assert main(["delta", "-w", str(ws), "--config", str(cfg)]) == 0
    assert main(["img2img", "-w", str(ws), "--config", str(cfg)]) == 0
    w = Workspace(ws)
    assert w.is_complete("img2img") and w.is_complete("flow")    # img2img's follow-up ran too
    before = {p.name: p.stat().st_mtime_ns for p in w.frames("img2img")}
    key = w.stage_record("img2img")["key"]
    assert main(["run", str(clip), "-w", str(ws), "--config", str(cfg)]) == 0
    w = Workspace(ws)
    assert w.stage_record("img2img")["key"] == key
    assert {p.name: p.stat().st_mtime_ns for p in w.frames("img2img")} == before
    fresh = [e["stage"] for e in w.events() if e.get("event") == "stage" and e.get("state") == "fresh"]
    assert fresh.count("img2img") == 1 and fresh.count("flow") == 1 and fresh.count("extract") == 1


def test_cli_failure_lands_in_the_run_log(tmp_path, assets, capsys):
    clip, _ = assets
    ws = tmp_path / "ws"
    assert main(["extract", str(clip), "-w", str(ws), "--fps", "4"]) == 0
    assert main(["upscale", "-w", str(ws), "--model", "lanczos-x2"]) == 2     # nothing generated yet
    logged = errors_logged(Workspace(ws))
    assert logged and logged[-1]["stage"] == "upscale" and logged[-1]["exit_code"] == 2


def test_ui_failure_lands_in_the_run_log(tmp_path, assets):
    clip, _ = assets
    root = tmp_path / "cache"
    root.mkdir()
    (root / "clip.mp4").write_bytes(clip.read_bytes())
    s = form.settings_from_form({"extract.fps": 4.0}, root, sections=["extract"])
    info = actions.extract(root, "clip.mp4", s, Job())
    with pytest.raises(BadInput):
        actions.run_stage(root, info["workspace"], "interpolate", s, Job())
    logged = errors_logged(Workspace(root / info["workspace"]))
    assert logged and logged[-1]["stage"] == "interpolate"


def test_no_model_has_one_source_and_each_interface_words_it(tmp_path, assets):
    clip, _ = assets
    root = tmp_path / "cache"
    ws = Workspace(root / "w")
    s = small("")
    runner.run_stage("extract", ws, s, Job(), video=clip)
    messages = []
    for call in (lambda: runner.run_stage("img2img", ws, s, Job()),
                 lambda: runner.run(clip, s, workspace=ws.root)):
        with pytest.raises(BadInput) as err:
            call()
        messages.append(err.value.template)
    with pytest.raises(BadInput) as err:
        actions.img2img(root, "w", s, Job())
    messages.append(err.value.template)
    assert len(set(messages)) == 1 and "{img2img.model}" in messages[0]
    assert "--model" in err.value.render(flag_namer("img2img"))
    page = form.error_text(err.value)
    assert "Model" in page and "--" not in page


# ---------------------------------------------------------------- settings metadata

def _option_strings(sp: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in sp._actions for o in a.option_strings}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_field_reaches_cli_toml_and_page():
    """Each setting is an option of `vid2vid run` (and of its stage's command), a TOML key, and
    a page widget label unless it is marked as not shown there."""
    subs = _subparsers(build_parser())
    run_opts = _option_strings(subs["run"])
    dumped = config.dumps_toml(Settings())
    import tomllib

    data = tomllib.loads(dumped)
    for key in config.all_keys():
        section, name = key.split(".")
        m = config.meta(key)
        assert name in data[section], key
        if m.cli and m.item is None:
            flags = config.cli_flags(key, "run")
            assert any(f in run_opts for f in flags), key
            assert key in run_opts[flags[-1]].default_targets, key
        for row in stagetable.STAGES:
            if section in row.sections and m.cli and not m.run_only and m.item is None:
                assert any(f in _option_strings(subs[row.name]) for f in config.cli_flags(key, row.name)), \
                    (row.name, key)
    # the page's labels are the metadata's
    assert form.LABELS["img2img.cfg"] == config.meta("img2img.cfg").label == "CFG scale"


def test_help_of_every_stage_command_lists_the_choices():
    for row in stagetable.STAGES:
        out = subprocess.run([sys.executable, "-m", "vid2vid", row.name, "--help"], capture_output=True,
                             text=True, check=True).stdout
        for section in row.sections:
            for f, m in config.fields_of(config.SECTIONS[section]):
                if m.choices and m.cli:
                    flag = config.cli_flags(f"{section}.{f.name}", row.name)[-1]
                    assert flag in out, (row.name, flag)
                    assert "{" + ",".join(m.choices) + "}" in out.replace("\n", "").replace(" ", ""), \
                        (row.name, flag)


def test_ranges_come_from_the_metadata_for_validation_and_page():
    s = Settings()
    s.img2img.cfg = 30.5              # the page's old slider stopped at 30; validation allows up to 100
    s.img2img.validate()
    s.img2img.cfg = 100.5
    with pytest.raises(BadInput) as err:
        s.img2img.validate()
    assert err.value.settings == ["img2img.cfg"] and "0 to 100" in str(err.value)
    assert "CFG scale 100.5" in form.error_text(err.value)


def test_errors_name_the_flag_of_the_command_at_hand(capsys, tmp_path):
    assert main(["run", str(tmp_path / "x.mp4"), "--sigma-max", "0.01", "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert "--sigma-max 0.01 is below --sigma-min 0.1" in err and "{" not in err


# ---------------------------------------------------------------- a list of tables in TOML

@dataclasses.dataclass
class _Item(config.Section):
    NAME = "item"
    model: str = config.setting("", "model")
    scale: float = config.setting(1.0, "scale", lo=0.0, hi=2.0)


def test_a_list_of_tables_round_trips_through_toml(tmp_path):
    @dataclasses.dataclass
    class Holder(config.Section):
        NAME = "holder"
        items: list = config.setting([], "items", item=_Item)

    h = config.from_dict(Holder, {"items": [{"model": "a", "scale": 0.5}, {"model": "b"}]}, "holder")
    assert [(i.model, i.scale) for i in h.items] == [("a", 0.5), ("b", 1.0)]
    assert config.to_dict(h) == {"items": [{"model": "a", "scale": 0.5}, {"model": "b", "scale": 1.0}]}
    h.items[1].scale = 3.0
    with pytest.raises(BadInput, match="scale"):
        h.validate()
    with pytest.raises(BadInput, match="list of tables"):
        config.from_dict(Holder, {"items": ["x"]}, "holder")


def test_img2img_makes_its_control_images_on_the_way(tmp_path, assets, capsys):
    """`vid2vid img2img --controlnet CN --control canny` on a workspace without control images makes them
    (with their progress line) before painting; a depth source without depth maps stays one clear line."""
    from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet

    clip, model = assets
    cn = make_tiny_controlnet(tmp_path / "cn")
    ws = tmp_path / "ws"
    assert main(["extract", str(clip), "-w", str(ws), "--fps", "4"]) == 0
    capsys.readouterr()
    base = ["img2img", "-w", str(ws), "--model", str(model), "--prompt", "p", "--width", "64", "--height", "48",
            "--steps", "2"]
    assert main([*base, "--controlnet", str(cn), "--control", "canny"]) == 0
    err = capsys.readouterr().err
    w = Workspace(ws)
    assert w.is_complete("control") and w.is_complete("img2img")
    assert len(list((ws / "control").rglob("*.png"))) == len(w.frames())
    assert "[control]" in err and err.index("[control]") < err.index("[img2img]")
    assert main([*base, "--controlnet", str(cn), "--control", "depth"]) == 2
    line = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "'depth'" in line[0] and f"vid2vid depth -w {ws}" in line[0]


def test_an_empty_prompt_is_warned_once(tmp_path, assets, capsys):
    clip, model = assets
    ws = tmp_path / "ws"
    assert main(["extract", str(clip), "-w", str(ws), "--fps", "4"]) == 0
    assert main(["delta", "-w", str(ws)]) == 0
    capsys.readouterr()
    base = ["img2img", "-w", str(ws), "--model", str(model), "--width", "64", "--height", "48", "--steps", "2"]
    assert main(base) == 0
    err = capsys.readouterr().err
    assert err.count("warning: --prompt is empty") == 1
    assert main([*base, "--prompt", "shapes"]) == 0
    assert "--prompt is empty" not in capsys.readouterr().err
    assert main(["delta", "-w", str(ws)]) == 0
    assert "delta: already done" in capsys.readouterr().err
