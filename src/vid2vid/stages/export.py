"""Stage `export`: a frame folder into a video that lasts as long as the source, with its audio.

The folder's stage must be complete and current (the same check upscale and interpolate make):
an interrupted stage, or one made from frames extracted since with other settings, is refused
with the command that finishes or redoes it. `allow_partial` exports such a folder anyway, at
the frame rate the complete folder would have (so the video is shorter, not a slideshow), and
says how many frames are missing.
"""
from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from vid2vid import __version__
from vid2vid.config import ExportSettings, Settings, stagetable, to_dict
from vid2vid.core.errors import BadInput, render_settings, stage_ref
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_path, remove_stale_temp
from vid2vid.video.encode import encode_video

STAGE = "export"
ROW = stagetable.stage(STAGE)


def default_output(ws: Workspace, es: ExportSettings) -> Path:
    return ws.path(f"synth-{es.source}.{es.format}")


def expected_frames(ws: Workspace, stage: str, folder: str) -> int | None:
    """How many frames `folder` holds once `stage` is complete on the current inputs (None: unknown)."""
    if stage == "extract":
        return (ws.stage_record("extract") or {}).get("info", {}).get("frames")
    if stage in ("img2img", "flow"):
        return len(ws.frames()) or None
    if stage == "upscale":
        return len(ws.frames(stagetable.generated(ws).folder)) or None
    if stage == "interpolate":
        from vid2vid.models.interpolators.plan import output_count

        params = (ws.stage_record("interpolate") or {}).get("params", {})
        read = stagetable.BY_NAME.get(params.get("source", ""), stagetable.generated(ws))
        n = len(ws.frames(read.folder))
        return output_count(n, float(params["ratio"])) if n and params.get("ratio") else None
    return None


def check_source_stage(ws: Workspace, es: ExportSettings, stage: str, folder: str, n: int, job: Job) -> int | None:
    """Refuse a folder whose stage is unfinished or out of date (unless allow_partial); returns the
    number of frames the complete folder has, when known."""
    expected = expected_frames(ws, stage, folder)
    if ws.is_complete(stage):
        return expected
    rec = ws.stage_record(stage)
    command = f"vid2vid {'extract VIDEO' if stagetable.stage(stage).needs_video else stage} -w {ws.root}"
    if rec is None:
        why = f"were not made by the '{stage}' stage of this workspace"
        todo = f"run `{command}` to make them"
    elif ws.is_stale(stage):
        why = (f"are out of date: the '{stage}' stage read results that have been redone since with other "
               "settings (e.g. frames extracted again)")
        todo = f"run `{command}` again to redo them"
    else:
        done = f"{n} of {expected}" if expected else f"{n}"
        why = f"are unfinished: the '{stage}' stage stopped after {done} frames"
        todo = f"run `{command}` to resume it"
    if not es.allow_partial:
        raise BadInput(f"the frames in {ws.path(folder)} {why}; {todo}, or export them as they are with "
                       "{export.allow_partial}")
    missing = f"{expected - n} of {expected} frames missing" if expected and expected > n else "made from older inputs"
    job.say(render_settings(f"export: exporting {ws.path(folder)} as it is ({missing}; "
                            "{export.allow_partial})"))
    return expected


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


READ_AHEAD = 4


def _frames(paths: list[Path]) -> Iterator[np.ndarray]:
    """Read frames in order with a little read-ahead on a second thread (READ_AHEAD frames are
    pending at most, however long the video)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = deque(pool.submit(_read_rgb, p) for p in paths[:READ_AHEAD])
        for nxt in range(READ_AHEAD, len(paths) + READ_AHEAD):
            img = pending.popleft().result()
            if nxt < len(paths):
                pending.append(pool.submit(_read_rgb, paths[nxt]))
            yield img


def run(ws: Workspace, settings: Settings, job: Job) -> dict:
    """Encode the chosen frame folder; the output file is replaced only once it is complete."""
    es = settings.export
    es.validate()
    out = Path(es.output).expanduser() if es.output else default_output(ws, es)
    if out.suffix.lower() != f".{es.format}":
        raise BadInput(f"output {out} does not end in .{es.format}; name it *.{es.format} or change {{export.format}}")
    # --from names a frame folder; img2img means the current generated frames (flow/ when that pass is done)
    row = stagetable.generated(ws) if es.source == "img2img" else stagetable.by_frames(es.source)
    source_stage, folder = row.name, row.folder
    maker = "extract VIDEO" if row.needs_video else stagetable.by_frames(es.source).name
    paths = ws.frames(folder)
    if not paths:
        raise BadInput(f"no frames in {ws.path(folder)}; run {stage_ref(maker, ws.root)} first "
                       "or export another folder ({export.source})")
    expected = check_source_stage(ws, es, source_stage, folder, len(paths), job)
    video = ws.manifest.get("video") or {}
    duration = float(video.get("duration") or 0)
    if duration <= 0:
        raise BadInput(f"the workspace {ws.root} does not know the source duration; run extract again")
    # 1. exact rate: frames / source duration, so the result lasts as long as the source (a partial
    #    folder keeps the complete folder's rate and lasts as long as the frames it has)
    whole = max(len(paths), expected or 0)
    fps = Fraction(whole) / Fraction(duration).limit_denominator(1_000_000)
    duration = min(duration, float(len(paths) / fps))
    audio = None
    if es.audio:
        if es.format == "gif":
            job.say("export: GIF has no audio track; the audio was dropped")
        elif not ws.path("audio.mka").is_file():
            raise BadInput(f"there is no audio in {ws.root}; run {stage_ref('extract', ws.root)} again with "
                           "{extract.audio} on, or export with {export.audio} off")
        else:
            audio = ws.path("audio.mka")
    # 2. skip when the same export of the same frames exists
    src_stage = ws.stage_record(source_stage)
    params = {"source": es.source, "format": es.format, "audio": audio is not None, "crf": es.crf,
              "output": str(out.resolve()), "frames": len(paths), "rate": f"{fps.numerator}/{fps.denominator}",
              "input_key": (src_stage or {}).get("key")}
    rec = ws.manifest.setdefault("exports", {}).get(str(out.resolve()))
    if rec and rec.get("params") == params and out.is_file():
        job.say(f"export: {out} is up to date")
        return dict(rec["info"])
    # 3. encode to a temporary file, then rename over the old output
    with Image.open(paths[0]) as first:
        size = first.size
    tracker = job.tracker(STAGE, len(paths))
    meta = {"comment": json.dumps({"vid2vid": __version__, "settings": to_dict(settings)}, default=str),
            "encoder": f"vid2vid {__version__}"}
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(out)          # what a killed export left beside an output outside the workspace
    with atomic_path(out) as tmp:
        n = encode_video(_frames(paths), tmp, es.format, fps, size, crf=es.crf, audio=audio,
                         duration=duration, on_frame=tracker.advance, metadata=meta)
    info = {"output": str(out), "frames": n, "fps": f"{fps.numerator}/{fps.denominator}",
            "duration": float(n / fps), "audio": audio is not None, "width": size[0], "height": size[1]}
    ws.manifest["exports"][str(out.resolve())] = {"params": params, "info": info}
    ws.save_manifest()
    ws.log("export", **info)
    return info
