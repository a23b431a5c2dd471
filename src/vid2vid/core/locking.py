"""One exclusive lock per file, on every operating system; and a portable "is this process alive".

    lock = file_lock(path)      # the best backend this system has
    lock.acquire()              # raises LockHeld(holder) when another process holds it
    ...
    lock.release()

Backends, picked by what can be imported (nothing POSIX- or Windows-only is imported at the top):

- ``fcntl``: `flock` on the whole file (Linux, macOS, BSD). The kernel drops the lock when the
  holder dies, however it dies.
- ``msvcrt``: `msvcrt.locking` on one byte far past the holder text (Windows). Windows drops it
  when the holder's handle closes, which process exit does. The byte lies past the text because
  a Windows lock also stops other processes from reading the bytes it covers.
- ``pidfile``: where neither imports. The file is created exclusively and holds the holder's
  pid, process start time and host; a file whose process is gone (or is another process that got
  the same pid) is stale and is taken over, so a killed holder never blocks the next run.

Every backend writes ``pid N`` as the file's first line; `LockHeld.holder` shows it.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

HOLDER_WIDTH = 128            # bytes of holder text the lock-byte backends write (space padded)
MSVCRT_LOCK_OFFSET = 1 << 20  # the byte msvcrt locks: far past the holder text


class LockHeld(Exception):
    """Another process holds the lock; `holder` says who (e.g. "pid 1234")."""

    def __init__(self, path: Path, holder: str, hint: str = ""):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder, self.hint = path, holder, hint


class Lock(Protocol):
    path: Path

    def acquire(self) -> None: ...

    def release(self) -> None: ...


# ---------------------------------------------------------------- liveness

def pid_alive(pid: int, started: float | None = None) -> bool:
    """True while process `pid` runs; with `started` (its start time, epoch seconds) also checks
    that it is the same process and not a newer one that got the same pid. Never sends a signal
    on Windows (there `os.kill` would stop the process instead of probing it)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return started is None or abs(started - _start_time(pid, default=started)) < 1.0
    try:
        import psutil
    except ImportError:
        return _pid_alive_without_psutil(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:       # exists, belongs to someone else
        return True


def _start_time(pid: int, default: float) -> float:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except ImportError:
        return default


def _pid_alive_without_psutil(pid: int) -> bool:
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.windll.kernel32                       # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)       # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # type: ignore[attr-defined]  # access denied: it exists
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259                   # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_text() -> str:
    """What a lock file says about this process: `pid N`, then its start time and host."""
    started = _start_time(os.getpid(), default=time.time())
    return f"pid {os.getpid()}\nstarted {started:.3f}\nhost {socket.gethostname()}\n"


def parse_holder(text: str) -> dict:
    """The fields of `holder_text` (pid as int, started as float, host); missing ones are absent."""
    out: dict = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        try:
            if key == "pid":
                out["pid"] = int(value)
            elif key == "started":
                out["started"] = float(value)
            elif key == "host":
                out["host"] = value
        except ValueError:
            continue
    return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else "another process"


# ---------------------------------------------------------------- backends

class FcntlLock:
    """flock on the whole file; the file stays after release (it is only a handle)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        import fcntl

        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _first_line(fh.read())
            fh.close()
            raise LockHeld(self.path, holder) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(holder_text())
            fh.flush()
        except OSError:
            pass
        self._fh = fh

    def release(self) -> None:
        import fcntl

        fh, self._fh = self._fh, None
        if fh is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


class MsvcrtLock:
    """msvcrt.locking on the byte at MSVCRT_LOCK_OFFSET; holder text in the first bytes, readable."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        import msvcrt

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        try:
            os.lseek(fd, MSVCRT_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]  # Windows only
        except OSError:
            os.lseek(fd, 0, os.SEEK_SET)
            holder = _first_line(os.read(fd, HOLDER_WIDTH).decode("utf-8", "replace"))
            os.close(fd)
            raise LockHeld(self.path, holder) from None
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, holder_text().encode("utf-8")[:HOLDER_WIDTH].ljust(HOLDER_WIDTH))
        except OSError:
            pass
        self._fd = fd

    def release(self) -> None:
        import msvcrt

        fd, self._fd = self._fd, None
        if fd is not None:
            os.lseek(fd, MSVCRT_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]  # Windows only
            os.close(fd)


class PidFileLock:
    """The file itself is the lock: created exclusively, removed on release, taken over when stale."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._held = False

    def acquire(self) -> None:
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(holder_text())
            self._held = True
            return
        raise LockHeld(self.path, "another process (it keeps changing hands)")

    def _take_over_if_stale(self) -> None:
        """Remove the lock file when its holder is gone; raise LockHeld when it is alive."""
        text = _read_text(self.path)
        if text is None:                 # released meanwhile
            return
        info = parse_holder(text)
        here = socket.gethostname()
        if info.get("host", here) != here:
            raise LockHeld(self.path, f"{_first_line(text)} on {info['host']}",
                           hint=f"if that run is gone, delete {self.path}")
        if "pid" in info and pid_alive(info["pid"], info.get("started")):
            raise LockHeld(self.path, _first_line(text))
        if "pid" not in info and time.time() - _mtime(self.path) < 10:
            raise LockHeld(self.path, "a process that is starting")   # being written right now
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        if _read_text(aside) != text:    # a new holder came in between: give its file back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        os.unlink(aside)

    def release(self) -> None:
        if self._held:
            self._held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


BACKENDS: dict[str, Callable[[str | Path], Lock]] = {"fcntl": FcntlLock, "msvcrt": MsvcrtLock,
                                                   "pidfile": PidFileLock}


def available_backend() -> str:
    """The best backend this Python can import: fcntl, else msvcrt, else pidfile."""
    for name in ("fcntl", "msvcrt"):
        try:
            __import__(name)
        except ImportError:
            continue
        return name
    return "pidfile"


def file_lock(path: str | Path, backend: str | None = None) -> Lock:
    """An (unacquired) exclusive lock on `path` with `backend` or the best one available."""
    return BACKENDS[backend or available_backend()](path)
