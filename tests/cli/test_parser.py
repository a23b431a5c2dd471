"""Usage errors of the command line are one line, with the choices and the nearest one."""
from __future__ import annotations

import pytest

from vid2vid import config
from vid2vid.cli.main import main
from vid2vid.cli.parser import build_parser


def _usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_unknown_choice_is_one_line_with_the_choices_and_the_nearest(capsys):
    err = _usage_error(["img2img", "-w", "ws", "--sampler", "dpm++2m"], capsys)
    assert "did you mean dpm++-2m?" in err and "euler-a" in err and "--sampler" in err
    assert "usage:" not in err


def test_unknown_option_and_command_suggest_the_nearest(capsys):
    assert "did you mean --steps?" in _usage_error(["img2img", "-w", "ws", "--stpes", "3"], capsys)
    assert "did you mean img2img?" in _usage_error(["imgtoimg"], capsys)
    assert "-w/--workspace" in _usage_error(["img2img"], capsys)


def test_config_check_takes_the_file_where_people_type_it(tmp_path, capsys):
    good = tmp_path / "settings.toml"
    config.save_toml(config.Settings(), good)
    assert main(["config", "--check", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: valid"
    assert main(["config", "--check", "--config", str(good)]) == 0          # the older form still works
    bad = tmp_path / "bad.toml"
    bad.write_text("[img2img]\nstpes = 3\n", encoding="utf-8")
    assert main(["config", "--check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stpes (did you mean steps?)" in err and len(err.strip().splitlines()) == 1


def test_every_command_builds_and_no_function_of_the_parser_is_long():
    import ast
    import inspect

    from vid2vid.cli import commands, options, parser
    from vid2vid.cli import main as main_mod

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"run", "img2img", "export", "config", "make-tiny-model", "compare"} <= set(sub.choices)
    for mod in (parser, options, commands, main_mod):
        src = inspect.getsource(mod)
        assert len(src.splitlines()) <= 500
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 60, (mod.__name__, node.name)


def test_help_says_a_range_once():
    from vid2vid.cli.options import _help

    assert _help("img2img.steps", 20) == "sampling steps of the full schedule (1..150) (default 20)"
    for key in config.all_keys():
        m = config.meta(key)
        if m.lo is not None and m.hi is not None:
            text = _help(key, None)
            assert text.count(f"{m.lo:g}..{m.hi:g}") == 1, text
