"""Stage `extract`: frames (and the audio track) of the source video into the workspace.

Frames come out upright (display rotation), deinterlaced when the stream is interlaced, and
SDR BT.709 (HDR is tone-mapped); those choices are part of the stage's key, so a workspace
extracted another way is redone. An fps above the source's own rate takes every source frame
(said in one line; export then keeps the source's duration). Before any frame is written, the
frames' disk space is estimated against the free space.
"""
from __future__ import annotations

import io
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from PIL import Image

from vid2vid.config import ExtractSettings, Settings, stagetable
from vid2vid.core import diskspace
from vid2vid.core.errors import BadInput, render_settings
from vid2vid.core.fileid import file_id
from vid2vid.core.imageops import png_bytes, write_png
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_path, frame_name
from vid2vid.video.decode import Decoding, iter_frames, plan_decoding, sample_frames
from vid2vid.video.encode import copy_audio
from vid2vid.video.probe import VideoInfo, probe

STAGE = "extract"
ROW = stagetable.stage(STAGE)
AUDIO_FILE = "audio.mka"
# Pillow's format and options per frame format (PNG has its own fast writer)
PIL_FORMATS = {"jpg": ("JPEG", {"quality": 95, "subsampling": 0}), "webp": ("WEBP", {"lossless": True, "method": 0})}
# an fps this much above the source's is still taken (29.97 vs 30, 23.976 vs 24 are the same rate to people)
FPS_TOLERANCE = 1.01
SIZE_SAMPLES = 3      # frames encoded to estimate the frames' disk space


def _save_frame(rgb, path: Path, fmt: str) -> None:
    if fmt == "png":
        write_png(path, rgb)
        return
    name, options = PIL_FORMATS[fmt]
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, "RGB").save(tmp, format=name, **options)


def frame_bytes(rgb, fmt: str) -> int:
    """Size of one frame file in `fmt`, encoded as the stage writes it."""
    if fmt == "png":
        return len(png_bytes(rgb))
    name, options = PIL_FORMATS[fmt]
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format=name, **options)
    return buf.tell()


def planned_frames(info: VideoInfo, es: ExtractSettings) -> int:
    """How many frames the settings take from the video (I/P/B: at most every frame)."""
    if es.frames == "fps":
        return max(1, math.ceil(info.duration * es.fps - 1e-9))
    return max(1, info.frames)


def _sample_bytes(info: VideoInfo, es: ExtractSettings, decoding: Decoding) -> float:
    """Mean encoded size of a few frames spread over the video (its first frames are often dark)."""
    fractions = [k / (SIZE_SAMPLES + 1) for k in range(1, SIZE_SAMPLES + 1)]
    sizes = [frame_bytes(rgb, es.format) for rgb in sample_frames(info.path, fractions, decoding)]
    return sum(sizes) / len(sizes) if sizes else 0.0


def check_space(ws: Workspace, info: VideoInfo, es: ExtractSettings, decoding: Decoding, params: dict,
                overwrite: bool) -> int:
    """Refuse before anything is written when the frames will not fit on the disk; returns the count."""
    n = planned_frames(info, es)
    keep = ws.keeps_results(STAGE, params)
    existing = len(ws.frames()) if keep else 0
    todo = max(0, n - existing)
    if todo == 0:
        return n
    need = diskspace.SpaceNeed(STAGE, todo, _sample_bytes(info, es, decoding), info.width, info.height, es.format)
    freed = 0 if keep or not overwrite else diskspace.folder_bytes(ws.path(o) for o in ROW.outputs)
    fix = ("extract fewer frames (a lower {extract.fps}, or {extract.frames} i)" if es.frames == "fps" else
           "extract fewer frames ({extract.frames} fps with a low {extract.fps})")
    diskspace.check_space(need, ws.root, f"{fix}, use a smaller frame format ({{extract.format}} jpg), or scale "
                          "the video down first", freed=freed)
    return n


def _source_identity(video: Path) -> dict:
    return file_id(video).record()


