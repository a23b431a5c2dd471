"""`vid2vid correct`: frame delta correction of any folder of generated frames.

The generated frames may come from this tool or any other; the source frames they were made
from are the reference. Files are matched by sorted position (natural order: 9 before 10),
the source delta is resized to the generated size, and every output is a PNG named after its
generated frame. A small record (`correct.json`) in the output folder holds the settings and
an input fingerprint: running again with the same ones resumes, skipping finished frames.

Method "stats" (old name "seed") chains the per-frame correction (fdc.correct_frame) from the first frame on;
"flow" runs vid2vid.temporal.flowpass's flow-guided pass over the sequence, a segment in memory at a time.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.imageops import fit, read_image, read_mask, to_float, to_uint8, write_image, write_mask
from vid2vid.core.progress import Job
from vid2vid.core.workspace import atomic_write_json, list_frames, params_key
from vid2vid.temporal import fdc

STAGE = "correct"
RECORD = "correct.json"
_SHOWN = 5        # missing file names listed in an error


# ---------------------------------------------------------------- checks

def _names(paths: list[Path], limit: int = _SHOWN) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _frames(folder: str | Path, what: str, option: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{what} folder {folder} does not exist; give an existing folder with {option}")
    files = list_frames(folder)
    if not files:
        raise BadInput(f"{what} folder {folder} has no image files (.png, .jpg, .webp); check {option}")
    return files


def _check_counts(source: list[Path], other: list[Path], what: str, folder: Path) -> None:
    """Same number of files, or an error that says which frames are missing on which side."""
    if len(source) == len(other):
        return
    src_stems = {p.stem: p for p in source}
    oth_stems = {p.stem: p for p in other}
    missing = [p for s, p in src_stems.items() if s not in oth_stems]
    extra = [p for s, p in oth_stems.items() if s not in src_stems]
    msg = f"{len(source)} source frames but {len(other)} {what} frames in {folder}"
    if missing and len(missing) < len(source):
        msg += f"; missing in {what}: {_names(missing)}"
    if extra and len(extra) < len(other):
        msg += f"; {what} frames without a source frame: {_names(extra)}"
    if (not missing or len(missing) == len(source)) and (not extra or len(extra) == len(other)):
        tail = source[len(other):] if len(source) > len(other) else other[len(source):]
        side = what if len(source) > len(other) else "source"
        msg += f" (files are matched by sorted position; no {side} frame for {_names(tail)})"
    raise BadInput(msg + "; give one frame per source frame")


def _check_out_dir(out_dir: Path, inputs: dict[str, Path | None]) -> None:
    out_res = out_dir.resolve()
    for option, folder in inputs.items():
        if folder is not None and Path(folder).resolve() == out_res:
            raise BadInput(f"--out {out_dir} is the same folder as {option}; write the corrected frames elsewhere")


# The fields only the flow method reads, at the values they had when stage keys were first made. A
# stage whose method is another one records them at these values: changing them, or their defaults
# (flow strength was 0.75 until the detail gate came), does not redo work they do not touch.
FLOW_ONLY_FIRST = {"flow_strength": 0.75, "flow_mask": "none"}


def key_params(settings: config.CorrectSettings) -> dict:
    """The correction settings as stage parameters (the manifest and the log show them as set, the
    flow-only fields as `FLOW_ONLY_FIRST` under another method; the key hashes a renamed method under
    its first name, see `core.workspace.KEY_FIRST_NAMES`)."""
    params = config.to_dict(settings)
    if settings.method != "flow":
        params.update(FLOW_ONLY_FIRST)
    return params


def _fingerprint(files: list[Path]) -> list[list[Any]]:
    return [[p.name, p.stat().st_size] for p in files]


def _out_path(out_dir: Path, generated: Path) -> Path:
    return out_dir / f"{generated.stem}.png"


def _prepare_out_dir(out_dir: Path, key: str, params: dict, outputs: list[Path], overwrite: bool) -> None:
    """Resume when the record matches; otherwise start over (overwrite) or refuse, keeping the files."""
    record_path = out_dir / RECORD
    existing = [p for p in outputs if p.exists()]
    record = None
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
    if record is not None and record.get("key") == key:
        return
    if existing:
        if not overwrite:
            why = "other settings or inputs" if record is not None else "something else (no correct.json)"
            raise BadInput(f"{out_dir} already has {len(existing)} output frames made with {why}; they are "
                           "kept. Pass --overwrite to replace them, or choose another --out folder")
        for p in existing:
            p.unlink()
    atomic_write_json(record_path, {"key": key, "params": params, "complete": False})


# ---------------------------------------------------------------- the library call

def correct_folder(source_dir: str | Path, generated_dir: str | Path, out_dir: str | Path,
                   settings: config.CorrectSettings, depth_dir: str | Path | None = None,
                   save_masks: str | Path | None = None, job: Job | None = None,
                   overwrite: bool = False, resize: str = "just") -> dict:
    """Apply frame delta correction to a folder of generated frames; resumable.

    source_dir: the source frames (the reference motion); generated_dir: one generated frame
    per source frame (any size, all the same); out_dir: corrected PNGs named after the
    generated frames; depth_dir: depth maps per source frame (delta mask "depth");
    save_masks: folder for the delta masks used (grey PNGs); overwrite: replace outputs made
    with other settings instead of refusing; resize: how the generated frames were fitted from
    the source ("just" stretches; "crop" / "fill" as img2img's resize modes): source frames and
    depth maps are fitted to the generated size the same way before deltas and flows are taken.
    Returns a summary dict.
    """
    job = job or Job()
    source, generated, depth = _check_inputs(source_dir, generated_dir, out_dir, settings, depth_dir, save_masks,
                                             resize)
    out_dir = Path(out_dir)
    # resume or start over
    params = {k: v for k, v in key_params(settings).items() if k != "spatial_mask"}
    if resize != "just":                   # "just" keeps the records of earlier versions valid
        params["resize"] = resize
    key = params_key({"params": params, "source": _fingerprint(source), "generated": _fingerprint(generated),
                      "depth": _fingerprint(depth) if depth else None})
    outputs = [_out_path(out_dir, g) for g in generated]
    _prepare_out_dir(out_dir, key, params, outputs, overwrite)
    masks_dir = Path(save_masks) if save_masks is not None else None

    # correct, reading source frames and depth maps fitted to the generated size
    h, w = read_image(generated[0]).shape[:2]
    src_at = _reader(source, read_image, w, h, resize)
    depth_at = None if depth is None else _reader(depth, read_mask, w, h, resize)
    if settings.method == "flow":
        written = _correct_flow(src_at, generated, depth_at, (w, h), outputs, settings, masks_dir, job)
    else:
        written = _correct_stats(src_at, generated, depth_at, outputs, settings, masks_dir, job)

    # finish the record
    atomic_write_json(out_dir / RECORD, {"key": key, "params": params, "complete": True})
    return {"frames": len(outputs), "written": written, "skipped": len(outputs) - written,
            "method": settings.method, "out": str(out_dir)}


def _check_inputs(source_dir: str | Path, generated_dir: str | Path, out_dir: str | Path,
                  settings: config.CorrectSettings, depth_dir: str | Path | None, save_masks: str | Path | None,
                  resize: str) -> tuple[list[Path], list[Path], list[Path] | None]:
    """The source, generated and depth files of `correct_folder`, every input checked before any work."""
    settings.validate()
    if resize not in config.RESIZE_MODES:
        raise BadInput(f"{{img2img.resize}} '{resize}' is not known; use one of: {', '.join(config.RESIZE_MODES)}")
    source = _frames(source_dir, "source", "--source")
    generated = _frames(generated_dir, "generated", "--generated")
    _check_counts(source, generated, "generated", Path(generated_dir))
    stems = [p.stem for p in generated]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise BadInput(f"generated frames {', '.join(dup[:_SHOWN])} exist in more than one format in "
                       f"{generated_dir}; keep one file per frame")
    needs_depth = (settings.flow_mask if settings.method == "flow" else settings.delta_mask) == "depth"
    depth: list[Path] | None = None
    if needs_depth:
        if depth_dir is None:
            raise BadInput("--delta-mask depth needs depth maps; give --depth DIR (e.g. a workspace's depthmask/)")
        depth = _frames(depth_dir, "depth", "--depth")
        _check_counts(source, depth, "depth", Path(depth_dir))
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, {"--source": Path(source_dir), "--generated": Path(generated_dir),
                             "--depth": Path(depth_dir) if depth_dir else None})
    if save_masks is not None:
        _check_out_dir(Path(save_masks), {"--source": Path(source_dir), "--generated": Path(generated_dir),
                                          "--out": out_dir})
    return source, generated, depth


def _reader(paths: list[Path], read: Callable[[Path], np.ndarray], width: int, height: int,
            resize: str) -> Callable[[int], np.ndarray]:
    """Image i of `paths` (0-based) as `read` gives it, fitted to width x height unless resize is "just"
    ("just" leaves the stretching to the correction itself, as before resize modes existed)."""
    if resize == "just":
        return lambda i: read(paths[i])
    return lambda i: fit(read(paths[i]), width, height, resize)


def _needs_delta(settings: config.CorrectSettings) -> bool:
    return settings.fdc != "none" or settings.delta_mask == "motion"


def _correct_stats(src_at: Callable[[int], np.ndarray], generated: list[Path],
                  depth_at: Callable[[int], np.ndarray] | None, outputs: list[Path],
                  settings: config.CorrectSettings, masks_dir: Path | None, job: Job) -> int:
    """Chain fdc.correct_frame over the frames; the previous output is the 8-bit frame as written."""
    todo = sum(1 for p in outputs if not p.exists())
    tracker = job.tracker(STAGE, len(outputs), done=len(outputs) - todo)
    prev_out: np.ndarray | None = None          # output of frame i - 1 as written, or None = read it
    src_prev: np.ndarray | None = None          # source frame i - 1, or None = read it
    written = 0
    for i, out_path in enumerate(outputs):
        if out_path.exists():
            prev_out = src_prev = None
            continue
        g = read_image(generated[i])
        mask = None
        src_cur = None
        if i == 0:
            out = g                                          # the first frame passes unchanged
        else:
            if prev_out is None:
                prev_out = read_image(outputs[i - 1])
            delta = None
            if _needs_delta(settings):
                src_cur = src_at(i)
                delta = fdc.frame_delta(src_prev if src_prev is not None else src_at(i - 1), src_cur)
            dmap = depth_at(i) if depth_at is not None else None
            out, mask = fdc.correct_frame(g, prev_out, delta, settings, depth=dmap)
        out_u8 = to_uint8(out)
        write_image(out_path, out_u8)
        if mask is not None and masks_dir is not None:
            write_mask(masks_dir / out_path.name, mask)
        prev_out, src_prev = to_float(out_u8), src_cur
        written += 1
        tracker.advance()
    return written


def _correct_flow(src_at: Callable[[int], np.ndarray], generated: list[Path],
                  depth_at: Callable[[int], np.ndarray] | None, size: tuple[int, int], outputs: list[Path],
                  settings: config.CorrectSettings, masks_dir: Path | None, job: Job) -> int:
    """The flow-guided correction (vid2vid.temporal.flowpass), reading and writing one frame at a time.

    Frames are read when the pass needs them (some twice), so memory holds a segment of the
    sequence, not the whole of it (flowpass.flow_correct_frames); frames already written are
    computed again (the pass needs them) but not rewritten.
    """
    try:
        from vid2vid.temporal import flowpass
    except ImportError as exc:
        raise BadInput(f"{{correct.method}} flow needs vid2vid.temporal.flowpass, which this installation lacks "
                       f"({exc}); use {{correct.method}} stats") from exc
    todo = {i for i, p in enumerate(outputs) if not p.exists()}
    if not todo:
        return 0
    n, (w, h) = len(generated), size
    src = lru_cache(maxsize=3)(lambda i: to_uint8(src_at(i)))
    gen = lambda i: to_uint8(read_image(generated[i]))          # noqa: E731
    change_mask = None
    if settings.flow_mask != "none":          # the seed's mask, as a change mask
        mask_settings = replace(settings, delta_mask=settings.flow_mask)

        @lru_cache(maxsize=2)
        def change_mask(i: int) -> np.ndarray | None:
            if i == 0:
                return None
            delta = fdc.frame_delta(to_float(src(i - 1)), to_float(src(i)))
            dmap = depth_at(i) if depth_at is not None else None
            return fdc.delta_mask(mask_settings, fdc.fit_delta(delta, h, w),
                                  None if dmap is None else fdc.fit_depth(dmap, h, w))

    def write(i: int, frame: np.ndarray) -> None:
        if i in todo:
            write_image(outputs[i], frame)
            if change_mask is not None and i > 0 and masks_dir is not None:
                write_mask(masks_dir / outputs[i].name, change_mask(i))

    if n < 2 or settings.flow_strength == 0.0:           # nothing to carry between frames
        for i in sorted(todo):
            write(i, to_float(gen(i)))
        return len(todo)
    segment = flowpass.segment_length(n, w, h)
    tracker = job.tracker(f"{STAGE} (flow)", flowpass.flow_steps(n, segment))
    flowpass.flow_correct_frames(n, (w, h), src, gen, settings.flow_strength, write, change_mask=change_mask,
                                 progress=tracker.advance, segment=segment)
    return len(todo)
