"""Stage `propagate`: every frame made from the painted key frames (vid2vid.temporal.propagation) into `propagate/`.

With `--keyframes every:K | motion:T`, img2img paints only the key frames (chosen here, by
`workspace_keys`, from the source frames fitted to the canvas; scene cuts always start a key) and
writes them under their own frame numbers; this stage carries them to the frames between along
the source's optical flow, both directions, and fills what neither key's warp can be trusted for
(`--key-fill warp`: a redraw in the keys' local colours on the source's own shape,
vid2vid.temporal.redraw; `img2img`: a light img2img, at `--key-fill-denoise`, of the propagated frame
with just that region masked, for frames whose hole is more than slivers). The keys are steadied
first (`--no-steady-keys` turns it off): each averaged with the two keys on each side along the
source's motion, so propagate/ holds the steadied keys, not img2img's own. `propagate/` then holds
the whole sequence, and the stage table sends the flow pass, upscaling and export to it
(`stagetable.painted`, `stagetable.generated`).

`propagate_folder` does the same for frames made by any tool: `vid2vid propagate --source DIR
--keys DIR --out DIR`, the keys named like the source frames they belong to.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput, stage_ref
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_write_json, frame_name, list_frames, params_key
from vid2vid.temporal import fillbudget
from vid2vid.temporal import propagation as prop
from vid2vid.temporal.flowpass import FlowOptions

STAGE = "propagate"
ROW = stagetable.stage(STAGE)
OUTPUT_DIR = ROW.folder
RECORD = "propagate.json"
INPUTS = ("extract", "img2img")


def check(settings: config.Settings) -> None:
    """The img2img fill needs the Stable Diffusion model (nothing is loaded)."""
    if settings.propagate.fill == "img2img":
        from vid2vid.diffusion.loading import check_model_spec

        check_model_spec(settings.img2img.model)


def canvas_reader(frames: list[Path], width: int, height: int, resize: str) -> Callable[[int], np.ndarray]:
    """Source frame t (0-based) fitted to the canvas the way img2img fits it (float32 HxWx3)."""
    return lambda t: imageops.fit(imageops.read_image(frames[t]), width, height, resize)


def workspace_keys(ws: Workspace, settings: config.Settings, job: Job | None = None) -> list[int]:
    """The 0-based key frames of the workspace's extracted frames under these settings (all frames
    when key frames are off): the source fitted to the canvas, its motion and scene cuts measured
    with the flow the propagation uses."""
    return workspace_shots(ws, settings, job)[0]


def workspace_shots(ws: Workspace, settings: config.Settings, job: Job | None = None) -> tuple[list[int], list[int]]:
    """(keys, shot starts), 0-based: `workspace_keys` and the frames that start a shot (frame 0 and
    every frame after a scene cut; each is a key), which cross-frame attention takes as anchors."""
    frames = ws.frames()
    spec = prop.parse_keyframes(settings.propagate.keyframes)
    if not spec.on:
        return list(range(len(frames))), [0] if frames else []
    s = settings.img2img
    tracker = job.tracker("keys", max(0, len(frames) - 1)) if job is not None else None
    motion = prop.analyse_source(len(frames), (s.width, s.height), canvas_reader(frames, s.width, s.height, s.resize),
                                 progress=tracker.advance if tracker else None)
    starts = [0] + [t for t in range(1, len(frames)) if motion.cuts[t]] if frames else []
    rules = prop.key_rules(len(frames), spec, motion)
    if job is not None:
        job.say(f"key frames ({spec}): {prop.describe_rules(rules)} of {len(frames)} frames")
    return sorted(set().union(*rules.values())), starts


def _image_fill(settings: config.Settings, job: Job, model=None, ws: Workspace | None = None,
                keys: list[int] | None = None):
    """fill(t, frame, hole) for --key-fill img2img: the propagated frame repainted where the hole is,
    at the fill's denoising strength (the img2img engine of the settings' model). With cross-frame
    attention and the 0-based `keys`, the fill reads its nearest key (painting/keyfill.py);
    that fill has a `close()`, to call when the stage is done."""
    from dataclasses import replace

    from vid2vid.painting import controls as ctl
    from vid2vid.painting.painters.image import load_engine

    light = replace(settings, img2img=replace(settings.img2img, denoise=settings.propagate.fill_denoise))
    engine = load_engine(light, job, model)
    nets = list(enumerate(settings.img2img.controlnet, 1))

    def controls_of(t: int) -> list[list[np.ndarray]] | None:
        # ControlNet: frame t's control images steer the fill as they steer img2img's frames
        return [[imageops.read_image(ctl.image_path(ws, n, cn, t + 1)) for n, cn in nets]] \
            if nets and ws is not None else None

    def fill(t: int, frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return engine.generate([frame], masks=[hole[..., None]], controls=controls_of(t))[0]

    if settings.img2img.cross_frame == "none" or not keys or ws is None:
        return fill
    from vid2vid.painting.keyfill import KeyFillAttention  # the fill reads its nearest key

    painted = ws                                              # (narrowed for the closure)
    return KeyFillAttention(engine, settings.img2img, keys, fill, job,
                            lambda k: (painted_key(painted, k), controls_of(k)))


def painted_key(ws: Workspace, k: int) -> np.ndarray:
    """Key frame k (0-based) as img2img painted it."""
    return imageops.read_image(ws.path(stagetable.stage("img2img").folder, frame_name(k + 1)))


def space_need(ws: Workspace, settings: config.Settings):
    """One canvas-sized PNG per frame, at the painted key frames' bytes per pixel."""
    from vid2vid.core import diskspace

    s, frames = settings.img2img, ws.frames()
    keys = ws.frames("img2img") or frames
    if not frames:
        return None
    return diskspace.folder_need(STAGE, len(frames), [ws.path(OUTPUT_DIR)], keys, s.width, s.height,
                                 fix=f"use {diskspace.SMALLER_CANVAS} or {diskspace.FEWER_FRAMES}")


