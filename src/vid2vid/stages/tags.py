"""Stage `tags`: anime tags per extracted frame, and the video's top-k tags as a prompt.

    vid2vid tags -w WS [--model wd14-vit-v2] [--topk 32] [--threshold 0.35]

Writes
    tags/00001.json   {"frame": "00001.png", "tags": {tag: probability, ...}} (most probable first)
    tags.json         {"00001.png": {tag: probability, ...}, ...}  (all frames, once every frame is done)
    tags-topk.txt     the top-k tags over the whole video as one prompt-ready comma list

Resumable per frame. `--topk` only shapes the summary, so changing it rewrites
tags-topk.txt without tagging the frames again; the model or threshold start over.
"""
from __future__ import annotations

import json
from pathlib import Path

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core.imageops import read_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_write_text

STAGE = "tags"
ROW = stagetable.stage(STAGE)
FOLDER = "tags"
SUMMARY = "tags.json"
TOPK_FILE = "tags-topk.txt"


def tags_path(ws: Workspace, frame: Path) -> Path:
    """tags/<frame stem>.json for a frame file."""
    return ws.path(FOLDER, frame.stem + ".json")


def read_frame_tags(path: Path) -> dict[str, float] | None:
    """The tags stored for one frame, or None when the file is missing or unreadable (then it is redone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    tags = data.get("tags") if isinstance(data, dict) else None
    return {str(k): float(v) for k, v in tags.items()} if isinstance(tags, dict) else None


def _write_json(path: Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _load(opts: config.TagsSettings, job: Job):
    from vid2vid.models.taggers import load_tagger

    job.say(f"loading tagger {opts.model}")
    return load_tagger(opts.model, threshold=opts.threshold, progress=job.progress)


def run(ws: Workspace, settings: config.Settings, job: Job, overwrite: bool | None = None) -> dict:
    """Tag every frame that has no tags yet, then write the summary and the top-k prompt."""
    from vid2vid.models.taggers import format_prompt, rank_tags

    # 1. check the settings; load the tagger first when the settings changed, so that a model
    #    that cannot be had never costs the tags made with another one (topk is not a parameter)
    opts = settings.tags
    opts.validate()
    overwrite = settings.run.overwrite if overwrite is None else overwrite
    params = {"model": opts.model, "threshold": opts.threshold}
    rec = ws.stage_record(STAGE)
    tagger = None if rec and rec.get("params") == params else _load(opts, job)

    # 2. decide fresh / resume / done, and tag the frames still missing
    ws.begin_stage(STAGE, params, inputs=("extract",), overwrite=overwrite, outputs=ROW.outputs)
    frames = ws.frames()
    todo = [f for f in frames if read_frame_tags(tags_path(ws, f)) is None]
    if todo:
        tagger = tagger or _load(opts, job)
        tracker = job.tracker(STAGE, len(frames), done=len(frames) - len(todo))
        for frame in todo:
            _write_json(tags_path(ws, frame), {"frame": frame.name, "tags": tagger.tag(read_image(frame))})
            tracker.advance()

    # 3. the whole video: every frame's tags in one file, and the top-k as a prompt line
    per_frame = {f.name: read_frame_tags(tags_path(ws, f)) or {} for f in frames}
    _write_json(ws.path(SUMMARY), per_frame)
    top = rank_tags(per_frame.values(), opts.topk)
    prompt = format_prompt(name for name, _ in top)
    atomic_write_text(ws.path(TOPK_FILE), prompt + "\n")

    # 4. record completion
    info = {"frames": len(frames), "model": opts.model, "topk": opts.topk, "prompt": prompt}
    ws.complete_stage(STAGE, **{k: v for k, v in info.items() if k != "prompt"})
    return info
