"""Can the output video be written where it is asked for? Checked before a run's first stage, so a
folder without write permission, a read-only file system, a parent that is a file or a full disk is
said at once instead of after all the work."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from vid2vid.core import diskspace
from vid2vid.core.errors import BadInput

WHY = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable (no permission)",
       errno.EPERM: "is not writable (no permission)"}


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and not p.is_symlink() and p != p.parent:
        p = p.parent
    return p


def _probe(folder: Path) -> OSError | None:
    """Create and remove one empty file in `folder`: the error that writing there gives, if any."""
    probe = folder / f".tmp-vid2vid-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        return exc
    os.close(fd)
    probe.unlink(missing_ok=True)
    return None


def check_output(path: str | Path, need_bytes: int = 0, ref: str = "{export.output}") -> None:
    """BadInput naming `ref` when `path` cannot be written: it is a folder, a parent is a file, the
    nearest existing folder is read-only or not writable, or its disk has less than `need_bytes` (plus
    the reserve the stages keep) free."""
    out = Path(path).expanduser().absolute()
    if out.is_dir():
        raise BadInput(f"{ref} {path} is a folder; name the video file to write (e.g. {Path(path) / 'out.mp4'})")
    folder = _nearest_existing(out.parent)
    if not folder.is_dir():
        raise BadInput(f"{ref} {path} cannot be written: {folder} is a file, not a folder; pick another path")
    exc = _probe(folder)
    if exc is not None:
        why = WHY.get(exc.errno or 0, f"cannot be written ({exc.strerror})")
        raise BadInput(f"{ref} {path} cannot be written: {folder} {why}; pick a writable folder")
    free, wanted = diskspace.free_bytes(folder), need_bytes + diskspace.RESERVE
    if free < wanted:
        raise BadInput(f"{ref} {path}: only {diskspace.human_bytes(free)} is free in {folder}, about "
                       f"{diskspace.human_bytes(wanted)} is needed for the video; free disk space or pick another "
                       "folder")
