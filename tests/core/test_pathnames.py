"""Workspace names the user gives are checked for every file system (Windows, macOS, Linux)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vid2vid.core import pathnames
from vid2vid.core.errors import BadInput
from vid2vid.core.workspace import Workspace, workspace_name
from vid2vid.video.democlip import make_clip


@pytest.mark.parametrize("name", ["CON", "con", "nul", "Aux.mp4", "com1", "LPT9.txt", "COM¹", "prn .x",
                                  "conout$"])
def test_windows_device_names_are_refused(tmp_path, name):
    with pytest.raises(BadInput, match="device name on Windows"):
        Workspace(tmp_path / name).ensure()
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name, why", [("work.", "ends in a dot"), ("work ", "ends in a dot or a space"),
                                       pytest.param("a:b", "':'", marks=pytest.mark.skipif(sys.platform == "win32",
                                                                                             reason="a drive there")),
                                       ("what?", "'?'"), ("x|y", "'|'"), ("tab\there", "'\\\\t'")])
def test_names_windows_cannot_hold_are_refused(tmp_path, name, why):
    with pytest.raises(BadInput, match=why):
        Workspace(tmp_path / name).ensure()


@pytest.mark.parametrize("name", ["work", "console", "CON-video", "nul_1", "com10", "LPT", "my.work",
                                  "ünïcode", "a b"])
def test_ordinary_names_pass(tmp_path, name):
    assert pathnames.name_problem(name) is None
    Workspace(tmp_path / name).ensure()
    assert (tmp_path / name).is_dir()


def test_a_folder_to_be_made_on_the_way_is_checked_too(tmp_path):
    with pytest.raises(BadInput, match="'aux'"):
        Workspace(tmp_path / "aux" / "ws").ensure()
    assert not (tmp_path / "aux").exists()


def test_names_that_differ_only_in_case_or_unicode_form(tmp_path):
    Workspace(tmp_path / "Work").ensure()
    with pytest.raises(BadInput, match="differs only in case from 'Work'"):
        Workspace(tmp_path / "work").ensure()
    with pytest.raises(BadInput, match="differs only in case"):
        Workspace(tmp_path / "WORK" / "inner").ensure()
    Workspace(tmp_path / "Work").ensure()             # the exact spelling opens it
    Workspace(tmp_path / "Work" / "inner").ensure()
    Workspace(tmp_path / "caf\u00e9").ensure()        # é composed ...
    with pytest.raises(BadInput, match="differs only in case"):
        Workspace(tmp_path / "cafe\u0301").ensure()   # ... and decomposed: one folder on macOS


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a case-sensitive file system that allows NUL")
def test_existing_folders_are_not_judged(tmp_path):
    """A folder already there (made before this check, on a system that allows it) stays usable."""
    odd = tmp_path / "nul"
    odd.mkdir()
    (tmp_path / "NUL").mkdir()                        # two case twins side by side, both old
    Workspace(odd).ensure()
    Workspace(tmp_path / "NUL").ensure()


def test_derived_names_always_pass(tmp_path):
    for video in ["CON.mp4", "nul", "a:b?.mov", "trailing. .mp4", "  .mp4", "COM1.MP4"]:
        name = workspace_name(tmp_path / video)
        assert pathnames.name_problem(name) is None, (video, name)


def test_cli_refuses_a_reserved_workspace_name_with_exit_2(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", fps=12, seconds=0.5, audio=False)
    out = subprocess.run([sys.executable, "-m", "vid2vid", "extract", str(clip),
                          "-w", str(tmp_path / "CON")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "device name on Windows" in out.stderr and not (tmp_path / "CON").exists()
