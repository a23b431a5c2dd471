"""Stage `interpolate`: frames in between (RIFE by default) into `rife/`, at `ratio` times the frame count.

Reads `resr/` when the upscale stage is complete, else `img2img/`, and records which. Output
frame j (00001.png ...) follows `plan_frames`: a copy of a source frame, or the frame at time t
between two neighbours; across a scene cut the nearer source frame is repeated instead, so no
ghost of two shots is blended.
"""
from __future__ import annotations

import itertools
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np

from vid2vid.config import Settings, stagetable
from vid2vid.core.errors import BadInput, stage_ref
from vid2vid.core.fileid import spec_identity
from vid2vid.core.imageops import read_image, write_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_path, frame_name
from vid2vid.models.interpolators import (
    PlannedFrame,
    across_cut,
    check_interpolator,
    interpolate_many,
    is_scene_cut,
    load_interpolator,
    plan_frames,
)
from vid2vid.models.interpolators.rife import WEIGHT_SUFFIXES

STAGE = "interpolate"
ROW = stagetable.stage(STAGE)
OUTPUT_DIR = ROW.folder


def source_stage(ws: Workspace) -> str:
    """'upscale' when its results are complete and current, else the generated frames' stage
    ('flow' when the flow-guided pass is current, else 'img2img')."""
    return stagetable.after_generation(ws).name


def _model_identity(model: str) -> dict:
    return spec_identity(model, "model", "model") if Path(model).suffix.lower() in WEIGHT_SUFFIXES else {"model": model}


class _FrameCache:
    """The last few source frames read (consecutive output frames share their neighbours)."""

    def __init__(self, files: list[Path], size: int = 3):
        self.files, self.size = files, size
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self._items:
            self._items[i] = read_image(self.files[i])
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(i)
        return self._items[i]


def _copy_frame(src: Path, dst: Path) -> None:
    if src.suffix.lower() == ".png":
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    else:
        write_image(dst, read_image(src))


def _pair_groups(plan: list[PlannedFrame], missing: list[int]):
    """Consecutive missing outputs grouped by source pair: (None, [copies]) or ((a, b), [in-betweens])."""
    key = lambda j: None if plan[j].is_copy else (plan[j].a, plan[j].b)   # noqa: E731
    for pair, group in itertools.groupby(missing, key=key):
        yield pair, list(group)


def check(settings: Settings) -> None:
    """The interpolator the settings name is known or exists (nothing is loaded)."""
    check_interpolator(settings.interpolate.model)


def space_need(ws: Workspace, settings: Settings):
    """round(N * ratio) PNGs of the source frames' size."""
    from vid2vid.core import diskspace
    from vid2vid.models.interpolators.plan import output_count

    src_stage = source_stage(ws)
    frames = ws.frames(stagetable.stage(src_stage).folder)
    if not frames:
        return None
    w, h = diskspace.image_size(frames[0])
    return diskspace.folder_need(STAGE, output_count(len(frames), settings.interpolate.ratio), [ws.path(OUTPUT_DIR)],
                                 frames, w, h, fix="use a lower {interpolate.ratio} or " + diskspace.FEWER_FRAMES)


def run(ws: Workspace, settings: Settings, job: Job) -> dict:
    """Write round(N * ratio) frames into rife/ (resumable); returns stage info."""
    it = settings.interpolate
    it.validate()
    # 1. inputs (upscaled frames when there are current ones) and model, checked before anything changes
    src_stage = source_stage(ws)
    src_dir = stagetable.stage(src_stage).folder
    frames = ws.frames(src_dir)
    if not frames:
        raise BadInput(f"{ws.path(src_dir)} has no frames to interpolate; run "
                       f"{stage_ref(src_stage, ws.root)} first")
    check_interpolator(it.model)
    # 2. fresh / resume / done
    params = {**_model_identity(it.model), "ratio": it.ratio, "scene_cut": it.scene_cut, "source": src_stage}
    status = ws.begin_stage(STAGE, params, inputs=(src_stage,), overwrite=settings.run.overwrite, outputs=ROW.outputs)
    if status.state == "done":
        info = ws.stage_info(STAGE)
        job.say(f"interpolate: already done ({info.get('frames')} frames from {info.get('source')})")
        return info
    # 3. plan; group the missing in-between frames by source pair so midpoints are shared
    plan = plan_frames(len(frames), it.ratio)
    out_dir = ws.path(OUTPUT_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [out_dir / frame_name(j + 1) for j in range(len(plan))]
    missing = [j for j in range(len(plan)) if not outputs[j].exists()]
    tracker = job.tracker(STAGE, len(plan), done=len(plan) - len(missing))
    model = load_interpolator(it.model, device=it.device) if any(not plan[j].is_copy for j in missing) else None
    cache = _FrameCache(frames)
    cuts = {tuple(c) for c in ws.stage_info(STAGE).get("scene_cuts", [])}
    for pair, group in _pair_groups(plan, missing):
        if pair is None:                                   # 3a. copies of source frames
            for j in group:
                _copy_frame(frames[plan[j].a], outputs[j])
                tracker.advance()
            continue
        a, b = pair
        if is_scene_cut(cache[a], cache[b], it.scene_cut):  # 3b. a cut: repeat the nearer frame
            cuts.add((a + 1, b + 1))
            ws.update_stage_info(STAGE, scene_cuts=sorted(map(list, cuts)))
            for j in group:
                _copy_frame(frames[across_cut(plan[j]).a], outputs[j])
                tracker.advance()
            continue
        assert model is not None            # loaded whenever a frame is not a copy
        images = interpolate_many(model, cache[a], cache[b], [plan[j].t for j in group])   # 3c. in-betweens
        for j, img in zip(group, images):
            write_image(outputs[j], img)
            tracker.advance()
    # 4. record which input was used and what was made
    ws.complete_stage(STAGE, frames=len(plan), source=src_stage, source_frames=len(frames), ratio=it.ratio,
                      model=getattr(model, "name", it.model), in_between=sum(not p.is_copy for p in plan),
                      scene_cuts=sorted(map(list, cuts)))
    return ws.stage_info(STAGE)
