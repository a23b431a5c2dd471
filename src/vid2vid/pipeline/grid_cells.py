"""One cell of a settings grid: a small workspace of its own, painted by the stages it needs.

A cell lives in `WS/grid/<name>/cells/<id>/` (the id: a hash of its painting settings, its frames
and the source frames' version) and is a workspace like any other:

    frames/        links to the main workspace's frames (all of them for one frame, so that the
                   frame is painted as `img2img --single N` paints it there; the range for a
                   range, renumbered from 00001)
    img2img.debug/ (one frame) or img2img/, propagate/, flow/ (a range): what the stages paint
    source/        a range's source frames fitted to the canvas (the grid video's source cell
                   and the reference of the cell's fidelity figure)
    cell.json      written last: the cell is done (its settings, frames, output files, figures)

The stages run through `vid2vid.pipeline.runner.run_stage` (one frame: img2img's debug mode;
a range: depth and ControlNet images when wanted, img2img and what follows it), so a killed
cell resumes as any stage does. The main workspace's files are only read and linked.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core import imageops
from vid2vid.core.fileid import file_id
from vid2vid.core.progress import Job
from vid2vid.core.workspace import MANIFEST, Workspace, atomic_write_json, frame_name, params_key
from vid2vid.pipeline.grid_axes import SECTIONS
from vid2vid.pipeline.models import ModelCache, preloaded_model

CELL_FILE = "cell.json"
SOURCE = "source"


def _identity(spec: str) -> Any:
    """A model or LoRA path with its size and time (a replaced file makes new cells); a hub id as is."""
    p = Path(spec).expanduser()
    try:
        return file_id(p).record(ns=True) if p.exists() else spec
    except OSError:
        return spec


def cell_id(ws: Workspace, settings: config.Settings, first: int, last: int) -> str:
    """The cell's folder name: a hash of what decides its pictures (the painting sections but the debug
    frame, the model files' versions, the frames and the version of the extracted frames)."""
    painting = {sec: config.to_dict(getattr(settings, sec)) for sec in SECTIONS}
    painting["img2img"].pop("single", None)
    s = settings.img2img
    files = [_identity(x) for x in (s.model, s.vae, *s.loras, *s.embeddings) if x]
    extract = (ws.stage_record("extract") or {}).get("key")
    return params_key({"painting": painting, "files": files, "frames": [first, last], "extract": extract})[:16]


def _link(src: Path, dst: Path) -> None:
    """`dst` as a hard link to `src` (a copy where links are impossible); an existing `dst` is kept."""
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except FileExistsError:
        pass
    except OSError:
        shutil.copy2(src, dst)


def make_cell_workspace(ws: Workspace, folder: Path, first: int, last: int, single: bool) -> Workspace:
    """The cell's workspace with its source frames linked and extract's record copied (made once;
    the manifest is written last, so a cell killed while linking links again)."""
    cw = Workspace(folder)
    if cw.path(MANIFEST).is_file():
        return cw
    frames = ws.frames()
    picks = frames if single else frames[first - 1:last]
    cw.path("frames").mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(picks, 1):
        _link(src, cw.path("frames", frame_name(i, src.suffix.lstrip("."))))
    rec = copy.deepcopy(ws.stage_record("extract") or {})
    rec.setdefault("info", {})["frames"] = len(picks)
    cw.manifest["video"] = copy.deepcopy(ws.manifest.get("video", {}))
    cw.manifest["stages"] = {"extract": rec}
    cw.save_manifest()
    return cw


def read_done(folder: Path) -> dict | None:
    """The cell's record when it is done, else None."""
    p = folder / CELL_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None                 # damaged: painted again (its stages resume)


def _stages_before(s: config.Settings, single: bool) -> list[str]:
    """The stages img2img reads that the settings want: depth masks, ControlNet images (a range only:
    the debug mode makes its control images itself)."""
    return [name for name in ("depth", "control")
            if (name == "depth" and stagetable.needs_depth(s)) or (name == "control" and not single
                                                                and stagetable.stage(name).wanted(s))]


