"""One folder per input video: layout, manifest, atomic writes, lock and resume bookkeeping.

Layout of a workspace::

    manifest.json     probe, each stage's parameters, input keys and completion
    log.jsonl         one JSON line per event: stage start/finish, timings, errors
    frames/           00001.png ...   (extract)
    audio.mka         the source audio, copied losslessly (extract --audio)
    framedelta/       PNG views of the frame deltas (delta)
    depthmask/ motionmask/ img2img/ img2img.debug/ resr/ rife/   (later stages)
    synth-<source>.<fmt>                                          (export)

Resume rule: every file is written atomically, so a frame file that exists is complete.
A stage record holds a key (hash of its parameters and of the keys of the stages it read);
running a stage with another key invalidates its outputs, and every later stage that read
it notices because the key it recorded for that input no longer matches.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vid2vid.core import locking, pathnames
from vid2vid.core.errors import BadInput, Interrupted, OtherSettings, Vid2VidError, WorkspaceBusy, stage_ref

MANIFEST = "manifest.json"
LOCKFILE = ".lock"
LOGFILE = "log.jsonl"
TMP_PREFIX = ".tmp-"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


# ---------------------------------------------------------------- atomic writes

def _disk_error(path: Path, exc: OSError) -> Vid2VidError:
    if exc.errno == errno.ENOSPC:
        return Vid2VidError(f"the disk is full while writing {path}; free some space and start it again "
                            "to resume (finished frames are kept)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BadInput(f"cannot write {path} ({exc.strerror}); make the folder writable or pick "
                        "another workspace")
    return Vid2VidError(f"cannot write {path}: {exc}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    The temporary name keeps the suffix, so writers that pick a format by suffix still work.
    """
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.stem}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise _disk_error(path, exc) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def remove_stale_temp(path: str | Path) -> int:
    """Delete temporary files that killed processes left beside `path` (`.tmp-<pid>-<name>` whose pid is
    gone); for outputs outside a workspace, which the lock's clean-up does not reach. Returns how many."""
    path = Path(path)
    pattern = re.compile(rf"{re.escape(TMP_PREFIX)}(\d+)-{re.escape(path.stem + path.suffix)}$")
    n = 0
    if not path.parent.is_dir():
        return 0
    for p in path.parent.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file() and not locking.pid_alive(int(m.group(1))):
            _unlink_quietly(p)
            n += 1
    return n


def remove_temp_files(folder: Path) -> int:
    """Delete half-written files (and half-removed folders) a killed run left; returns how many."""
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.iterdir():
        if p.name.startswith(TMP_PREFIX):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
            n += 1
    return n


# ---------------------------------------------------------------- frame files

def frame_name(index: int, ext: str = "png") -> str:
    """File name of frame `index` (1-based): 00001.png."""
    if index < 1:
        raise ValueError(f"frame index starts at 1, got {index}")
    return f"{index:05d}.{ext.lstrip('.')}"


def _natural_key(p: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name))


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of a folder in natural order (00009 before 00010, 9 before 10); temp files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(TMP_PREFIX) and p.is_file()]
    return sorted(files, key=_natural_key)


# ---------------------------------------------------------------- naming

