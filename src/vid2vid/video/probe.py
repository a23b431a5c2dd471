"""What is inside a video file: streams, size, fps as a fraction, duration, frame count, audio,
and how its pictures must be read to come out right: display rotation, interlacing, colour
(transfer, primaries, matrix, bits per sample; PQ / HLG mark HDR).

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

from vid2vid.core.errors import BadInput

# FFmpeg demuxers that turn non-video files into a "video" (text as ANSI art, subtitle files)
NOT_VIDEO_FORMATS = {"tty", "srt", "ass", "webvtt", "lrc", "subviewer", "microdvd"}
PICTURE_TYPES = {1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}
# FFmpeg's enums (AVFieldOrder, AVColorTransferCharacteristic, AVColorPrimaries, AVColorSpace)
FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
INTERLACED_ORDERS = ("tt", "bb", "tb", "bt")
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084",
             18: "arib-std-b67"}
PRIMARIES = {1: "bt709", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020", 12: "smpte432"}
MATRICES = {0: "rgb", 1: "bt709", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"}
HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}


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
    # how the pictures are stored; `width` x `height` above is the upright (displayed) size
    rotation: int = 0               # display rotation, degrees counter-clockwise: 0, 90, 180 or 270
    sar: str = "1:1"                # sample (pixel) aspect ratio: 32:27 = a stored pixel is 32/27 as wide as tall
    stored_width: int = 0           # the coded picture, before rotation and aspect ratio
    stored_height: int = 0
    field_order: str = "unknown"    # progressive | tt | bb | tb | bt | unknown
    interlaced: bool = False        # the stream says its pictures are interlaced (field order or frame flag)
    pix_fmt: str = ""
    bit_depth: int = 8
    transfer: str = ""              # colour transfer (bt709, smpte2084 = PQ, arib-std-b67 = HLG, ...)
    primaries: str = ""
    matrix: str = ""
    max_fps: float = 0.0            # the highest rate the stream states (average, guessed, base; VFR input)

    @property
    def hdr(self) -> str:
        """'pq' or 'hlg' for HDR input, '' for SDR."""
        return HDR_TRANSFERS.get(self.transfer, "")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["fps_float"] = round(float(self.fps), 6)
        d["hdr"] = self.hdr
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


def _max_fps_of(stream) -> float:
    rates = [float(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r and 0 < r <= 1000]
    return max(rates, default=0.0)


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
        looks = _picture_facts(p, v.codec_context)
        sar = _sar_of(v)
        w, h = square_width(v.codec_context.width, sar), v.codec_context.height
        looks["sar"] = f"{sar.numerator}:{sar.denominator}"
        if looks["rotation"] in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=str(p), container=c.format.name, width=w, height=h, **looks,
            fps=fps, max_fps=max(float(fps), _max_fps_of(v)), duration=duration, frames=frames, frames_exact=exact,
            video_codec=v.codec_context.name, start_time=start, has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio else "",
            sample_rate=audio.codec_context.sample_rate or 0 if audio else 0,
            channels=audio.codec_context.channels if audio else 0,
            size_bytes=p.stat().st_size, streams=streams)


def _sar_of(stream) -> Fraction:
    """The stream's sample aspect ratio (1 when it states none, or nonsense)."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and 0.1 <= float(sar) <= 10:
            return Fraction(sar.numerator, sar.denominator)
    return Fraction(1)


def square_width(stored_width: int, sar: Fraction | str) -> int:
    """The width the stored picture shows at with square pixels (720 at 32:27 -> 853)."""
    ratio = Fraction(sar.replace(":", "/")) if isinstance(sar, str) else sar
    return max(1, round(stored_width * ratio))


def normal_rotation(degrees: float) -> int:
    """A display rotation as 0, 90, 180 or 270 (counter-clockwise); odd angles go to the nearest quarter."""
    return int(round(degrees / 90.0)) % 4 * 90


def _picture_facts(path: Path, cc) -> dict:
    """Rotation, interlacing and colour of the first decodable picture (the stream header alone does
    not carry the display matrix in PyAV, and often leaves colour unspecified where frames have it)."""
    facts = {"stored_width": cc.width, "stored_height": cc.height, "pix_fmt": cc.pix_fmt or "",
             "field_order": FIELD_ORDERS.get(int(getattr(cc, "field_order", 0) or 0), "unknown"),
             "rotation": 0, "interlaced": False, "bit_depth": 8,
             "transfer": TRANSFERS.get(int(cc.color_trc or 2), ""),
             "primaries": PRIMARIES.get(int(cc.color_primaries or 2), ""),
             "matrix": MATRICES.get(int(cc.colorspace or 2), "")}
    frame = None
    try:
        with av.open(str(path), mode="r") as c:
            frame = next(iter(c.decode(video=0)), None)
    except (av.error.FFmpegError, StopIteration):
        frame = None
    if frame is not None:
        facts["rotation"] = normal_rotation(frame.rotation or 0)
        facts["interlaced"] = bool(frame.interlaced_frame)
        facts["pix_fmt"] = frame.format.name
        facts["transfer"] = TRANSFERS.get(int(frame.color_trc), facts["transfer"])
        facts["primaries"] = PRIMARIES.get(int(frame.color_primaries), facts["primaries"])
        facts["matrix"] = MATRICES.get(int(frame.colorspace), facts["matrix"])
    facts["interlaced"] = facts["interlaced"] or facts["field_order"] in INTERLACED_ORDERS
    if facts["pix_fmt"]:
        try:
            facts["bit_depth"] = max(comp.bits for comp in av.VideoFormat(facts["pix_fmt"]).components)
        except (ValueError, av.error.FFmpegError):
            pass
    return facts


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
        f"picture:   {_picture_line(info)}",
        f"duration:  {info.duration:.3f} s, {info.frames} frames{'' if info.frames_exact else ' (estimated)'}",
        (f"audio:     {info.audio_codec} {info.sample_rate} Hz, {info.channels} ch" if info.has_audio
         else "audio:     none"),
    ]
    return "\n".join(lines)


def _picture_line(info: VideoInfo) -> str:
    parts = [f"{info.pix_fmt or '?'} ({info.bit_depth}-bit)"]
    if info.sar != "1:1":
        parts.append(f"non-square pixels, sample aspect ratio {info.sar} (stored {info.stored_width}x"
                     f"{info.stored_height}, shown {square_width(info.stored_width, info.sar)}x{info.stored_height}; "
                     "frames are extracted with square pixels at the shown shape)")
    if info.rotation:
        parts.append(f"rotated {info.rotation} deg (stored {info.stored_width}x{info.stored_height}; "
                     "frames are extracted upright)")
    parts.append(f"interlaced ({info.field_order})" if info.interlaced else "progressive")
    colour = "/".join(x or "unspecified" for x in (info.matrix, info.primaries, info.transfer))
    parts.append(f"colour {colour}")
    if info.hdr:
        parts.append(f"HDR {info.hdr.upper()} (tone-mapped to SDR BT.709 on extract)")
    return ", ".join(parts)
