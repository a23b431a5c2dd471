"""Where live frames go: a video file or stream URL, a recording workspace, the page's live view.

Every sink has `show(captured, painted)` and `close(stats)`. A video target keeps the capture times
of the frames it shows: a frame's presentation time is its capture number at the source's rate, so
each shown frame is held until the next and the file lasts as long as the span that was played.
"""
from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from vid2vid.core import imageops
from vid2vid.core.errors import BadInput
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.live.sources import URL_SCHEMES, Captured

STREAM_FORMATS = {"rtmp": "flv", "rtmps": "flv", "srt": "mpegts", "udp": "mpegts", "tcp": "mpegts",
                  "rtsp": "rtsp", "http": "mpegts"}
FILE_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".ts": "mpegts", ".flv": "flv"}


def container_of(target: str) -> str:
    """The container a target is written in (by its URL scheme or file suffix); BadInput otherwise."""
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    if scheme:
        if scheme not in STREAM_FORMATS:
            raise BadInput(f"live output {target}: the scheme {scheme} is not one of "
                           f"{', '.join(s for s in URL_SCHEMES if s in STREAM_FORMATS)}; give a file or such a URL")
        return STREAM_FORMATS[scheme]
    suffix = Path(target).suffix.lower()
    if suffix not in FILE_FORMATS:
        raise BadInput(f"live output {target}: use a file ending in {', '.join(FILE_FORMATS)} or a stream URL")
    parent = Path(target).expanduser().resolve().parent
    if not parent.is_dir():
        raise BadInput(f"live output {target}: the folder {parent} does not exist; create it or write elsewhere")
    return FILE_FORMATS[suffix]


class VideoSink:
    """H.264 into a file or a stream URL, each frame at its capture time (1/fps units)."""

    def __init__(self, target: str, fps: Fraction, size: tuple[int, int]):
        import av

        fmt = container_of(target)
        name = target if "://" in target else str(Path(target).expanduser())
        try:
            self.out = av.open(name, mode="w", format=fmt)
        except (OSError, av.error.FFmpegError) as exc:
            raise BadInput(f"live output {target} cannot be written ({exc}); check the path or the URL") from exc
        self.stream = self.out.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height = size[0] + size[0] % 2, size[1] + size[1] % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = 1 / fps
        self.stream.options = {"preset": "veryfast", "tune": "zerolatency", "crf": "20"}
        self.first: int | None = None
        self.last: tuple[int, np.ndarray] | None = None

    def _write(self, pts: int, image: np.ndarray) -> None:
        import av

        from vid2vid.video.encode import even_size

        frame = av.VideoFrame.from_ndarray(even_size(imageops.to_uint8(image)), format="rgb24")
        frame.pts = pts
        for packet in self.stream.encode(frame):
            self.out.mux(packet)

    def show(self, cap: Captured, painted: np.ndarray) -> None:
        if self.first is None:
            self.first = cap.index
        self._write(cap.index - self.first, painted)
        self.last = (cap.index, painted)

    def close(self, stats=None) -> None:
        if self.last is not None and stats is not None and self.first is not None:
            end = stats.captured - 1 - self.first         # hold the last frame to the end of the span played
            if end > self.last[0] - self.first:
                self._write(end, self.last[1])
        for packet in self.stream.encode(None):
            self.out.mux(packet)
        self.out.close()


class RecordSink:
    """A recording as a normal workspace: frames/ (the captured frames shown) and img2img/ (painted),
    with the extract and img2img stages recorded complete, so export, compare and metrics work on it."""

    def __init__(self, root: Path, source_spec: str, fps: Fraction, audio_from: str | None = None):
        self.ws = Workspace(Path(root)).ensure()
        if self.ws.frames():
            raise BadInput(f"live recording: workspace {root} already holds frames; name a new one")
        self.spec, self.fps, self.audio_from, self.n = source_spec, fps, audio_from, 0
        self.size: tuple[int, int] | None = None

    def show(self, cap: Captured, painted: np.ndarray) -> None:
        self.n += 1
        imageops.write_image(self.ws.path("frames", frame_name(self.n)), imageops.fit(
            cap.image, painted.shape[1], painted.shape[0], "just"))
        imageops.write_image(self.ws.path("img2img", frame_name(self.n)), painted)
        self.size = (painted.shape[1], painted.shape[0])

    def close(self, stats=None) -> None:
        if not self.n or self.size is None:
            return
        span = max(1, stats.captured if stats is not None else self.n) / float(self.fps)
        fps = Fraction(self.n / span).limit_denominator(1001)
        has_audio = False
        if self.audio_from:
            from vid2vid.video.encode import copy_audio

            try:
                copy_audio(self.audio_from, self.ws.path("audio.mka"))
                has_audio = True
            except BadInput:
                pass                      # a source without sound records without it
        w, h = self.size
        self.ws.manifest["video"] = {"path": self.spec, "width": w, "height": h, "fps": str(fps), "duration": span,
                                     "frames": self.n, "has_audio": has_audio}
        self.ws.begin_stage("extract", {"live": self.spec, "frames": self.n}, outputs=())
        self.ws.complete_stage("extract", frames=self.n, width=w, height=h)
        self.ws.begin_stage("img2img", {"live": self.spec, "frames": self.n}, inputs=("extract",), outputs=())
        self.ws.complete_stage("img2img", frames=self.n, width=w, height=h)


class LiveView:
    """The newest shown pair and the figures so far, for the page to poll (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.source: np.ndarray | None = None
        self.painted: np.ndarray | None = None
        self.shown = 0
        self.stats: dict = {}

    def show(self, cap: Captured, painted: np.ndarray) -> None:
        with self._lock:
            self.source, self.painted = cap.image, painted
            self.shown += 1

    def latest(self) -> tuple[np.ndarray | None, np.ndarray | None, int]:
        with self._lock:
            return self.source, self.painted, self.shown

    def close(self, stats=None) -> None:
        with self._lock:
            self.stats = stats.summary() if stats is not None else {}
