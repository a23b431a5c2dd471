"""Stage `extract`: frames (and the audio track) of the source video into the workspace."""
from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from vid2vid.config import ExtractSettings, Settings
from vid2vid.errors import BadInput
from vid2vid.fileid import file_id
from vid2vid.imageops import write_png
from vid2vid.progress import Job
from vid2vid.stages import table
from vid2vid.video.decode import iter_frames
from vid2vid.video.encode import copy_audio
from vid2vid.video.probe import VideoInfo, probe
from vid2vid.workspace import Workspace, atomic_path, frame_name

STAGE = "extract"
ROW = table.stage(STAGE)
AUDIO_FILE = "audio.mka"


def _save_frame(rgb, path: Path, fmt: str) -> None:
    if fmt == "png":
        write_png(path, rgb)
        return
    img = Image.fromarray(rgb, "RGB")
    with atomic_path(path) as tmp:
        if fmt == "jpg":
            img.save(tmp, format="JPEG", quality=95, subsampling=0)
        else:
            img.save(tmp, format="WEBP", lossless=True, method=0)


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


def run(ws: Workspace, video: str | Path, settings: Settings, job: Job) -> dict:
    """Extract frames as 00001.<fmt> ... into `frames/` (resumable); returns stage info."""
    es = settings.extract
    es.validate()
    # 1. probe: every bad file is reported before anything in the workspace changes
    info = check_source(video, es)
    # 2. decide fresh / resume / done
    params = {"source": _source_identity(Path(info.path)), "frames": es.frames, "format": es.format,
              "audio": es.audio}
    if es.frames == "fps":
        params["fps"] = es.fps
    status = ws.begin_stage(STAGE, params, overwrite=settings.run.overwrite, outputs=ROW.outputs)
    ws.manifest["video"] = info.to_dict()
    ws.save_manifest()
    if status.state == "done":
        done = ws.stage_info(STAGE)
        job.say(f"extract: already done ({done.get('frames')} frames)")
        return done
    # 3. frames, written by a small pool while the decoder goes on
    folder = ws.frames_dir()
    folder.mkdir(parents=True, exist_ok=True)
    estimate = math.ceil(info.duration * es.fps - 1e-9) if es.frames == "fps" else info.frames
    existing = {p.name for p in folder.iterdir()}
    tracker = job.tracker(STAGE, max(1, estimate))
    n = 0
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for frame in iter_frames(info.path, es.frames, es.fps, end_time=info.duration):
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
    # 4. audio, copied as it is
    audio = None
    if es.audio:
        with atomic_path(ws.path(AUDIO_FILE)) as tmp:
            audio = copy_audio(info.path, tmp, offset=info.start_time)
    ws.complete_stage(STAGE, frames=n, width=info.width, height=info.height, format=es.format,
                      audio=audio, duration=info.duration)
    return ws.stage_info(STAGE)

