"""Folder names that work on every file system (Linux, macOS, Windows), checked before they are made.

Windows refuses device names (CON, NUL, COM1 ... with or without an extension), names ending in a
dot or a space, and the characters ``<>:"/\\|?*`` and control characters. macOS and Windows
compare names without case (and macOS without Unicode normalisation), so two folders that
differ only there are one folder on those systems. A workspace made on Linux must open on the
others, so the same rules hold everywhere.
"""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from vid2vid.core.errors import BadInput

RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                      *(f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³"))})
FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def fold(name: str) -> str:
    """The form two names share when macOS or Windows treat them as one (case and Unicode form)."""
    return unicodedata.normalize("NFC", name).casefold()


def name_problem(name: str) -> str | None:
    """Why `name` (one path component) cannot be a folder on some file system; None when it can."""
    if not name:
        return "it is empty"
    if name != name.rstrip(". "):
        return "it ends in a dot or a space, which Windows drops"
    bad = FORBIDDEN.search(name)
    if bad:
        return f"it contains {bad.group()!r}, which Windows does not allow in names"
    stem = name.split(".")[0].rstrip(" ").upper()
    if stem in RESERVED:
        return f"{stem} is a device name on Windows (as are CON, PRN, AUX, NUL, COM1-9 and LPT1-9)"
    return None


def case_twin(folder: Path) -> str | None:
    """The name of an entry beside `folder` that is the same folder on macOS / Windows but is spelled
    otherwise (case or Unicode form); None when there is none or `folder` exists spelled exactly so."""
    parent = folder.parent
    try:
        names = os.listdir(parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if folder.name in names:
        return None
    key = fold(folder.name)
    return next((n for n in names if fold(n) == key), None)


def check_new_folder(path: str | Path, what: str = "workspace") -> None:
    """Raise BadInput when `path`, or a folder on its way that does not exist yet, has a name that
    some file system refuses, or one that only case tells apart from a folder beside it."""
    path = Path(path)
    parts = [p for p in (path, *path.parents) if p.name not in ("", ".", "..")]
    for p in reversed(parts):                   # outermost first: the first folder to be made
        if p.exists() and p.name in _listdir(p.parent):
            continue                            # already there, spelled so: this system accepts it
        problem = name_problem(p.name)
        if problem:
            raise BadInput(f"{what} name '{p.name}' in {path} would not work on every system: {problem}; "
                           "pick another name")
        twin = case_twin(p)
        if twin is not None:
            raise BadInput(f"{what} name '{p.name}' differs only in case from '{twin}' beside it in "
                           f"{p.parent}, which macOS and Windows take for the same folder; use '{twin}' "
                           "or another name")


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder if str(folder) else ".")
    except OSError:
        return []
