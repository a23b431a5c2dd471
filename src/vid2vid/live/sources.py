"""Where live frames come from: a camera, a stream URL, or a file played at its own rate.

    source = open_source("/dev/video0")            # Linux camera (PyAV's v4l2 input)
    source = open_source("rtsp://host/stream")       # any URL PyAV opens (rtmp, srt, rtsp, http, udp)
    source = open_source("clip.mp4", loop=False)     # a file, played in real time, once
    for cap in source.frames(stop):                  # Captured(index, at, image) as they arrive

A file plays at its own frame rate from the moment `frames` is first asked for: frame n is
released at start + its presentation time, so a slow consumer sees what a camera would show
(later frames, not a queue). Other platforms' capture devices are named with their PyAV input
format: `avfoundation:0` (macOS), `dshow:video=Name` (Windows).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vid2vid.core import imageops
from vid2vid.core.errors import BadInput

URL_SCHEMES = ("rtmp", "rtmps", "rtsp", "srt", "http", "https", "udp", "tcp")
DEVICE_FORMATS = ("v4l2", "avfoundation", "dshow")
OPEN_TIMEOUT = 10.0       # seconds a URL may take to open before it is refused


@dataclass(frozen=True)
class Captured:
    """One captured frame: its number (0-based, counting every frame the source gave, dropped or
    not), the monotonic time it was captured (released, for a file) and the picture."""

    index: int
    at: float
    image: np.ndarray           # float32 HxWx3 in [0, 1]


def _kind(spec: str) -> tuple[str, str, dict]:
    """(PyAV input format or "", the name to open, options) for a source spec."""
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme in URL_SCHEMES:
        return "", spec, {"timeout": str(int(OPEN_TIMEOUT * 1_000_000)), "rw_timeout": str(int(OPEN_TIMEOUT * 1e6))}
    if spec.startswith("/dev/video"):
        if not Path(spec).exists():
            raise BadInput(f"no such camera {spec}; list the cameras with `ls /dev/video*` and give one of them")
        return "v4l2", spec, {}
    head, sep, rest = spec.partition(":")
    if sep and head in DEVICE_FORMATS:
        return head, rest, {}
    if not Path(spec).expanduser().is_file():
        raise BadInput(f"live source {spec} is not a file, a camera (/dev/videoN, avfoundation:N, dshow:video=NAME) "
                       f"or a URL ({', '.join(URL_SCHEMES)}); give one of those")
    return "", str(Path(spec).expanduser()), {}


class Source:
    """An opened live source; `frames(stop)` yields Captured frames until the source ends or `stop` is set."""

    def __init__(self, spec: str, loop: bool = False):
        import av

        fmt, name, options = _kind(spec)
        self.spec, self.loop, self.realtime_file = spec, loop, not fmt and "://" not in spec
        try:
            self.container = av.open(name, format=fmt or None, options=options, timeout=OPEN_TIMEOUT)
        except (OSError, av.error.FFmpegError, ValueError) as exc:
            raise BadInput(f"live source {spec} does not open ({exc}); check the device, the URL or the file") from exc
        if not self.container.streams.video:
            self.container.close()
            raise BadInput(f"live source {spec} has no video stream; give a camera, a video URL or a video file")
        self.stream = self.container.streams.video[0]
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(12)
        self.fps = Fraction(rate)
        self.width, self.height = self.stream.codec_context.width, self.stream.codec_context.height
        self.has_audio = bool(self.container.streams.audio)

    def _decoded(self) -> Iterator[tuple[float, np.ndarray]]:
        """(seconds into the source, frame) in order, once, or looping for a file with `loop`."""
        offset = 0.0
        while True:
            last = 0.0
            for frame in self.container.decode(self.stream):
                t = float(frame.time) if frame.time is not None else last + 1 / float(self.fps)
                last = t
                yield offset + t, imageops.to_float(frame.to_ndarray(format="rgb24"))
            if not (self.loop and self.realtime_file):
                return
            offset += last + 1 / float(self.fps)
            self.container.seek(0)

    def frames(self, stop: threading.Event) -> Iterator[Captured]:
        start: float | None = None
        first = 0.0
        for index, (t, image) in enumerate(self._decoded()):
            if stop.is_set():
                return
            if self.realtime_file:          # released at its own time, as a camera would show it
                if start is None:
                    start, first = time.monotonic(), t
                wait = start + (t - first) - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    return
            yield Captured(index, time.monotonic(), image)

    def close(self) -> None:
        self.container.close()


def open_source(spec: str, loop: bool = False) -> Source:
    """The live source `spec` opened (BadInput with the fix when it cannot be)."""
    return Source(spec, loop)
