"""The README's two lines: `bash install.sh` on a stock Debian Python (PEP 668: pip refuses to install
outside a venv) and in an active virtual environment, and CI running exactly the README's test line."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PY = Path("/usr/bin/python3")


def readme_lines() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert block
    return [line.split("#")[0].strip() for line in block.group(1).strip().splitlines()]


def test_readme_is_two_lines_and_ci_runs_its_test_line():
    install, tests = readme_lines()
    assert install.startswith("bash install.sh && .venv/bin/vid2vid ")
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip()]
    assert ci[-1] == tests and any(ln.startswith("bash install.sh") for ln in ci)


def _copy_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _install(repo: Path, env: dict) -> str:
    out = subprocess.run(["bash", "install.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert not [ln for ln in text.splitlines() if ln.startswith("ERROR:")], text[-3000:]
    return text


def _can_install_system_packages() -> bool:
    return shutil.which("apt-get") is not None and (os.geteuid() == 0 or shutil.which("sudo") is not None)


def _externally_managed(python: Path) -> bool:
    stdlib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()


@pytest.mark.slow
@pytest.mark.install
@pytest.mark.skipif(not DEBIAN_PY.is_file() or not _can_install_system_packages(),
                    reason="needs Debian's own /usr/bin/python3 and apt-get")
def test_install_on_the_stock_debian_python_makes_a_project_venv(tmp_path):
    assert _externally_managed(DEBIAN_PY), "this machine's /usr/bin/python3 is not PEP 668-managed"
    repo = _copy_repo(tmp_path / "clone")
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    text = _install(repo, env)
    cfg = (repo / ".venv" / "pyvenv.cfg").read_text()
    assert "home = /usr/bin" in cfg and "externally-managed" not in text
    version = subprocess.run([str(repo / ".venv/bin/vid2vid"), "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("vid2vid ")
    where = subprocess.run([str(repo / ".venv/bin/python"), "-c", "import vid2vid, pytest; print(vid2vid.__file__)"],
                           env=env, capture_output=True, text=True)
    assert where.returncode == 0 and where.stdout.strip().startswith(str(repo / "src")), where.stderr


@pytest.mark.slow
@pytest.mark.install
@pytest.mark.skipif(not _can_install_system_packages(), reason="needs apt-get")
def test_install_in_an_active_venv_uses_it_and_links_the_launchers(tmp_path):
    venv = tmp_path / "env"
    # the venv sees this Python's packages (torch and the rest are already there: the test stays short)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    repo = _copy_repo(tmp_path / "clone")
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    text = _install(repo, env)
    assert f"installing into {venv}" in text
    assert not (repo / ".venv" / "pyvenv.cfg").exists()            # no second environment
    assert str(venv / "bin" / "python") in (repo / ".venv/bin/python").read_text()
    code = "import sys, vid2vid; print(sys.prefix, vid2vid.__file__)"
    where = subprocess.run([str(repo / ".venv/bin/python"), "-c", code], env=env, capture_output=True, text=True)
    prefix, path = where.stdout.split()
    assert prefix == str(venv) and path.startswith(str(repo / "src")), where
