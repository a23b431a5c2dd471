"""Bad input, table-driven, through the command line: one clear line, exit code 2, no traceback, and
an existing workspace left exactly as it was. Simulated read-only and full disks, a held workspace,
and paths with spaces and non-ASCII letters (which must simply work).

tests/test_bad_input.py has the extract/export cases of damaged files; this table adds `run`,
the model and generation settings, size limits and the file-system failures.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vid2vid.cli.main import main
from vid2vid.core.workspace import TMP_PREFIX, Workspace
from vid2vid.video.democlip import make_clip


@pytest.fixture(scope="module")
def media(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("table")
    good = make_clip(d / "good.mp4", width=64, height=48, fps=8, seconds=1.0, audio=True)
    data = good.read_bytes()
    (d / "corrupt.mp4").write_bytes(b"\x00garbage" * 64 + data[512:])
    model = shutil.copytree(tiny_model, d / "tiny")
    broken = d / "tiny-no-vae"
    shutil.copytree(model, broken)
    shutil.rmtree(broken / "vae")
    return d


@pytest.fixture
def ws(tmp_path, media):
    """A workspace with extracted frames and audio, and an earlier export: the work that must not be lost."""
    root = tmp_path / "ws"
    assert main(["extract", str(media / "good.mp4"), "-w", str(root), "--audio", "--fps", "8"]) == 0
    assert main(["export", "-w", str(root), "--from", "frames", "--audio"]) == 0
    return root


def snapshot(folder):
    """Every file's bytes, the run log and lock file aside (they record attempts)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("log.jsonl", ".lock")}