def check_source(video: str | Path, es: ExtractSettings) -> VideoInfo:
    """Probe `video` and check it against the settings (size limit, audio); BadInput says what is wrong."""
    info = probe(video)
    if info.width * info.height > es.max_pixels:
        raise BadInput(f"{video} is {info.width}x{info.height}, over the frame size limit of {es.max_pixels} "
                       "pixels; scale the video down first or raise {extract.max_pixels} "
                       "(max_pixels in [extract] of a settings file)")
    if es.audio and not info.has_audio:
        raise BadInput(f"{video} has no audio track; turn {{extract.audio}} off")
    return info


def above_source_rate(info: VideoInfo, es: ExtractSettings) -> bool:
    """The fps asked for is above the video's own rate (frames would only repeat)."""
    src = info.max_fps or float(info.fps)
    return es.frames == "fps" and src > 0 and es.fps > src * FPS_TOLERANCE


def taken(info: VideoInfo, es: ExtractSettings, job: Job) -> ExtractSettings:
    """The settings the frames are taken with: above the source's rate, every source frame (one line says so)."""
    if not above_source_rate(info, es):
        return es
    job.say(render_settings(f"extract: {{extract.fps}} {es.fps:g} is above the video's own rate of "
                            f"{_rate(info.max_fps or float(info.fps))} fps ({_fraction(info.fps)}): taking every "
                            "frame, as {extract.frames} all"))
    return replace(es, frames="all")


def _fraction(f: Fraction) -> str:
    return f"{f.numerator}/{f.denominator}"


def _rate(fps: float) -> str:
    return f"{fps:.3f}".rstrip("0").rstrip(".")


def run(ws: Workspace, video: str | Path, settings: Settings, job: Job) -> dict:
    """Extract frames as 00001.<fmt> ... into `frames/` (resumable); returns stage info."""
    es = settings.extract
    es.validate()
    # 1. probe: every bad file is reported before anything in the workspace changes
    info = check_source(video, es)
    es = taken(info, es, job)
    decoding = plan_decoding(info, es.deinterlace)
    # 2. decide fresh / resume / done; how the pictures are read is part of the key
    params = {"source": _source_identity(Path(info.path)), "frames": es.frames, "format": es.format,
              "audio": es.audio, "decoding": decoding.to_dict()}
    if es.frames == "fps":
        params["fps"] = es.fps
    # 3. will it fit? (before anything in the workspace changes)
    estimate = check_space(ws, info, es, decoding, params, settings.run.overwrite)
    status = ws.begin_stage(STAGE, params, overwrite=settings.run.overwrite, outputs=ROW.outputs)
    ws.manifest["video"] = info.to_dict()
    ws.save_manifest()
    if status.state == "done":
        done = ws.stage_info(STAGE)
        job.say(f"extract: already done ({done.get('frames')} frames)")
        return done
    for note in decoding.notes:
        job.say(f"extract: {note}")
    # 4. frames, written by a small pool while the decoder goes on
    folder = ws.frames_dir()
    folder.mkdir(parents=True, exist_ok=True)
    existing = {p.name for p in folder.iterdir()}
    tracker = job.tracker(STAGE, max(1, estimate))
    n = 0
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for frame in iter_frames(info.path, es.frames, es.fps, end_time=info.duration, decoding=decoding):
            n += 1
            name = frame_name(n, es.format)
            if name not in existing:
                pending.append(pool.submit(_save_frame, frame.rgb(), folder / name, es.format))
            if len(pending) > 8:
                pending.pop(0).result()
            tracker.total = max(tracker.total, n)
            tracker.advance()
        for f in pending:
            f.result()
    if n == 0 and es.frames in ("fps", "all"):
        raise BadInput(f"no frame of {video} could be decoded; the file is damaged - re-download or re-encode it")
    if n == 0:
        raise BadInput(f"{video} has no {es.frames.upper()} frames; choose another {{extract.frames}} mode "
                       "(fps or all)")
    tracker.total = n
    tracker.report()
    # 5. audio, copied as it is
    audio = None
    if es.audio:
        with atomic_path(ws.path(AUDIO_FILE)) as tmp:
            audio = copy_audio(info.path, tmp, offset=info.start_time)
    ws.complete_stage(STAGE, frames=n, width=info.width, height=info.height, format=es.format,
                      audio=audio, duration=info.duration, rotation=info.rotation,
                      deinterlaced=bool(decoding.deinterlace), tone_mapped=decoding.hdr)
    return ws.stage_info(STAGE)