def paint(cw: Workspace, settings: config.Settings, frame: int | None, job: Job,
          models: ModelCache | None = None) -> list[Path]:
    """Run the stages the cell needs; returns its painted frames. `frame`: the one frame to paint (in
    the main workspace's numbering, which the cell keeps), None: every frame of the cell (a range).
    `models`: the cache whose loaded model img2img takes (None: the stage loads its own)."""
    from vid2vid.pipeline.runner import run_stage

    single = frame is not None
    s = replace(settings, img2img=replace(settings.img2img, single=frame or 0))
    for name in _stages_before(s, single):
        run_stage(name, cw, s, job)
    model = preloaded_model(models, s, job)
    info = run_stage("img2img", cw, s, job, follow=not single, **({} if model is None else {"model": model}))
    if single:
        return [Path(info["output"])]
    return cw.frames(stagetable.generated(cw).folder)


def fitted_source(cw: Workspace, settings: config.Settings, size: tuple[int, int]) -> list[Path]:
    """The cell's source frames fitted to the painted size (w, h) as img2img fits them, in source/."""
    out = []
    for f in cw.frames():
        p = cw.path(SOURCE, f.stem + ".png")
        if not p.is_file():
            imageops.write_image(p, imageops.fit(imageops.read_image(f), *size, settings.img2img.resize))
        out.append(p)
    return out


def figures(cw: Workspace, outputs: list[Path], job: Job) -> dict:
    """Warping error and flicker of the painted range along the source's motion, and its fidelity:
    PSNR against the source fitted to the canvas; what `vid2vid metrics --source CELL/frames OUTPUT
    --ref CELL/source` says."""
    from vid2vid.temporal import metrics
    from vid2vid.video.read import iter_sequence

    n = len(outputs)
    tracker = job.tracker("grid figures", n - 1)
    report = metrics.consistency_report(iter_sequence(cw.path("frames"), n), iter_sequence(outputs[0].parent),
                                        iter_sequence(cw.path(SOURCE), n), progress=tracker.advance)
    return {"warping_error": report["warping_error"], "flicker": report["flicker"], "psnr": report["psnr"]}


def plain(value: Any) -> Any:
    """A setting's value as JSON holds it (a list for lists and tuples)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def paint_cell(ws: Workspace, folder: Path, settings: config.Settings, values: dict[str, Any], first: int,
               last: int, job: Job, models: ModelCache | None = None) -> dict:
    """Paint one cell (resuming what a killed grid left), measure a range, mark it done; its record."""
    single = first == last
    cw = make_cell_workspace(ws, folder, first, last, single)
    outputs = paint(cw, settings, first if single else None, job, models)
    figs = None
    if not single:
        h, w = imageops.read_image(outputs[0]).shape[:2]
        fitted_source(cw, settings, (w, h))
        figs = figures(cw, outputs, job)
    record = {"settings": {k: plain(v) for k, v in values.items()}, "frames": first if single else [first, last],
              "outputs": [str(p.relative_to(folder)) for p in outputs], "figures": figs}
    atomic_write_json(folder / CELL_FILE, record)          # last: the cell is done
    return record


_stop: Any = None             # a worker process's stop flag (set by the driver when its job is cancelled)


def worker_init(stop: Any) -> None:
    """A worker process's start: remember the driver's stop flag (a multiprocessing Event)."""
    global _stop
    _stop = stop


def paint_in_process(ws_root: str, folder: str, settings: dict, values: dict[str, Any], first: int, last: int,
                     threads: int) -> dict:
    """`paint_cell` in a worker process (plain arguments, torch on `threads` threads, no console output;
    it stops at the next frame once the driver sets the stop flag, keeping what is done)."""
    import torch

    torch.set_num_threads(max(1, threads))
    s = config.from_dict(config.Settings, settings)
    job = Job(cancel=_stop) if _stop is not None else Job()
    return paint_cell(Workspace(ws_root), Path(folder), s, values, first, last, job)