def safe_name(text: str, limit: int = 48) -> str:
    """A file-system-safe version of `text`: letters, digits, '-', '_' and '.', at most `limit` chars."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("._") or "video"
    return text[:limit]


def workspace_name(video: str | Path) -> str:
    """Workspace folder name for a video: readable stem plus a hash of its absolute path (no collisions)."""
    p = Path(video).expanduser().resolve()
    digest = hashlib.sha1(str(p).encode("utf-8")).hexdigest()[:8]
    return f"{safe_name(p.stem)}-{digest}"


# Values renamed since stage keys were first made ("field": {current: first}): a key hashes a value
# under its first name, so results made before the rename stay valid, while the manifest and the run
# log show the name people read everywhere else (the correction method stats was first named seed).
KEY_FIRST_NAMES = {"method": {"stats": "seed"}}


def _first_names(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: KEY_FIRST_NAMES[k].get(v, v) if k in KEY_FIRST_NAMES and isinstance(v, str) else _first_names(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_first_names(v) for v in obj]
    return obj


def params_key(params: Any) -> str:
    """A short stable hash of JSON-able parameters (renamed values under their first names)."""
    blob = json.dumps(_first_names(params), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- workspace

@dataclass
class StageStatus:
    """What `Workspace.begin_stage` decided: `fresh` (start over), `resume` or `done`."""

    name: str
    state: str
    key: str


class Workspace:
    """A workspace folder. Use `with ws.locked():` around any work that writes into it."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self._lock: locking.Lock | None = None
        self._manifest: dict | None = None

    # -- construction

    @classmethod
    def for_video(cls, video: str | Path, cache: str | Path = "vid2vid-cache") -> Workspace:
        return cls(Path(cache) / workspace_name(video))

    def ensure(self) -> Workspace:
        """Create the folder (with a clear error when that is impossible)."""
        if self.root.exists() and not self.root.is_dir():
            raise BadInput(f"workspace {self.root} is a file, not a folder; pick another workspace (a folder name)")
        pathnames.check_new_folder(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _disk_error(self.root, exc) from exc
        return self

    def require(self) -> Workspace:
        """Check that this is a workspace made by `extract`."""
        if not (self.root / MANIFEST).is_file():
            raise BadInput(f"{self.root} is not a workspace (no {MANIFEST}); make one with "
                           f"{stage_ref('extract', self.root)}")
        return self

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def frames_dir(self, name: str = "frames") -> Path:
        return self.root / name

    def frames(self, name: str = "frames") -> list[Path]:
        return list_frames(self.root / name)

    # -- lock

    @contextlib.contextmanager
    def locked(self) -> Iterator[Workspace]:
        """Hold the workspace lock; a second run gets `WorkspaceBusy` instead of interleaving.

        The lock (locking.py: flock, msvcrt or a pid file) never outlives a killed holder, so a
        killed run never blocks the next one.
        """
        if self._lock is not None:      # re-entrant within one process
            yield self
            return
        self.ensure()
        lock = locking.file_lock(self.root / LOCKFILE)
        try:
            lock.acquire()
        except locking.LockHeld as held:
            raise WorkspaceBusy(f"workspace {self.root} is in use by {held.holder}; wait for it to finish "
                                f"(or stop it) and run again{'; ' + held.hint if held.hint else ''}") from None
        except OSError as exc:
            raise _disk_error(self.root / LOCKFILE, exc) from exc
        self._lock = lock
        try:
            for folder in [self.root, *(p for p in self.root.iterdir() if p.is_dir())]:
                remove_temp_files(folder)
            yield self
        finally:
            self._lock = None
            lock.release()

    # -- manifest

    @property
    def manifest(self) -> dict:
        if self._manifest is None:
            self._manifest = self._read_manifest()
        return self._manifest

    def _read_manifest(self) -> dict:
        p = self.root / MANIFEST
        if not p.is_file():
            return {"version": 1, "stages": {}}
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"{p} is damaged ({exc}); delete it to start the workspace over "
                           "(frames already written are kept and reused)") from exc
        data.setdefault("stages", {})
        return data

    def save_manifest(self) -> None:
        atomic_write_json(self.root / MANIFEST, self.manifest)

    def stage_record(self, name: str) -> dict | None:
        return self.manifest["stages"].get(name)

    def stage_info(self, name: str) -> dict:
        """A copy of what stage `name` recorded about its run; the stage must have begun (KeyError otherwise)."""
        return dict(self.manifest["stages"][name].get("info", {}))

    def is_complete(self, name: str) -> bool:
        rec = self.stage_record(name)
        return bool(rec and rec.get("complete") and not self.is_stale(name))

    def is_stale(self, name: str) -> bool:
        """True when a stage this one read has since been re-run with other parameters."""
        rec = self.stage_record(name)
        if not rec:
            return False
        for dep, key in rec.get("inputs", {}).items():
            dep_rec = self.stage_record(dep)
            if dep_rec is None or dep_rec.get("key") != key or self.is_stale(dep):
                return True
        return False

    def stage_key(self, params: dict, inputs: tuple[str, ...] = ()) -> str:
        """The key a stage run with `params` on the current results of `inputs` gets."""
        input_keys = {dep: (self.stage_record(dep) or {}).get("key") for dep in inputs}
        return params_key({"params": params, "inputs": input_keys})

    def keeps_results(self, name: str, params: dict, inputs: tuple[str, ...] = ()) -> bool:
        """True when `begin_stage(name, params, inputs)` would resume or be done (keep what is there)."""
        rec = self.stage_record(name)
        return rec is not None and rec.get("key") == self.stage_key(params, inputs)

    def begin_stage(self, name: str, params: dict, inputs: tuple[str, ...] = (),
                    overwrite: bool = True, *, outputs: tuple[str, ...]) -> StageStatus:
        """Decide whether `name` starts fresh, resumes or is already done; record it.

        `inputs` are the stages whose results this stage reads; they must be complete.
        `outputs` are the folders and files the stage owns (its row in `vid2vid.config.stagetable`).
        With other parameters than recorded, the stage's outputs are removed when
        `overwrite` is true, and kept (with a `BadInput` that says so) when it is false.
        """
        for dep in inputs:
            if not self.is_complete(dep):
                raise BadInput(f"stage '{name}' needs the results of '{dep}', which are missing or out of "
                               f"date in {self.root}; run {stage_ref(dep, self.root)} first")
        input_keys = {dep: self.manifest["stages"][dep]["key"] for dep in inputs}
        key = self.stage_key(params, inputs)
        rec = self.stage_record(name)
        if rec and rec.get("key") == key:
            if rec.get("params") != params:        # same key, renamed values: record them as people read them
                rec["params"] = params
                self.save_manifest()
            state = "done" if rec.get("complete") else "resume"
            self.log("stage", stage=name, state=state)
            return StageStatus(name, state, key)
        existing = [o for o in outputs if self._has_content(self.root / o)]
        if existing:
            if not overwrite:
                changed = _diff_params(rec.get("params", {}) if rec else {}, params)
                raise OtherSettings(refusal(name, self.root, changed), name)
            for o in existing:
                self._remove(self.root / o)
        self.manifest["stages"][name] = {"params": params, "key": key, "inputs": input_keys,
                                         "complete": False, "started": time.time()}
        self.save_manifest()
        self.log("stage", stage=name, state="fresh", params=params)
        return StageStatus(name, "fresh", key)

    def complete_stage(self, name: str, **info: Any) -> None:
        rec = self.manifest["stages"][name]
        rec["complete"] = True
        rec["finished"] = time.time()
        rec.setdefault("info", {}).update(info)
        self.save_manifest()
        self.log("stage", stage=name, state="complete", seconds=round(rec["finished"] - rec["started"], 3),
                 **info)

    def update_stage_info(self, name: str, **info: Any) -> None:
        self.manifest["stages"][name].setdefault("info", {}).update(info)
        self.save_manifest()

    # -- log

    def log(self, event: str, **fields: Any) -> None:
        """Append one JSON line to the run log (best effort: a full disk must not hide the real error)."""
        line = json.dumps({"time": round(time.time(), 3), "event": event, **fields}, default=str)
        try:
            with open(self.root / LOGFILE, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError:
            pass

    def events(self) -> list[dict]:
        """The run log's events, oldest first (a line cut short by a crash is skipped)."""
        try:
            lines = (self.root / LOGFILE).read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def log_unfinished_run(self) -> bool:
        """Log `unfinished-run` when the last `run` in the log has no `run-end` (it was killed or crashed)."""
        last_start = None
        for e in self.events():
            if e.get("event") == "run":
                last_start = e
            elif e.get("event") == "run-end":
                last_start = None
        if last_start is None:
            return False
        self.log("unfinished-run", started=last_start.get("time"),
                 note="the previous run ended without a word (killed, crashed or powered off); resuming")
        return True

    def log_failure(self, stage: str, exc: BaseException) -> str:
        """Log why `stage` stopped: `interrupted` (cancel, Ctrl+C) or `error` with its type; returns which."""
        status = failure_status(exc)
        if status == "interrupted":
            self.log("interrupted", stage=stage, type=type(exc).__name__)
            return status
        self.log("error", stage=stage, type=type(exc).__name__, error=f"{type(exc).__name__}: {exc}",
                 exit_code=getattr(exc, "exit_code", 1))
        return "failed"

    # -- helpers

    @staticmethod
    def _has_content(p: Path) -> bool:
        if p.is_dir():
            return any(p.iterdir())
        return p.exists()

    @staticmethod
    def _remove(p: Path) -> None:
        if p.is_dir():
            trash = p.with_name(f"{TMP_PREFIX}trash-{os.getpid()}-{p.name}")
            os.replace(p, trash)          # one rename: a crash never leaves a half-removed folder
            shutil.rmtree(trash, ignore_errors=True)
        elif p.exists():
            p.unlink()


def failure_status(exc: BaseException) -> str:
    """How a stage that raised `exc` ended: "interrupted" (cancel, Ctrl+C) or "failed"."""
    return "interrupted" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "failed"


def refusal(name: str, root: Path, changed: str) -> str:
    """The one line that refuses to replace stage `name`'s results made with other settings."""
    return (f"stage '{name}' already has results in {root} made with other settings ({changed}); they are kept. "
            "Turn {run.overwrite} on to replace them, or use another workspace")


def _diff_params(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(diffs) or "different inputs"
