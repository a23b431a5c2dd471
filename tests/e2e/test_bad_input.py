"""Bad input: one clear line naming the problem and the fix, exit code 2, nothing in the workspace lost."""
from __future__ import annotations

import subprocess
import sys

import av
import pytest

from vid2vid.cli.main import main
from vid2vid.video.democlip import _write_tone, make_clip


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    good = make_clip(d / "good.mp4", fps=12, seconds=1.0, audio=True)
    make_clip(d / "silent.mp4", fps=12, seconds=1.0, audio=False)
    (d / "notes.txt").write_text("not a video at all\n" * 50)
    data = good.read_bytes()
    (d / "corrupt.mp4").write_bytes(b"\x00garbage" * 64 + data[512:])
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "empty.mp4").write_bytes(b"")
    (d / "folder.mp4").mkdir()
    with av.open(str(d / "audio.m4a"), "w") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        _write_tone(c, a, 0.5)
    with av.open(str(d / "zero.mkv"), "w") as c:           # a video stream that holds no frame
        v = c.add_stream("libx264", rate=12)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        _write_tone(c, a, 0.3)
    return d


@pytest.fixture
def workspace(tmp_path, media):
    ws = tmp_path / "ws"
    assert main(["extract", str(media / "good.mp4"), "-w", str(ws), "--audio"]) == 0
    return ws


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("log.jsonl", ".lock")}


def check_clean_error(capsys, code, *needles):
    captured = capsys.readouterr()
    err_lines = [ln for ln in captured.err.strip().splitlines() if not ln.startswith("[")]
    assert code == 2, captured.err
    assert len(err_lines) == 1, err_lines
    assert "Traceback" not in captured.err
    for n in needles:
        assert n.lower() in err_lines[0].lower(), err_lines[0]


CASES = [
    ("missing.mp4", [], ["does not exist"]),
    ("folder.mp4", [], ["folder"]),
    ("notes.txt", [], ["not a readable video"]),
    ("corrupt.mp4", [], ["not a readable video"]),
    ("truncated.mp4", [], ["not a readable video"]),
    ("empty.mp4", [], ["empty"]),
    ("audio.m4a", [], ["no video stream"]),
    ("zero.mkv", [], ["no frames"]),
    ("silent.mp4", ["--audio"], ["no audio", "--audio"]),
    ("good.mp4", ["--fps", "-3"], ["--fps"]),
    ("good.mp4", ["--format", "bmp"], ["'bmp' is not one of: png"]),
    ("good.mp4", ["--no-such-option"], ["unknown option --no-such-option"]),
]


@pytest.mark.parametrize("name,extra,needles", CASES, ids=[c[0] + "".join(c[1]) for c in CASES])
def test_extract_bad_input_keeps_the_workspace(capsys, media, workspace, name, extra, needles):
    before = snapshot(workspace)
    capsys.readouterr()
    try:
        code = main(["extract", str(media / name), "-w", str(workspace), *extra])
    except SystemExit as exc:          # argparse's own usage errors
        code = exc.code
        captured = capsys.readouterr()
        assert code == 2 and "Traceback" not in captured.err
        assert any(n in captured.err for n in needles), captured.err
        assert len(captured.err.strip().splitlines()) == 1, captured.err
        assert snapshot(workspace) == before
        return
    check_clean_error(capsys, code, *needles)
    assert snapshot(workspace) == before


@pytest.mark.parametrize("args,needles", [
    (["--from", "img2img"], ["no frames", "vid2vid img2img"]),
    (["--format", "mkv"], ["'mkv' is not one of: mp4, webm"]),
    (["-o", "out.webm"], ["does not end in .mp4"]),
])
def test_export_bad_input(capsys, workspace, args, needles):
    before = snapshot(workspace)
    capsys.readouterr()
    try:
        code = main(["export", "-w", str(workspace), *args])
    except SystemExit as exc:
        assert exc.code == 2
        assert any(n in capsys.readouterr().err for n in needles)
        return
    check_clean_error(capsys, code, *needles)
    assert snapshot(workspace) == before


def test_export_audio_missing_in_workspace(capsys, tmp_path, media):
    ws = tmp_path / "nw"
    assert main(["extract", str(media / "good.mp4"), "-w", str(ws)]) == 0
    capsys.readouterr()
    check_clean_error(capsys, main(["export", "-w", str(ws), "--from", "frames", "--audio"]), "no audio", "--audio")


def test_not_a_workspace(capsys, tmp_path):
    check_clean_error(capsys, main(["export", "-w", str(tmp_path / "nothing")]), "not a workspace", "extract")


def test_busy_workspace(capsys, workspace):
    from vid2vid.core.workspace import Workspace

    with Workspace(workspace).locked():
        code = subprocess.run([sys.executable, "-m", "vid2vid", "export", "-w", str(workspace), "--from", "frames"],
                              capture_output=True, text=True)
    assert code.returncode == 2
    assert "in use" in code.stderr and "Traceback" not in code.stderr


def test_read_only_workspace(capsys, media, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    ws = tmp_path / "ro"
    assert main(["extract", str(media / "good.mp4"), "-w", str(ws)]) == 0
    os.chmod(ws, 0o500)
    try:
        check_clean_error(capsys, main(["export", "-w", str(ws), "--from", "frames"]), "cannot write")
    finally:
        os.chmod(ws, 0o700)
