"""The workspace lock on every backend (flock, msvcrt, pid file) and the Windows import path."""
from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vid2vid
from vid2vid.core import locking
from vid2vid.core.errors import WorkspaceBusy
from vid2vid.core.workspace import Workspace

TESTS = Path(__file__).parents[1]
SRC = Path(vid2vid.__file__).parent

# A child process that takes the lock with BACKEND and holds it until killed.
HOLDER = f"""
import sys, time
if sys.argv[2] == "msvcrt" and "msvcrt" not in sys.builtin_module_names:
    sys.path.insert(0, {str(TESTS)!r})
    import fake_msvcrt
    sys.modules["msvcrt"] = fake_msvcrt
from vid2vid.core import locking
lock = locking.file_lock(sys.argv[1], sys.argv[2])
try:
    lock.acquire()
except locking.LockHeld as held:
    print("busy", held.holder, flush=True)
    sys.exit(3)
print("held", flush=True)
time.sleep(120)
"""


def backends_here() -> list[str]:
    here = locking.available_backend()
    names = ["pidfile"] + ([here] if here != "pidfile" else [])
    if here == "fcntl":
        names.append("msvcrt")                # through tests/fake_msvcrt.py (POSIX record locks)
    return names


@pytest.fixture
def msvcrt_module(monkeypatch, backend):
    if backend != "msvcrt" or "msvcrt" in sys.builtin_module_names:
        return
    sys.path.insert(0, str(TESTS))
    try:
        import fake_msvcrt
    finally:
        sys.path.remove(str(TESTS))
    monkeypatch.setitem(sys.modules, "msvcrt", fake_msvcrt)


def start_holder(path: Path, backend: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), backend],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == "held", line
    return proc


def try_in_child(path: Path, backend: str) -> str:
    out = subprocess.run([sys.executable, "-c", HOLDER, str(path), backend], capture_output=True,
                         text=True, timeout=60)
    return out.stdout.strip()


@pytest.mark.parametrize("backend", backends_here())
def test_a_second_process_is_refused_and_a_killed_holder_does_not_block(tmp_path, backend, msvcrt_module):
    path = tmp_path / ".lock"
    holder = start_holder(path, backend)
    try:
        pid_line = f"pid {holder.pid}"
        assert try_in_child(path, backend) == f"busy {pid_line}"    # another process: refused
        with pytest.raises(locking.LockHeld) as held:               # and this one
            locking.file_lock(path, backend).acquire()
        assert held.value.holder == pid_line
    finally:
        holder.kill()                                               # SIGKILL: no clean-up runs
        holder.wait()
    lock = locking.file_lock(path, backend)
    lock.acquire()                                                  # the dead holder does not block
    assert try_in_child(path, backend).startswith("busy pid ")
    lock.release()
    again = locking.file_lock(path, backend)
    again.acquire()
    again.release()


