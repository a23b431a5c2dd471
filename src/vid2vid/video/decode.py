"""Frames out of a video: at a fixed fps, all of them, or only I / P / B pictures.

Time rule at a fixed fps: output frame k (0-based) is the source frame on screen at time
start + k / fps, i.e. the last frame whose presentation time is <= that time. Times are exact
fractions, so there is no drift over long videos, and variable frame rate input works too.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vid2vid.errors import BadInput
from vid2vid.video.probe import PICTURE_TYPES, open_video

PICT_CODES = {"i": (1,), "p": (2,), "b": (3,)}


@dataclass
class DecodedFrame:
    """One selected frame: 0-based output index, presentation time (s) and picture type."""

    index: int
    time: float
    pict_type: str
    frame: av.VideoFrame

    def rgb(self) -> np.ndarray:
        """uint8 HxWx3 RGB."""
        return self.frame.to_ndarray(format="rgb24")


def exact_fps(fps: float) -> Fraction:
    """A user's fps as an exact fraction (29.97 -> 2997/100, 12 -> 12)."""
    return Fraction(fps).limit_denominator(1_000_000)


def _frame_time(frame: av.VideoFrame, fallback: Fraction) -> Fraction:
    if frame.pts is None or frame.time_base is None:
        return fallback
    return frame.pts * Fraction(frame.time_base.numerator, frame.time_base.denominator)


def iter_frames(path: str | Path, mode: str = "fps", fps: float = 12.0,
                end_time: float | None = None) -> Iterator[DecodedFrame]:
    """Yield the selected frames of a video in display order.

    mode: "fps" (fixed rate; `end_time` = source duration bounds the last sample), "all",
    or "i" / "p" / "b" (the decoder's own picture types).
    """
    if mode not in ("fps", "all", "i", "p", "b"):
        raise BadInput(f"frame selection '{mode}' is not known; use fps, all, i, p or b")
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from _select(container, stream, mode, fps, end_time)


def _decoded(container, stream) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except av.error.InvalidDataError:
        return  # a truncated or damaged tail: keep what decoded


def _select(container, stream, mode: str, fps: float, end_time: float | None) -> Iterator[DecodedFrame]:
    n_out = 0
    if mode == "fps":
        step = 1 / exact_fps(fps)
        start: Fraction | None = None
        prev: av.VideoFrame | None = None
        last_time = Fraction(0)          # time of `prev`
        for frame in _decoded(container, stream):
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
        end = Fraction(end_time).limit_denominator(1_000_000) if end_time else None
        # the last frame stays on screen until the end of the video
        stop = (start + end) if end is not None else last_time + step / 2
        while start + n_out * step < stop - Fraction(1, 1_000_000) or n_out == 0:
            yield DecodedFrame(n_out, float(start + n_out * step), _ptype(prev), prev)
            n_out += 1
        return
    for frame in _decoded(container, stream):
        ptype = _ptype(frame)
        if mode == "all" or ptype == mode.upper():
            yield DecodedFrame(n_out, float(_frame_time(frame, Fraction(0))), ptype, frame)
            n_out += 1


def _ptype(frame: av.VideoFrame) -> str:
    return PICTURE_TYPES.get(int(frame.pict_type), "?")
