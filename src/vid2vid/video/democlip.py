"""A sample clip made in code: moving shapes over a gradient, with a tone as the audio track.

Used by the demo and the tests, so that neither needs a file from outside. Frame `k` of the
clip has its time (k / fps) written into it as a moving square's position, which lets tests
check which source frame an extracted frame came from.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def sample_frame(k: int, width: int, height: int, n: int) -> np.ndarray:
    """uint8 HxWx3 frame `k` of `n`: a gradient, a square moving right, a disc moving down."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = k / max(1, n - 1)
    img = np.empty((height, width, 3), dtype=np.float32)
    img[..., 0] = 0.25 + 0.5 * xx / width
    img[..., 1] = 0.35 + 0.4 * yy / height
    img[..., 2] = 0.6 - 0.3 * xx / width
    s = max(4, min(width, height) // 4)
    x0 = int(round(phase * (width - s)))
    y0 = (height - s) // 3
    img[y0:y0 + s, x0:x0 + s] = (0.95, 0.8, 0.2)
    r = s // 2
    cx, cy = width // 3, int(round(r + phase * (height - 2 * r - 1)))
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (0.2, 0.3, 0.9)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def make_clip(path: str | Path, width: int = 160, height: int = 96, fps: float = 24.0, seconds: float = 2.0,
              audio: bool = True, times: list[float] | None = None, codec: str = "libx264",
              bframes: int = 2, gop: int = 12) -> Path:
    """Write a sample video; returns its path.

    `times` (seconds) gives variable frame rate presentation times instead of k / fps.
    The audio track is a 440 Hz tone (AAC in mp4/mkv, Opus in webm) lasting `seconds`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(times) if times is not None else int(round(seconds * fps))
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as c:
        vs = c.add_stream(codec, rate=rate)
        lossless = codec in ("png", "ffv1")      # these take odd sizes as they are
        vs.width, vs.height = (width, height) if lossless else (width + width % 2, height + height % 2)
        vs.pix_fmt = "rgb24" if codec == "png" else ("bgr0" if codec == "ffv1" else "yuv420p")
        frame_tb = Fraction(1, 1000) if times is not None else 1 / rate
        if times is not None:
            vs.codec_context.time_base = frame_tb   # keep millisecond times through the encoder
        if codec == "libx264":
            vs.options = {"bf": str(bframes), "g": str(gop), "crf": "18", "preset": "veryfast"}
        astream = None
        if audio:
            acodec = "libopus" if path.suffix == ".webm" else "aac"
            astream = c.add_stream(acodec, rate=48000)
            astream.layout = "mono"
        for k in range(n):
            img = sample_frame(k, width, height, n)
            if img.shape[0] != vs.height or img.shape[1] != vs.width:
                img = np.pad(img, ((0, vs.height - height), (0, vs.width - width), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if vs.pix_fmt != "rgb24":
                frame = frame.reformat(format=vs.pix_fmt)
            frame.pts = int(round(times[k] * 1000)) if times is not None else k
            frame.time_base = frame_tb
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        if astream is not None:
            total = times[-1] + 1 / fps if times is not None else seconds
            _write_tone(c, astream, total)
    return path


def _write_tone(container, stream, seconds: float, hz: float = 440.0) -> None:
    rate, chunk = 48000, 960
    total = int(round(seconds * rate))
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        t = (np.arange(start, start + count) / rate).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for p in stream.encode(frame):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)