def run(ws: Workspace, settings: config.Settings, job: Job, model=None) -> dict:
    """Propagate the key frames in img2img/ to every frame, into propagate/ (resumable per key interval)."""
    # 1. check settings and inputs
    ps, s = settings.propagate, settings.img2img
    ps.validate()
    if not ps.on:
        raise BadInput("key frames are off; set {propagate.keyframes} (e.g. every:4) and run img2img again")
    frames = ws.frames()
    rec = ws.stage_record("img2img") or {}
    keys = rec.get("info", {}).get("keys")
    if keys is None or rec.get("info", {}).get("keyframes") != str(prop.parse_keyframes(ps.keyframes)):
        raise BadInput(f"img2img in {ws.root} was not painted with {{propagate.keyframes}} {ps.keyframes}; "
                       f"run {stage_ref('img2img', ws.root)} with it first")
    keys0 = [k - 1 for k in keys]
    params = stage_params(ws, settings, len(frames), len(keys0))
    status = ws.begin_stage(STAGE, params, inputs=INPUTS, overwrite=settings.run.overwrite, outputs=ROW.outputs)
    out_dir = ws.path(OUTPUT_DIR)
    targets = [out_dir / frame_name(t + 1) for t in range(len(frames))]
    if status.state == "done" and all(p.exists() for p in targets):
        return ws.stage_info(STAGE)

    # 2. propagate, writing each frame once (frames already written are kept)
    size, source = (s.width, s.height), canvas_reader(frames, s.width, s.height, s.resize)
    chosen = _budgeted(len(frames), size, source, keys0, ps.fill_budget, job) if ps.fill == "img2img" else None
    fill = _image_fill(settings, job, model, ws, keys0) if ps.fill == "img2img" else "warp"
    try:
        stats = _propagate(len(frames), size, source, keys0, partial(painted_key, ws), targets,
                           fill, job, steady=ps.steady_keys, fill_frames=chosen)
    finally:
        if hasattr(fill, "close"):          # cross-frame fill, the model's own attention back
            fill.close()
    filled = stats["filled"] if chosen is None else len(chosen)      # (a budget's frames: this run's and before)
    if ps.fill == "img2img":
        job.say(f"painted by the model: {len(keys0)} keys + {filled} filled = {len(keys0) + filled} of "
                f"{len(frames)} frames")
    ws.complete_stage(STAGE, frames=len(frames), keys=len(keys0), filled=filled,
                      hole_fraction=round(stats["hole_fraction"], 6), fill=ps.fill,
                      **(fill.record() if hasattr(fill, "record") else {}))
    return ws.stage_info(STAGE)


def stage_params(ws: Workspace, settings: config.Settings, n: int, keys: int) -> dict:
    """The stage's parameters (its key). With the img2img fill, `fill_budget` enters only when it is
    below 1, and not for a workspace whose stage finished before the budget existed and filled no
    more frames than the budget allows (the budget picks exactly those frames there: it is kept)."""
    ps, s = settings.propagate, settings.img2img
    params = {"keyframes": ps.keyframes, "fill": ps.fill, "resize": s.resize, "steady_keys": ps.steady_keys}
    if ps.fill != "img2img":
        return params
    params |= {"fill_denoise": ps.fill_denoise, "fill_open": prop.fill_opening((s.width, s.height)),
               "fill_min": prop.FILL_MIN}
    limit = fillbudget.allowance(n, keys, ps.fill_budget)
    if limit is None:
        return params
    rec = ws.stage_record(STAGE) or {}
    unbudgeted = rec.get("complete") and rec.get("key") == ws.stage_key(params, INPUTS)
    if unbudgeted and rec.get("info", {}).get("filled", limit + 1) <= limit:
        return params
    return params | {"fill_budget": ps.fill_budget}


