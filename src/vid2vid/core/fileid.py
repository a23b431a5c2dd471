"""File identity: what tells one version of a file from another without reading it (path, size, time).

Stage keys hold it for their input files (the source video, model and LoRA files), so that a
replaced file invalidates the stage; the web page's model cache uses it to notice a replaced model.
Records keep the shapes that release 0.1.0 wrote into manifests (`record`), so that existing
workspaces keep their stage keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileId:
    """One version of a file: its resolved path, size in bytes and modification time."""

    path: str          # absolute, links resolved
    bytes: int
    mtime: int         # whole seconds (int of os.stat's float st_mtime)
    mtime_ns: int      # nanoseconds

    def record(self, name: str = "path", ns: bool = False) -> dict:
        """As a stage key holds it: {name: path, "bytes": size, "mtime": seconds} ("mtime_ns" with ns)."""
        when = {"mtime_ns": self.mtime_ns} if ns else {"mtime": self.mtime}
        return {name: self.path, "bytes": self.bytes, **when}

    def __str__(self) -> str:
        return f"{self.path}|{self.bytes}|{self.mtime}"


def file_id(path: str | Path) -> FileId:
    """The identity of the file (or folder) at `path` as it is now; OSError when it cannot be read.

    `path` is taken as it is (callers expand `~` first where a user typed it).
    """
    p = Path(path)
    st = p.stat()
    return FileId(str(p.resolve()), st.st_size, int(st.st_mtime), st.st_mtime_ns)


def spec_identity(spec: str, name: str = "path", fallback: str = "spec", ns: bool = False) -> dict:
    """What names a model in a stage key: a file's identity (`record(name, ns)`) when `spec` is a file
    (`~` expanded), else {fallback: spec} (a hub id, a folder, a registered name)."""
    p = Path(spec).expanduser()
    if p.is_file():
        return file_id(p).record(name, ns=ns)
    return {fallback: spec}
