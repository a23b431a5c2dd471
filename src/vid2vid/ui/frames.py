"""What the page shows of a workspace's frames: pageable strips and the live preview of a running stage.

No gradio here. A strip shows `PAGE` frames of a folder at a time, titled with the range and the
folder's real count ("img2img frames: 25-48 of 204 frames"); the live preview pairs the newest
finished frame of the painting stages with the source frame of the same number. Both only list
folders and read a few files, so polling them every few seconds costs the running stage nothing
measurable (bench/bench_ui_preview.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vid2vid.core.workspace import Workspace

PAGE = 24
# The folders a painting stage writes while it runs, newest stage first: the live preview shows the
# newest frame of the first of them that has frames.
LIVE_FOLDERS = ("propagate", "img2img")


def pages(total: int, per: int = PAGE) -> int:
    return max(1, math.ceil(total / per))


def strip_page(ws: Workspace, folder: str, page: Any = 1, per: int = PAGE) -> tuple[list[Path], int, int]:
    """The frames of page `page` (1-based, clamped to the pages there are) -> (files, first number, total)."""
    files = ws.frames(folder)
    try:
        n = int(page or 1)
    except (TypeError, ValueError):
        n = 1
    n = min(max(1, n), pages(len(files), per))
    start = (n - 1) * per
    return files[start:start + per], start + 1, len(files)


def strip_label(title: str, first: int, shown: int, total: int) -> str:
    """A strip's title with the range it shows and the real count: "img2img frames: 1-24 of 204 frames"."""
    frames = f"frame{'' if total == 1 else 's'}"
    if shown == 0:
        return f"{title}: 0 of {total} {frames}"
    if shown == total:
        return f"{title}: {total} {frames}"
    return f"{title}: {first}-{first + shown - 1} of {total} {frames}"


@dataclass(frozen=True)
class Live:
    """The newest painted frame and its source frame (the same file name in frames/)."""

    folder: str
    painted: Path
    source: Path | None
    done: int          # frames in the painted folder
    total: int         # source frames

    def caption(self) -> str:
        return f"{self.folder}/{self.painted.name}: {self.done} of {self.total} frames painted"


def newest(folder: Path) -> Path | None:
    """The newest finished frame of a folder (by modification time; temp files are not frames)."""
    from vid2vid.core.workspace import list_frames

    files = list_frames(folder)
    if not files:
        return None
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def live(ws: Workspace, folders: tuple[str, ...] = LIVE_FOLDERS) -> Live | None:
    """The live preview of a workspace: None while no painting stage has finished a frame."""
    total = len(ws.frames())
    for folder in folders:
        last = newest(ws.frames_dir(folder))
        if last is None:
            continue
        source = ws.frames_dir() / last.name
        matches = [p for p in ws.frames() if p.stem == last.stem] if not source.is_file() else [source]
        return Live(folder, last, matches[0] if matches else None, len(ws.frames(folder)), total)
    return None