def test_pidfile_takes_over_a_dead_or_reused_pid_but_not_a_live_one(tmp_path):
    path = tmp_path / ".lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    path.write_text(f"pid {dead}\nstarted 1.0\nhost {socket.gethostname()}\n")
    lock = locking.file_lock(path, "pidfile")
    lock.acquire()                                  # dead pid: stale
    assert locking.parse_holder(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not path.exists()

    # our own pid with another start time: a new process that got a dead holder's pid
    path.write_text(f"pid {os.getpid()}\nstarted {time.time() - 10_000:.3f}\nhost {socket.gethostname()}\n")
    lock.acquire()
    lock.release()

    # a live holder (this process, right start time) on the same host is respected
    path.write_text(locking.holder_text())
    with pytest.raises(locking.LockHeld, match=f"pid {os.getpid()}"):
        lock.acquire()
    path.unlink()

    # another host's holder cannot be judged from here: refused, with what to do
    path.write_text(f"pid 1\nstarted 1.0\nhost elsewhere-{socket.gethostname()}\n")
    with pytest.raises(locking.LockHeld) as held:
        lock.acquire()
    assert "elsewhere" in held.value.holder and str(path) in held.value.hint
    path.unlink()

    # a file just created but not yet written: its holder is starting
    path.write_text("")
    with pytest.raises(locking.LockHeld, match="starting"):
        lock.acquire()
    old = time.time() - 60
    os.utime(path, (old, old))                      # empty and old: its creator died before writing
    lock.acquire()
    lock.release()


def test_pid_alive():
    assert locking.pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not locking.pid_alive(proc.pid)
    assert not locking.pid_alive(-5) and not locking.pid_alive(0)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert locking.pid_alive(sleeper.pid)
        import psutil

        started = psutil.Process(sleeper.pid).create_time()
        assert locking.pid_alive(sleeper.pid, started)
        assert not locking.pid_alive(sleeper.pid, started - 100)     # same pid, another process
    finally:
        sleeper.kill()
        sleeper.wait()


def test_workspace_busy_message_names_the_holder(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.locked():
        with pytest.raises(WorkspaceBusy, match=rf"in use by pid {os.getpid()};"):
            with Workspace(tmp_path / "ws").locked():
                pass


# ---------------------------------------------------------------- the Windows import path

def test_backend_matches_what_imports():
    blocked = os.environ.get("VID2VID_TEST_NO_FCNTL") == "1"
    if blocked:
        with pytest.raises(ImportError):
            import fcntl  # noqa: F401
    expected = "pidfile" if blocked else ("fcntl" if os.name == "posix" else "msvcrt")
    assert locking.available_backend() == expected


@pytest.mark.skipif(os.environ.get("VID2VID_TEST_NO_FCNTL") == "1", reason="already the no-fcntl run")
def test_workspace_and_lock_tests_pass_with_fcntl_unimportable(tmp_path):
    """The workspace and lock tests again, in Pythons (the test run and every process it starts)
    where `import fcntl` fails, as it does on Windows: the package imports and the pid file lock
    keeps every guarantee."""
    env = dict(os.environ, VID2VID_TEST_NO_FCNTL="1",
               PYTHONPATH=os.pathsep.join([str(TESTS / "no_fcntl"), str(SRC.parent),
                                           os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          str(TESTS / "core" / "test_workspace.py"), str(TESTS / "core" / "test_locking.py"),
                          "--basetemp", str(tmp_path / "t")],
                         capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and " failed" not in out.stdout


OS_ONLY_MODULES = {
    # POSIX only
    "fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "posix", "syslog", "crypt", "spwd",
    "nis", "readline", "curses", "_posixsubprocess", "posixpath",
    # Windows only
    "msvcrt", "winreg", "winsound", "_winapi", "nt", "ntpath",
}


def _top_level_imports(tree: ast.Module):
    """(module, line) of every import that runs when the module is imported, outside a
    `try: ... except ImportError` (imports inside functions and classes' methods run later)."""
    def walk(nodes, guarded):
        for node in nodes:
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield a.name.split(".")[0], node.lineno, guarded
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield node.module.split(".")[0], node.lineno, guarded
            elif isinstance(node, ast.Try):
                catches = {getattr(h.type, "id", None) for h in node.handlers}
                g = guarded or bool(catches & {"ImportError", "ModuleNotFoundError"})
                yield from walk(node.body, g)
                for h in node.handlers:
                    yield from walk(h.body, guarded)
                yield from walk(node.orelse + node.finalbody, guarded)
            elif isinstance(node, ast.If):
                yield from walk(node.body + node.orelse, guarded)
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body, guarded)
    yield from walk(tree.body, False)


def test_no_module_imports_an_os_only_module_at_the_top_level():
    offenders = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30
    for f in files:
        tree = ast.parse(f.read_text(encoding="utf-8"), str(f))
        for name, line, guarded in _top_level_imports(tree):
            if name in OS_ONLY_MODULES and not guarded:
                offenders.append(f"{f.relative_to(SRC)}:{line} imports {name}")
    assert offenders == []


def test_the_os_only_import_check_catches_one():
    bad = ast.parse("import os\nimport fcntl\ntry:\n    import msvcrt\nexcept ImportError:\n    pass\n"
                    "def f():\n    import termios\n")
    found = [(n, g) for n, _, g in _top_level_imports(bad) if n in OS_ONLY_MODULES]
    assert found == [("fcntl", False), ("msvcrt", True)]
