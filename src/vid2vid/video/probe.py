"""What is inside a video file: streams, size, fps as a fraction, duration, frame count, audio.

`open_video` is the one place that turns a path into an open PyAV container, so every stage
reports a missing, unreadable, audio-only or empty file the same way.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from vid2vid.errors import BadInput

# FFmpeg demuxers that turn non-video files into a "video" (text as ANSI art, subtitle files)
NOT_VIDEO_FORMATS = {"tty", "srt", "ass", "webvtt", "lrc", "subviewer", "microdvd"}
PICTURE_TYPES = {1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}


@dataclass
class StreamInfo:
    index: int
    kind: str                  # video | audio | subtitle | data
    codec: str
    time_base: str
    width: int = 0
    height: int = 0
    fps: str = ""              # fraction as text, e.g. "30000/1001"
    sample_rate: int = 0
    channels: int = 0


@dataclass
class VideoInfo:
    """A probe result. `fps` is exact (Fraction); `duration` in seconds; `frames` counted or estimated."""

    path: str
    container: str
    width: int
    height: int
    fps: Fraction
    duration: float
    frames: int
    frames_exact: bool
    video_codec: str
    start_time: float
    has_audio: bool
    audio_codec: str = ""
    sample_rate: int = 0
    channels: int = 0
    size_bytes: int = 0
    streams: list[StreamInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["fps_float"] = round(float(self.fps), 6)
        return d


def check_video_path(path: str | Path) -> Path:
    """A clear BadInput for the usual path mistakes; returns the path."""
    p = Path(path).expanduser()
    if not p.exists():
        raise BadInput(f"video {p} does not exist; check the path (quote it if it has spaces)")
    if p.is_dir():
        raise BadInput(f"{p} is a folder, not a video file; give the path of a video file")
    if p.stat().st_size == 0:
        raise BadInput(f"video {p} is empty (0 bytes); give a complete video file")
    return p


@contextlib.contextmanager
def open_video(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open a video for reading; missing, non-video, corrupt and audio-only files raise BadInput."""
    p = check_video_path(path)
    try:
        container = av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BadInput(f"{p} is not a readable video (FFmpeg: {reason}); check that the file is complete "
                       "and in a common format (mp4, mkv, webm, avi, mov)") from None
    try:
        if container.format.name in NOT_VIDEO_FORMATS:
            raise BadInput(f"{p} is not a readable video (FFmpeg sees {container.format.long_name or 'text'}); "
                           "give a video file (mp4, mkv, webm, avi, mov)")
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise BadInput(f"{p} has no video stream (streams: {kinds}); give a file with video in it")
        yield container
    finally:
        container.close()


def _fps_of(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate.numerator, rate.denominator)
    return Fraction(0)


def probe(path: str | Path, count: bool = False) -> VideoInfo:
    """Describe a video. With `count` the frames are counted by demuxing (exact, no decoding).

    A video whose stream holds no decodable frame raises BadInput (a zero-frame video).
    """
    p = check_video_path(path)
    with open_video(p) as c:
        v = c.streams.video[0]
        fps = _fps_of(v)
        tb = v.time_base or Fraction(1, 1)
        start = float(v.start_time * tb) if v.start_time is not None else 0.0
        if v.duration:
            duration = float(v.duration * tb)
        elif c.duration:
            duration = c.duration / av.time_base - max(0.0, start)
        else:
            duration = 0.0
        streams = [_stream_info(s) for s in c.streams]
        audio = c.streams.audio[0] if c.streams.audio else None
        frames, exact = int(v.frames or 0), bool(v.frames)
        if count or not frames:     # demuxing reads to the end: done last, no seek back needed
            frames, exact = _count_frames(c, v.index), True
            if not duration and frames and fps:
                duration = float(frames / fps)
        if frames == 0:
            raise BadInput(f"{p} has a video stream with no frames in it; give a video that plays")
        if not fps and duration:
            fps = Fraction(frames / duration).limit_denominator(1001)
        return VideoInfo(
            path=str(p), container=c.format.name, width=v.codec_context.width, height=v.codec_context.height,
            fps=fps, duration=duration, frames=frames, frames_exact=exact,
            video_codec=v.codec_context.name, start_time=start, has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio else "",
            sample_rate=audio.codec_context.sample_rate or 0 if audio else 0,
            channels=audio.codec_context.channels if audio else 0,
            size_bytes=p.stat().st_size, streams=streams)


def _count_frames(container, index: int) -> int:
    n = 0
    try:
        for packet in container.demux(video=0):
            if packet.stream.index == index and packet.size:
                n += 1
    except av.error.FFmpegError:
        pass  # a truncated tail: count what is readable
    return n


def _stream_info(s) -> StreamInfo:
    cc = s.codec_context
    info = StreamInfo(index=s.index, kind=s.type, codec=cc.name if cc else "?", time_base=str(s.time_base))
    if s.type == "video":
        info.width, info.height = cc.width, cc.height
        fps = _fps_of(s)
        info.fps = f"{fps.numerator}/{fps.denominator}"
    elif s.type == "audio":
        info.sample_rate, info.channels = cc.sample_rate or 0, cc.channels
    return info


def format_probe(info: VideoInfo) -> str:
    """A short human-readable summary."""
    lines = [
        f"file:      {info.path} ({info.size_bytes / 1e6:.1f} MB, {info.container})",
        f"video:     {info.video_codec} {info.width}x{info.height} @ {float(info.fps):.3f} fps "
        f"({info.fps.numerator}/{info.fps.denominator})",
        f"duration:  {info.duration:.3f} s, {info.frames} frames{'' if info.frames_exact else ' (estimated)'}",
        (f"audio:     {info.audio_codec} {info.sample_rate} Hz, {info.channels} ch" if info.has_audio
         else "audio:     none"),
    ]
    return "\n".join(lines)
