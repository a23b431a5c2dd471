"""Messages in the page's words: no command-line flag and no `vid2vid` command in an error the page shows.

The page shows the library's errors rendered with `form.error_text` (settings as field labels, stages
as buttons). This walks every error the library raises from the modules the page calls (by reading
their source) and renders each message's literal text the page's way."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vid2vid.core import errors
from vid2vid.core.errors import BadInput
from vid2vid.diffusion.schedules import check_params
from vid2vid.ui import form

SRC = Path(errors.__file__).parents[1]
ERRORS = {"BadInput", "ModelNotFound", "WorkspaceBusy", "Vid2VidError", "Interrupted"}
# Modules the page never reaches (the command line's own front end and tools).
NOT_THE_PAGE = {"cli/main.py", "cli/commands.py", "cli/options.py", "cli/parser.py", "cli/tools.py", "cli/ipflags.py",
                "__main__.py", "cli/doctor.py", "ui/guard.py", "ui/app.py", "bench.py",
                "ui/auth.py", "ui/launch.py",   # starting the server: its options, before any page exists
                "pipeline/multirun.py"}     # several videos in one command: the command line's
NOT_THE_PAGE |= {"cli/grid.py"}             # the grid command's front end (the page has ui/grid_section.py)
# Messages the page never shows, each with the reason (file, words in it).
CLI_ONLY = {
    ("config/toml.py", "write one with"): "loading a settings file: only `--config` on the command line",
    ("config/toml.py", "config --dump"): "loading a settings file: only `--config` on the command line",
    ("ui/paths.py", "pick a folder with"): "the cache folder is chosen when the server starts",
    ("ui/modelroots.py", "with --models"): "the model folders are chosen when the server starts",
    ("diffusion/tokenizer.py", "pip install"): "an install command, not a vid2vid flag",
    ("config/sections.py", "install.sh --ray"): "the installer's option, not a vid2vid flag (the page shows it)",
    ("painting/rayactors.py", "ray start --head"): "Ray's own command for the cluster's head, not a vid2vid flag",
    ("core/progress.py", "same command"): "the page words an interruption itself (runner.INTERRUPTED)",
}
# the folder tools `vid2vid correct` / `vid2vid propagate` on plain folders (not workspaces)
CLI_ONLY |= {("temporal/correction.py", words): "folder tool (correct_folder)" for words in ("--out", "--depth DIR")}
CLI_ONLY |= {("stages/propagate.py", words): "folder tool (propagate_folder)"
             for words in ("check --source", "check --keys", "--out")}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*|(?<![\w-])-w\b")
COMMAND = re.compile(r"`vid2vid |vid2vid [a-z-]+ -w|same command")


def _literal(node: ast.expr) -> str:
    """The text of a message expression, with `{...}` for each interpolated value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left) + _literal(node.right)
    return ""


def _raised_messages():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in NOT_THE_PAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ERRORS and node.args:
                yield rel, node.lineno, _literal(node.args[0])


MESSAGES = list(_raised_messages())


def test_the_walk_finds_the_library_errors():
    assert len(MESSAGES) > 150
    assert any("is below" in m for _, _, m in MESSAGES)


@pytest.mark.parametrize("rel,line,text", MESSAGES, ids=[f"{r}:{n}" for r, n, _ in MESSAGES])
def test_no_flag_and_no_command_in_what_the_page_shows(rel, line, text):
    if any(rel == f and words in text for (f, words) in CLI_ONLY):
        return
    assert "{{" not in text, f"{rel}:{line}: doubled braces outside an f-string stay doubled"
    shown = errors.render_settings(text.replace("{}", "X"), form.label_of, form.stage_button)
    assert not FLAG.search(shown), f"{rel}:{line}: {shown}"
    assert not COMMAND.search(shown), f"{rel}:{line}: {shown}"


def test_a_stage_to_run_is_a_command_on_the_cli_and_a_button_on_the_page():
    exc = BadInput(f"depth mask x.png is missing; run {errors.stage_ref('depth', '/c/ws')} first")
    assert exc.stages == ["depth"]
    assert str(exc) == "depth mask x.png is missing; run `vid2vid depth -w /c/ws` first"
    assert form.error_text(exc) == "depth mask x.png is missing; run 'Depth masks' (tab 2) first"
    extract = BadInput(f"no frames; run {errors.stage_ref('extract', 'ws')} first")
    assert "`vid2vid extract VIDEO -w ws`" in str(extract)
    assert "'Extract frames' (tab 1)" in form.error_text(extract)
    for name in ("extract", "delta", "depth", "tags", "img2img", "upscale", "interpolate", "export"):
        assert name in form.STAGE_BUTTONS


def test_an_interruption_is_worded_by_the_page():
    from vid2vid.core.errors import Interrupted
    from vid2vid.core.progress import Job
    from vid2vid.ui.runner import INTERRUPTED, error_message

    job = Job()
    job.cancel.set()
    with pytest.raises(Interrupted) as info:
        job.check()
    assert "same command" in str(info.value)                  # the command line's words
    assert error_message(info.value) == INTERRUPTED and not COMMAND.search(INTERRUPTED)


def test_settings_read_as_flags_on_the_cli_and_labels_on_the_page():
    with pytest.raises(BadInput) as info:
        check_params(10, 0.5, 1.0, 0.2)
    assert str(info.value).startswith("--sigma-max 0.2 is below --sigma-min 1.0")
    shown = form.error_text(info.value)
    assert "--" not in shown and form.label_of("img2img.sigma_max") in shown


def test_only_videos_are_offered_for_upload(tmp_path):
    from vid2vid.ui import paths

    root = paths.cache_root(tmp_path)
    for what, upload in (("video", True), ("model", False), ("LoRA", False)):
        with pytest.raises(BadInput) as info:
            paths.inside(root, "/elsewhere/file.bin", what)
        assert ("upload" in str(info.value)) is upload, str(info.value)
