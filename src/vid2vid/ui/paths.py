"""Path rules for the web UI: the page writes only inside the cache folder and reads models also from
the user's model folders (read-only roots, `modelroots`).

Every path the page sends (a video, a model, a workspace name) goes through one of these
functions, which resolve it (symlinks and '..' included) and refuse anything outside the
cache folder with a `BadInput` that says what to do instead. Model fields may also hold a
registered name or a hub id; those are passed on as names, never read as local paths.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from vid2vid.core.errors import BadInput
from vid2vid.core.workspace import MANIFEST, Workspace, atomic_path, safe_name
from vid2vid.models.hub import looks_like_hub_id
from vid2vid.ui import modelroots
from vid2vid.video import VIDEO_SUFFIXES

UPLOADS = "uploads"          # uploaded videos are copied here, under a sanitised name
GRADIO_DIR = ".gradio"       # gradio's own upload/temp folder, kept inside the cache too


def cache_root(cache: str | Path) -> Path:
    """The cache folder as an absolute, resolved path (created when missing)."""
    root = Path(cache).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise BadInput(f"cache folder {root} is a file; pick a folder with --cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _clean(text: str | None, what: str) -> str:
    t = (text or "").strip()
    if not t:
        raise BadInput(f"{what} is empty; give a path inside the cache folder")
    if "\x00" in t:
        raise BadInput(f"{what} contains a NUL character; give a plain path inside the cache folder")
    return t


def _bring_it(what: str) -> str:
    """How to get a file into the cache: only videos can be uploaded through the page."""
    return "upload it or copy it there" if what == "video" else "copy it there"


def inside(root: Path, text: str | None, what: str = "path") -> Path:
    """`text` (relative to the cache folder, or absolute) resolved; it must lie inside `root`."""
    t = _clean(text, what)
    p = Path(t)
    real = (p if p.is_absolute() else root / p).resolve()
    if not real.is_relative_to(root):
        raise BadInput(f"{what} '{t}' is outside the cache folder {root}; the page only reads and writes "
                       f"inside it: {_bring_it(what)} and give its path relative to the cache")
    return real


def existing_file(root: Path, text: str | None, what: str = "file") -> Path:
    p = inside(root, text, what)
    if not p.is_file():
        raise BadInput(f"{what} '{text}' does not exist in the cache folder {root}; {_bring_it(what)}")
    return p


def model_spec(root: Path, text: str | None, what: str = "model", names: Iterable[str] = (),
               roots: Sequence[Path] = ()) -> str:
    """What to hand the library for a model field: a resolved path inside the cache or a model root,
    a name, or a hub id.

    Order: a file or folder inside the cache; one inside a model root (`roots`, read-only: given as
    an absolute path, or relative to a root's models folder); a registered name; an 'owner/name' hub
    id. A name or hub id that also exists as a local path outside them (relative to the server's
    working folder) is refused, since the library would read that path.
    """
    t = (text or "").strip()
    if not t:
        return ""
    if "\x00" in t:
        raise BadInput(f"{what} contains a NUL character")
    p = Path(t)
    if p.is_absolute() or ".." in p.parts or t.startswith("~"):
        return str(_readable(root, roots, t, what))
    if (root / p).resolve().exists():
        return str(inside(root, t, what))
    for r in roots:
        candidate = (modelroots.models_folder(r) / p).resolve()
        if candidate.exists() and candidate.is_relative_to(r):
            return str(candidate)
    known = {n.lower() for n in names}
    if t.lower() in known or looks_like_hub_id(t):
        if Path(t).exists():
            raise BadInput(f"{what} '{t}' also names a path outside the cache folder; rename that path or put "
                           "the model inside the cache folder")
        return t
    listed = f" ({', '.join(names)})" if names else ""
    folders = " or a model folder" if roots else ""
    raise BadInput(f"{what} '{t}' is neither a file or folder inside the cache folder {root}{folders}, a known "
                   f"name{listed}, nor a hub id (owner/name)")


def _readable(root: Path, roots: Sequence[Path], text: str, what: str) -> Path:
    """An absolute (or '..', '~') model path: inside the cache, or inside a read-only model root."""
    real = Path(text).expanduser()
    real = (real if real.is_absolute() else root / real).resolve()
    if modelroots.containing(roots, real) is not None:
        if not real.exists():
            raise BadInput(f"{what} '{text}' does not exist in the model folder {modelroots.containing(roots, real)}")
        return real
    if roots and not real.is_relative_to(root):
        raise BadInput(f"{what} '{text}' is outside the cache folder {root} and the model folders "
                       f"({', '.join(str(r) for r in roots)}); the page reads models only from them: pick one from "
                       "the list, or copy it into the cache")
    return inside(root, text, what)


def model_list(root: Path, text: str | None, what: str, roots: Sequence[Path] = ()) -> list[str]:
    """One model path (or hub id) per line; each checked like `model_spec`. Used for LoRAs and embeddings.

    A line may end in ':WEIGHT' (LoRA weight), which is kept and not part of the path.
    """
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        path, weight = line, ""
        head, sep, tail = line.rpartition(":")
        if sep and head and re.fullmatch(r"-?\d+(\.\d+)?", tail):
            path, weight = head, f":{tail}"
        out.append(model_spec(root, path, what, roots=roots) + weight)
    return out


def workspace(root: Path, name: str | None) -> Workspace:
    """An existing workspace, named by its folder name inside the cache."""
    if not (name or "").strip():
        raise BadInput("no workspace is selected; extract a video first (tab 1) or pick a workspace at the top")
    t = _clean(name, "workspace")
    if "/" in t or "\\" in t or t in (".", ".."):
        raise BadInput(f"workspace '{t}' must be a folder name inside the cache folder, not a path")
    p = inside(root, t, "workspace")
    if not (p / MANIFEST).is_file():
        raise BadInput(f"workspace '{t}' does not exist in {root}; extract a video first (tab 1)")
    check_no_links(root, p, f"workspace '{t}'")
    return Workspace(p)


def new_workspace_path(root: Path, name: str) -> Path:
    """The folder of a workspace the page names (new or existing): a plain folder name inside the cache."""
    t = _clean(name, "workspace name")
    if safe_name(t) != t or t.startswith("."):
        raise BadInput(f"workspace name '{t}' may hold only letters, digits, '-', '_' and '.'; "
                       f"'{safe_name(t)}' would do")
    if t == UPLOADS or t == GRADIO_DIR:
        raise BadInput(f"workspace name '{t}' is the cache's own folder; pick another name")
    return inside(root, t, "workspace")


def check_no_links(root: Path, folder: Path, what: str) -> None:
    """No symbolic link on the way from the cache folder to `folder`, nor to any folder below it.

    The page writes into workspace folders; a linked folder anywhere inside (frames/, framedelta/,
    control/1-canny/, ...) would let it write outside the cache. This is the page's rule: the
    command line may keep, say, frames/ on another disk through a link.
    """
    root = Path(root)
    path = Path(os.path.abspath(folder))
    rel = path.relative_to(root) if path.is_relative_to(root) else None
    if rel is None:
        raise BadInput(f"{what} is outside the cache folder {root}")
    here = root
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            raise BadInput(f"{what}: {relative(root, here)} is a symbolic link; the page writes only into "
                           "real folders inside the cache (use the command line for linked folders)")
    for top, dirs, _files in os.walk(path, followlinks=False):
        for d in dirs:
            if os.path.islink(os.path.join(top, d)):
                link = Path(top, d)
                raise BadInput(f"{what}: {link.relative_to(root)} is a symbolic link; the page writes only "
                               "into real folders inside the cache (use the command line for linked folders)")


def list_workspaces(root: Path) -> list[str]:
    """Folder names in the cache that hold a workspace manifest, newest first."""
    found = [p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file()] if root.is_dir() else []
    return [p.name for p in sorted(found, key=lambda p: (p / MANIFEST).stat().st_mtime, reverse=True)]


def upload_name(original: str) -> str:
    """A safe file name for an uploaded video: sanitised stem plus a known video suffix."""
    base = Path(str(original).replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise BadInput(f"'{base}' does not look like a video (suffix '{suffix}'); "
                       f"upload one of: {', '.join(VIDEO_SUFFIXES)}")
    return safe_name(Path(base).stem) + suffix


def store_upload(root: Path, uploaded: str | Path, original: str | None = None) -> Path:
    """Copy an uploaded file into <cache>/uploads/ under a sanitised name; returns the new path."""
    src = Path(uploaded)
    if not src.is_file():
        raise BadInput("the upload did not arrive; upload the video again")
    dest = root / UPLOADS / upload_name(original or src.name)
    check_no_links(root, dest.parent, "the uploads folder")
    if dest.resolve() == src.resolve():
        return dest
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest


def relative(root: Path, path: str | Path) -> str:
    """A path inside the cache as the page shows it (relative to the cache folder)."""
    p = Path(path).resolve()
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
