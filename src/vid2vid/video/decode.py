"""Frames out of a video: at a fixed fps, all of them, or only I / P / B pictures.

Time rule at a fixed fps: output frame k (0-based) is the source frame on screen at time
start + k / fps, i.e. the last frame whose presentation time is <= that time. Times are exact
fractions, so there is no drift over long videos, and variable frame rate input works too.

Pictures come out as they are meant to be seen (`Decoding`, planned from the probe by
`plan_decoding`): interlaced frames through FFmpeg's `bwdif` deinterlacer (one frame out per
frame in, before the frames are chosen), non-square pixels made square at the shape the video is
shown at (720x480 at 32:27 -> 853x480), turned upright by the display rotation, HDR (PQ / HLG)
tone-mapped to SDR BT.709 (vid2vid.video.tonemap), and more than 8 bits per sample rounded, not
truncated, to 8.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vid2vid.config import DEINTERLACE_MODES
from vid2vid.core.errors import BadInput
from vid2vid.video.probe import PICTURE_TYPES, VideoInfo, normal_rotation, open_video, square_width
from vid2vid.video.tonemap import DEFAULT_PEAK_NITS, hdr_to_sdr, round_to_8bit

DEINTERLACER = "bwdif"


@dataclass(frozen=True)
class Decoding:
    """How pictures are turned into upright 8-bit SDR RGB (part of the extract stage's key)."""

    rotation: int = 0            # display rotation applied, degrees counter-clockwise
    deinterlace: str = ""        # "" (none) or the filter: "bwdif=mode=send_frame:parity=auto:deint=..."
    hdr: str = ""                # "pq" | "hlg" | "": tone-mapped to SDR BT.709
    peak_nits: float = DEFAULT_PEAK_NITS
    high_bit: bool = False       # more than 8 bits per sample: rounded from 16-bit RGB
    square: tuple[int, int] = (0, 0)   # non-square pixels: the stored picture resized to this width x height
    notes: tuple[str, ...] = field(default=(), compare=False)   # what the console is told

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("notes")
        if not any(self.square):         # square pixels: the key of workspaces made before this field
            d.pop("square")
        return d


def plan_decoding(info: VideoInfo, deinterlace: str = "auto") -> Decoding:
    """What to do to the pictures of the probed video; `deinterlace` is auto | on | off."""
    if deinterlace not in DEINTERLACE_MODES:
        raise BadInput(f"deinterlace '{deinterlace}' is not known; use auto, on or off")
    notes = []
    filt = ""
    if deinterlace == "on" or (deinterlace == "auto" and info.interlaced):
        # auto: only the frames flagged interlaced; on: every frame
        filt = f"{DEINTERLACER}=mode=send_frame:parity=auto:deint={'interlaced' if deinterlace == 'auto' else 'all'}"
        why = "interlaced input, " + info.field_order if info.interlaced else "asked for"
        notes.append(f"deinterlacing with {DEINTERLACER} ({why})")
    elif info.interlaced:
        notes.append("the video is interlaced but deinterlacing is off: moving edges will show combing")
    if info.rotation:
        notes.append(f"turning frames upright (display rotation {info.rotation} deg): {info.width}x{info.height}")
    if info.hdr:
        notes.append(f"HDR {info.hdr.upper()} input ({info.primaries or 'unspecified primaries'}): tone-mapped to SDR "
                     f"BT.709 (Hable, peak {DEFAULT_PEAK_NITS:g} cd/m2)")
    high = info.bit_depth > 8
    if high and not info.hdr:
        notes.append(f"{info.bit_depth}-bit input: rounded to 8 bits")
    square = (0, 0)
    if info.sar != "1:1" and info.stored_width:
        square = (square_width(info.stored_width, info.sar), info.stored_height)
        notes.append(f"non-square pixels (sample aspect ratio {info.sar}): frames made square at "
                     f"{square[0]}x{square[1]}, the shape the video is shown at")
    return Decoding(rotation=info.rotation, deinterlace=filt, hdr=info.hdr, high_bit=high, square=square,
                    notes=tuple(notes))


def to_rgb(frame: av.VideoFrame, decoding: Decoding = Decoding()) -> np.ndarray:
    """A decoded frame as upright uint8 HxWx3 RGB, tone-mapped and rounded as `decoding` says."""
    if decoding.hdr:
        rgb = hdr_to_sdr(frame.to_ndarray(format="rgb48le"), decoding.hdr, decoding.peak_nits)
    elif decoding.high_bit:
        rgb = round_to_8bit(frame.to_ndarray(format="rgb48le"))
    else:
        rgb = frame.to_ndarray(format="rgb24")
    if any(decoding.square) and (rgb.shape[1], rgb.shape[0]) != decoding.square:
        rgb = _resized_u8(rgb, *decoding.square)
    turns = normal_rotation(decoding.rotation) // 90
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _resized_u8(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 RGB resized (area when shrinking, bicubic when growing, as imageops.resize)."""
    import cv2

    interp = cv2.INTER_AREA if width * height < rgb.shape[0] * rgb.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interp)


@dataclass
class DecodedFrame:
    """One selected frame: 0-based output index, presentation time (s) and picture type."""

    index: int
    time: float
    pict_type: str
    frame: av.VideoFrame
    decoding: Decoding = Decoding()

    def rgb(self) -> np.ndarray:
        """uint8 HxWx3 RGB, upright, SDR."""
        return to_rgb(self.frame, self.decoding)


def exact_fps(fps: float | Fraction) -> Fraction:
    """A user's fps (or a time in seconds) as an exact fraction: a float as the nearest fraction with
    a denominator up to 10^6 (29.97 -> 2997/100, 12 -> 12), a Fraction as it is."""
    if isinstance(fps, Fraction):
        return fps
    return Fraction(fps).limit_denominator(1_000_000)


def _frame_time(frame: av.VideoFrame, fallback: Fraction) -> Fraction:
    if frame.pts is None or frame.time_base is None:
        return fallback
    return frame.pts * Fraction(frame.time_base.numerator, frame.time_base.denominator)


def iter_frames(path: str | Path, mode: str = "fps", fps: float | Fraction = 12.0,
                end_time: float | Fraction | None = None, decoding: Decoding = Decoding()) -> Iterator[DecodedFrame]:
    """Yield the selected frames of a video in display order.

    mode: "fps" (fixed rate; `end_time` = source duration bounds the last sample), "all",
    or "i" / "p" / "b" (the decoder's own picture types). A Fraction fps or end_time is used
    exactly (a float is read as the nearest fraction with a denominator up to 10^6). `decoding` (from `plan_decoding`)
    deinterlaces before the frames are chosen; rotation and colour apply in `DecodedFrame.rgb`.
    """
    if mode not in ("fps", "all", "i", "p", "b"):
        raise BadInput(f"frame selection '{mode}' is not known; use fps, all, i, p or b")
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = _decoded(container, stream)
        if decoding.deinterlace:
            frames = _filtered(frames, stream, decoding.deinterlace)
        for chosen in _select(frames, mode, fps, end_time):
            chosen.decoding = decoding
            yield chosen


def sample_frames(path: str | Path, fractions: list[float], decoding: Decoding = Decoding()) -> list[np.ndarray]:
    """RGB pictures near the given fractions of the duration (seeking, so cheap on long videos; not
    deinterlaced): for estimates, not for the frames themselves. Unseekable files give the first frame."""
    out: list[np.ndarray] = []
    with open_video(path) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        for frac in fractions:
            try:
                if duration and stream.time_base:
                    container.seek(int(frac * duration / stream.time_base), stream=stream, backward=True)
                frame = next(iter(container.decode(stream)), None)
            except (av.error.FFmpegError, StopIteration):
                frame = None
            if frame is not None:
                out.append(to_rgb(frame, decoding))
    return out


def _decoded(container, stream) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except av.error.InvalidDataError:
        return  # a truncated or damaged tail: keep what decoded


def _filtered(frames: Iterator[av.VideoFrame], stream, spec: str) -> Iterator[av.VideoFrame]:
    """Frames through one FFmpeg filter (`name=options`); bwdif keeps one frame out per frame in,
    with the times it was given (it holds one frame back, flushed at the end)."""
    name, _, options = spec.partition("=")
    graph = av.filter.Graph()
    src = graph.add_buffer(template=stream)
    filt = graph.add(name, options)
    sink = graph.add("buffersink")
    src.link_to(filt)
    filt.link_to(sink)
    graph.configure()

    def ready() -> Iterator[av.VideoFrame]:
        while True:
            try:
                yield graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    for frame in frames:
        graph.vpush(frame)
        yield from ready()
    graph.vpush(None)
    yield from ready()


def _select(frames: Iterator[av.VideoFrame], mode: str, fps: float | Fraction,
            end_time: float | Fraction | None) -> Iterator[DecodedFrame]:
    n_out = 0
    if mode == "fps":
        step = 1 / exact_fps(fps)
        start: Fraction | None = None
        prev: av.VideoFrame | None = None
        last_time = Fraction(0)          # time of `prev`
        for frame in frames:
            t = _frame_time(frame, last_time + step)
            if start is None:
                start = t
            # every sample time before this frame appears shows the previous frame
            while prev is not None and start + n_out * step < t:
                yield DecodedFrame(n_out, float(start + n_out * step), _ptype(prev), prev)
                n_out += 1
            prev, last_time = frame, t
        if prev is None or start is None:
            return
        end = exact_fps(end_time) if end_time else None
        # the last frame stays on screen until the end of the video
        stop = (start + end) if end is not None else last_time + step / 2
        while start + n_out * step < stop - Fraction(1, 1_000_000) or n_out == 0:
            yield DecodedFrame(n_out, float(start + n_out * step), _ptype(prev), prev)
            n_out += 1
        return
    for frame in frames:
        ptype = _ptype(frame)
        if mode == "all" or ptype == mode.upper():
            yield DecodedFrame(n_out, float(_frame_time(frame, Fraction(0))), ptype, frame)
            n_out += 1


def _ptype(frame: av.VideoFrame) -> str:
    return PICTURE_TYPES.get(int(frame.pict_type), "?")