def _budgeted(n: int, size: tuple[int, int], source, keys: list[int], budget: float, job: Job):
    """The frames the img2img fill repaints under `budget` (vid2vid.temporal.fillbudget.fill_frames,
    from the holes measured before anything is painted); None: no limit."""
    limit = fillbudget.allowance(n, len(keys), budget)
    if limit is None:
        return None
    tracker = job.tracker("holes", n - len(keys))
    shares = fillbudget.hole_shares(n, size, source, keys, FlowOptions(), prop.fill_opening(size), tracker.advance)
    chosen = fillbudget.choose(shares, limit, prop.FILL_MIN)
    job.say(f"fill budget {budget:g} of {n} frames: {len(keys)} keys leave the fill {limit} frames; "
            f"{sum(s > prop.FILL_MIN for s in shares.values())} have a hole to repaint, {len(chosen)} chosen")
    return chosen


def _propagate(n: int, size: tuple[int, int], source, keys: list[int], key_frame, targets: list[Path], fill,
               job: Job, steady: bool = True, fill_frames=None) -> dict:
    todo = {t for t, p in enumerate(targets) if not p.exists()}
    tracker = job.tracker(STAGE, n, done=n - len(todo))
    targets[0].parent.mkdir(parents=True, exist_ok=True)

    def write(t: int, frame: np.ndarray, hole) -> None:
        imageops.write_image(targets[t], frame)
        tracker.advance()

    return prop.propagate_frames(n, size, source, keys, key_frame, write, fill=fill, todo=todo.__contains__,
                                 steady=steady, fill_frames=fill_frames)


# ---------------------------------------------------------------- any folders

def propagate_folder(source_dir: str | Path, keys_dir: str | Path, out_dir: str | Path, *, resize: str = "just",
                     job: Job | None = None, overwrite: bool = False, steady: bool = True) -> dict:
    """Every source frame from the key frames in `keys_dir` (named like the source frames they belong
    to, any image format, one size), into PNGs in `out_dir` named like the source frames; fill "warp";
    steady: steady the keys first (vid2vid.temporal.propagation.steady_key, `--no-steady-keys` turns it off).
    The first and last source frames must have keys. Resumes when run again with the same inputs."""
    job = job or Job()
    source_dir, keys_dir, out_dir = Path(source_dir), Path(keys_dir), Path(out_dir)
    # 1. check the inputs
    if resize not in config.RESIZE_MODES:
        raise BadInput(f"{{img2img.resize}} '{resize}' is not known; use one of: {', '.join(config.RESIZE_MODES)}")
    for what, folder, option in (("source", source_dir, "--source"), ("key", keys_dir, "--keys")):
        if not folder.is_dir():
            raise BadInput(f"{what} folder {folder} does not exist; give an existing folder with {option}")
    source = list_frames(source_dir)
    key_files = list_frames(keys_dir)
    if not source:
        raise BadInput(f"source folder {source_dir} has no image files (.png, .jpg, .webp); check --source")
    if not key_files:
        raise BadInput(f"key folder {keys_dir} has no image files (.png, .jpg, .webp); check --keys")
    if out_dir.resolve() in (source_dir.resolve(), keys_dir.resolve()):
        raise BadInput(f"--out {out_dir} is an input folder; write the frames elsewhere")
    index = {p.stem: t for t, p in enumerate(source)}
    unknown = [p.name for p in key_files if p.stem not in index]
    if unknown:
        raise BadInput(f"key frames {', '.join(unknown[:5])} have no source frame of the same name in {source_dir}; "
                       f"name each key like the source frame it belongs to")
    by_t = {index[p.stem]: p for p in key_files}
    if len(by_t) != len(key_files):
        raise BadInput(f"{keys_dir} holds a key frame in more than one format; keep one file per frame")
    keys = sorted(by_t)
    missing = [source[t].name for t in (0, len(source) - 1) if t not in by_t]
    if missing:
        raise BadInput(f"no key frame for {', '.join(missing)}; the first and the last source frame need keys "
                       f"(put their paintings in {keys_dir})")
    h, w = imageops.read_image(by_t[keys[0]]).shape[:2]
    # 2. resume or start over (a record of the inputs in the output folder)
    key = params_key({"source": [[p.name, p.stat().st_size] for p in source],
                      "keys": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in key_files],
                      "resize": resize, "steady_keys": steady})
    targets = [out_dir / f"{p.stem}.png" for p in source]
    record = out_dir / RECORD
    if not (record.is_file() and _record_key(record) == key):
        existing = [p for p in targets if p.exists()]
        if existing and not overwrite:
            raise BadInput(f"{out_dir} already has {len(existing)} frames made from other inputs; they are kept. "
                           f"Pass --overwrite to replace them, or choose another --out folder")
        for p in existing:
            p.unlink()
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record, {"key": key, "complete": False})
    # 3. propagate
    stats = _propagate(len(source), (w, h), canvas_reader(source, w, h, resize), keys,
                       lambda k: imageops.read_image(by_t[k]), targets, "warp", job, steady=steady)
    atomic_write_json(record, {"key": key, "complete": True})
    return {"frames": len(source), "keys": len(keys), "out": str(out_dir),
            "hole_fraction": stats["hole_fraction"]}


def _record_key(path: Path) -> str | None:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8")).get("key")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