def error_line(capsys) -> str:
    """The one error line, last on stderr (progress and status lines such as "loading model" may come first)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    return errors[0]


def call(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:          # argparse's own usage errors (exit 2, one usage line + one error)
        return exc.code


def run_args(media, ws, *extra):
    return ["run", str(media / "good.mp4"), "-w", str(ws), "--model", str(media / "tiny"), "--prompt", "x",
            "--width", "64", "--height", "48", "--steps", "2", "--fps", "8", "--audio",
            "--upscale-model", "lanczos-x2", *extra]


# (id, argv builder (media, ws) -> argv, words the one error line must hold)
CASES = [
    ("run-missing-video", lambda m, w: ["run", str(m / "nope.mp4"), "-w", str(w), "--model", str(m / "tiny")],
     ["does not exist"]),
    ("run-folder-as-video", lambda m, w: ["run", str(m), "-w", str(w), "--model", str(m / "tiny")],
     ["folder"]),
    ("run-corrupt-header", lambda m, w: run_args(m, w)[:1] + [str(m / "corrupt.mp4")] + run_args(m, w)[2:],
     ["not a readable video"]),
    ("frame-over-size-limit", lambda m, w: ["extract", str(m / "good.mp4"), "-w", str(w), "--max-pixels", "3000"],
     ["64x48", "limit of 3000", "max_pixels"]),
    ("run-frame-over-size-limit", lambda m, w: run_args(m, w, "--max-pixels", "3000"), ["limit of 3000"]),
    ("wrong-model-path", lambda m, w: run_args(m, w, "--model", str(m / "no-such-model")),
     ["not found", "no-such-model"]),
    ("model-missing-a-component", lambda m, w: run_args(m, w, "--model", str(m / "tiny-no-vae")),
     ["vae", "component"]),
    ("img2img-wrong-model", lambda m, w: ["img2img", "-w", str(w), "--model", str(m / "no-such-model")],
     ["not found"]),
    ("sigma-max-below-min", lambda m, w: run_args(m, w, "--sigma-max", "0.05"), ["--sigma-max", "below"]),
    ("img2img-sigma-max-below-min", lambda m, w: ["img2img", "-w", str(w), "--model", str(m / "tiny"),
                                                  "--sigma-min", "2", "--sigma-max", "1"], ["below --sigma-min"]),
    ("steps-0", lambda m, w: run_args(m, w, "--steps", "0"), ["--steps 0", "1 to 150"]),
    ("steps-151", lambda m, w: run_args(m, w, "--steps", "151"), ["--steps 151", "1 to 150"]),
    ("negative-fps", lambda m, w: run_args(m, w, "--fps", "-8"), ["--fps -8", "positive"]),
    ("ratio-0", lambda m, w: run_args(m, w, "--ratio", "0"), ["--ratio 0", "0.5 to 4"]),
    ("interpolate-ratio-0", lambda m, w: ["interpolate", "-w", str(w), "--ratio", "0"], ["--ratio"]),
    ("unknown-upscaler", lambda m, w: run_args(m, w, "--upscale-model", "esrgan-x9"), ["esrgan-x9", "not known"]),
    ("unknown-export-format", lambda m, w: run_args(m, w, "--format", "mkv"), ["'mkv' is not one of", "mp4"]),
    # issue 19: limits checked before any work
    ("canvas-too-small-for-the-model", lambda m, w: run_args(m, w, "--width", "8", "--height", "8"),
     ["8x8", "try --width 16 --height 16"]),
    ("img2img-canvas-too-small", lambda m, w: ["img2img", "-w", str(w), "--model", str(m / "tiny"), "--width", "8"],
     ["below 16", "try --width 16 --height 448"]),
    ("canvas-too-wide", lambda m, w: run_args(m, w, "--width", "100000"), ["--width 100000", "8 to 8192"]),
    ("canvas-over-its-limit", lambda m, w: run_args(m, w, "--width", "8192", "--height", "8192"),
     ["canvas limit", "try --width 4096 --height 4096"]),
    ("unknown-deinterlace", lambda m, w: ["extract", str(m / "good.mp4"), "-w", str(w), "--deinterlace", "maybe"],
     ["'maybe' is not one of", "auto"]),
    ("flow-init-2", lambda m, w: ["img2img", "-w", str(w), "--model", str(m / "tiny"), "--flow-init", "2"],
     ["--flow-init 2", "0 turns flow-guided init off"]),
    ("unknown-cross-frame", lambda m, w: run_args(m, w, "--cross-frame", "prev"), ["'prev' is not one", "anchor-prev"]),
    ("cross-frame-bank-0", lambda m, w: ["img2img", "-w", str(w), "--model", str(m / "tiny"), "--cross-frame",
                                         "bank", "--cross-frame-bank", "0"], ["--cross-frame-bank 0"]),
]


@pytest.mark.parametrize("argv,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_lost(capsys, media, ws, argv, needles):
    before = snapshot(ws)
    capsys.readouterr()
    code = call(argv(media, ws))
    assert code == 2
    line = error_line(capsys)             # the parser's own errors are one line too
    for n in needles:
        assert n.lower() in line.lower(), line
    assert snapshot(ws) == before


def test_unknown_export_format_in_a_settings_file(capsys, media, ws, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[export]\nformat = "mkv"\n')
    before = snapshot(ws)
    capsys.readouterr()
    assert main(["export", "-w", str(ws), "--from", "frames", "--config", str(cfg)]) == 2
    assert "'mkv' is not known" in error_line(capsys)
    assert snapshot(ws) == before


@pytest.mark.parametrize("argv", [
    ["run", "{m}/nope.mp4", "-w", "{w}", "--model", "{m}/tiny"],
    ["run", "{m}/corrupt.mp4", "-w", "{w}", "--model", "{m}/tiny", "--prompt", "x"],
    ["run", "{m}/good.mp4", "-w", "{w}", "--model", "{m}/tiny", "--format", "mkv"],
], ids=["missing", "corrupt", "format"])
def test_a_real_process_prints_no_traceback(media, ws, argv):
    before = snapshot(ws)
    out = subprocess.run([sys.executable, "-m", "vid2vid", *[a.format(m=media, w=ws) for a in argv]],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "error" in out.stderr
    assert snapshot(ws) == before


def test_second_run_on_a_held_workspace_is_refused(media, ws):
    before = snapshot(ws)
    with Workspace(ws).locked():
        out = subprocess.run([sys.executable, "-m", "vid2vid", *run_args(media, ws)], capture_output=True,
                             text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0] and f"pid {os.getpid()}" in lines[0], out.stderr
    assert snapshot(ws) == before


def test_spaces_and_non_ascii_in_every_path_work(capsys, media, tmp_path):
    folder = tmp_path / "my vids ü" / "日本 語"
    folder.mkdir(parents=True)
    clip = folder / "clip ünï cödé 1.mp4"
    shutil.copyfile(media / "good.mp4", clip)
    root = tmp_path / "work space é"
    out = folder / "out put ß.mp4"
    assert main(["extract", str(clip), "-w", str(root), "--audio", "--fps", "8"]) == 0
    assert main(["export", "-w", str(root), "--from", "frames", "--audio", "-o", str(out)]) == 0
    assert len(Workspace(root).frames()) == 8 and out.stat().st_size > 0
    # the default workspace name made from such a path is usable too
    assert main(["extract", str(clip), "--cache", str(tmp_path / "cache ü"), "--fps", "8"]) == 0
    made = [p for p in (tmp_path / "cache ü").iterdir() if p.is_dir()]
    assert len(made) == 1 and len(Workspace(made[0]).frames()) == 8


# ---------------------------------------------------------------- simulated file-system failures

def failing_replace(err: int, after: int = 0):
    """An os.replace that works `after` times, then fails like a read-only or full file system."""
    real = os.replace
    calls = {"n": 0}

    def replace(src, dst, *a, **kw):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(err, os.strerror(err), str(dst))
        return real(src, dst, *a, **kw)

    return replace


def test_read_only_workspace(capsys, monkeypatch, media, ws):
    """EROFS on every rename: bad input (exit 2) naming the path and the fix; nothing lost or left."""
    before = snapshot(ws)
    capsys.readouterr()
    monkeypatch.setattr(os, "replace", failing_replace(errno.EROFS))
    code = main(["export", "-w", str(ws), "--from", "frames", "--crf", "30"])
    monkeypatch.undo()
    line = error_line(capsys)
    assert code == 2
    assert "cannot write" in line and "read-only" in line.lower() and "writable" in line
    assert snapshot(ws) == before
    last = Workspace(ws).events()[-1]
    assert last["event"] == "error" and last["stage"] == "export" and last["exit_code"] == 2
    assert not list(ws.rglob(f"{TMP_PREFIX}*"))


def test_read_only_workspace_lock(capsys, monkeypatch, media, ws):
    """A workspace whose lock file cannot even be opened (EROFS): the same clear exit 2."""
    import builtins

    real_open = builtins.open

    def ro_open(file, mode="r", *a, **kw):
        if str(file).endswith(".lock") and any(c in mode for c in "wa+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *a, **kw)

    before = snapshot(ws)
    capsys.readouterr()
    monkeypatch.setattr(builtins, "open", ro_open)
    code = main(run_args(media, ws))
    monkeypatch.undo()
    assert code == 2
    assert "cannot write" in error_line(capsys)
    assert snapshot(ws) == before


def test_disk_full_mid_extract_keeps_frames_and_resumes(capsys, monkeypatch, media, tmp_path):
    """ENOSPC after three frames: exit 1 (not bad input: the same command works once there is space),
    a message that says the disk is full and that re-running resumes; the finished frames are kept,
    nothing half-written stays, and the re-run gives the frames of an undisturbed extract."""
    video = str(media / "good.mp4")
    ref = tmp_path / "ref"
    assert main(["extract", video, "-w", str(ref), "--fps", "8"]) == 0
    root = tmp_path / "full"
    capsys.readouterr()
    monkeypatch.setattr(os, "replace", failing_replace(errno.ENOSPC, after=4))   # manifest, settings... then frames
    code = main(["extract", video, "-w", str(root), "--fps", "8"])
    monkeypatch.undo()
    line = error_line(capsys)
    assert code == 1
    assert "disk is full" in line and "again" in line and "resume" in line
    kept = {p.name: p.read_bytes() for p in Workspace(root).frames()}
    assert 0 < len(kept) < 8
    assert not list(root.rglob(f"{TMP_PREFIX}*"))
    assert not Workspace(root).is_complete("extract")
    errors = [e for e in Workspace(root).events() if e["event"] == "error"]     # the run log says why
    assert len(errors) == 1 and errors[0]["stage"] == "extract" and errors[0]["type"] == "Vid2VidError"
    assert "disk is full" in errors[0]["error"] and errors[0]["exit_code"] == 1
    # space again: the same command finishes, keeping what was there
    assert main(["extract", video, "-w", str(root), "--fps", "8"]) == 0
    got = {p.name: p.read_bytes() for p in Workspace(root).frames()}
    want = {p.name: p.read_bytes() for p in Workspace(ref).frames()}
    assert got == want and all(got[n] == b for n, b in kept.items())


@pytest.mark.parametrize("argv,stage", [
    (lambda m, w: ["delta", "-w", str(w)], "delta"),
    (lambda m, w: ["depth", "-w", str(w)], "depth"),
    (lambda m, w: run_args(m, w), "delta"),          # extract is done: nothing to write; delta comes next
], ids=["delta", "depth", "run"])
def test_a_stage_the_free_space_cannot_hold_is_refused_before_it_starts(capsys, monkeypatch, media, ws, argv, stage):
    """Issue 19: every frame-writing stage estimates its files before it starts (here 2 MB are free,
    less than the 64 MiB reserve the check keeps): one line with what is missing and what to change."""
    from collections import namedtuple

    before = snapshot(ws)
    capsys.readouterr()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2 * 10**6, 2 * 10**6))
    code = call(argv(media, ws))
    monkeypatch.undo()
    assert code == 2
    line = error_line(capsys)
    assert f"{stage} would write about" in line and "missing" in line and "--fps" in line
    after = snapshot(ws)
    if argv(media, ws)[0] == "run":
        for snap in (after, before):                   # `run`'s extract (done) started with its settings
            snap.pop(Path("settings.toml"))
    assert after == before


def test_disk_full_during_export_keeps_the_earlier_video(capsys, monkeypatch, media, ws):
    before = snapshot(ws)
    capsys.readouterr()
    monkeypatch.setattr(os, "replace", failing_replace(errno.ENOSPC))
    code = main(["export", "-w", str(ws), "--from", "frames", "--audio", "--crf", "30"])
    monkeypatch.undo()
    assert code == 1
    assert "disk is full" in error_line(capsys)
    assert snapshot(ws) == before
    assert not list(ws.rglob(f"{TMP_PREFIX}*"))
