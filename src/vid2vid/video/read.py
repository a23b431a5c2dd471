"""Frame sequences for measuring: a frame folder or a video, one frame at a time.

`iter_sequence` yields one zero-argument callable per frame, in order; calling it gives the
frame as uint8 HxWx3 RGB. Nothing is decoded into an array (or read from disk, for a folder)
until it is called, so a consumer that looks at every N-th frame pays for those only, and a
consumer that keeps no frame holds none: memory does not grow with the length of the video.

A video read at `count` frames gives the frames on screen at start + k * duration / count
(k = 0..count-1): the fixed-rate rule of `decode.iter_frames` at count / duration fps, which
matches frames extracted at that rate. The duration is the exact fraction the container
stores (stream duration x time base, else the container's), so sample times that fall on a
frame's own time pick that frame, as extraction does. Pictures are decoded as extraction
decodes them (`plan_decoding` + `to_rgb`): turned upright by the display rotation, deinterlaced,
HDR tone-mapped to SDR and 10-bit rounded, so a source video compares with the generated frames
made from its extracted frames.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np

from vid2vid.core.errors import BadInput
from vid2vid.video.decode import Decoding, iter_frames, plan_decoding
from vid2vid.video.probe import open_video, probe

Frame = Callable[[], np.ndarray]


def _read_u8(path: Path) -> np.ndarray:
    from vid2vid.core.imageops import read_image, to_uint8

    return to_uint8(read_image(path))


def _folder_files(folder: Path) -> list[Path]:
    from vid2vid.core.workspace import list_frames

    files = list_frames(folder)
    if not files:
        raise BadInput(f"{folder} has no image frames (.png, .jpg, .webp); give a frame folder or a video")
    return files


def exact_duration(path: str | Path) -> Fraction:
    """The video's duration in seconds as the exact fraction its container stores."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return stream.duration * Fraction(stream.time_base.numerator, stream.time_base.denominator)
        if container.duration is not None:
            return Fraction(container.duration, av.time_base)
    raise BadInput("the source video has no duration; extract its frames and pass the folder")


def frame_count(path: str | Path) -> int:
    """How many frames `iter_sequence(path)` yields: the images of a folder, the frames of a video
    (counted by demuxing, without decoding)."""
    p = Path(path)
    if p.is_dir():
        return len(_folder_files(p))
    return probe(p, count=True).frames


def iter_sequence(path: str | Path, count: int | None = None, deinterlace: str = "auto") -> Iterator[Frame]:
    """The frames of a folder (natural order) or a video, as lazy uint8 frames (see the module doc).

    count: for a video, sample it to that many frames at the output's frame times; for a
    folder, the number of images it must hold (BadInput otherwise: a folder has no times).
    deinterlace: a video's deinterlacing, as extract's `deinterlace` setting (auto|on|off)."""
    p = Path(path)
    if p.is_dir():
        files = _folder_files(p)
        if count is not None and len(files) != count:
            raise BadInput(f"{p} has {len(files)} frames but the output has {count}; "
                           f"pass the source video instead of the folder to match frame times")
        return (partial(_read_u8, f) for f in files)
    if not p.exists():
        raise BadInput(f"{p} is neither a frame folder nor a video file; check the path")
    decoding = plan_decoding(probe(p), deinterlace)
    if count is None:
        return (d.rgb for d in iter_frames(p, "all", decoding=decoding))
    duration = exact_duration(p)
    if duration <= 0:
        raise BadInput(f"{p} has no duration; extract its frames and pass the folder")
    return _sampled(p, count, duration, decoding)


def _sampled(path: Path, count: int, duration: Fraction, decoding: Decoding) -> Iterator[Frame]:
    last = None
    n = 0
    frames = iter_frames(path, "fps", fps=Fraction(count) / duration, end_time=duration, decoding=decoding)
    for d in itertools.islice(frames, count):
        last = d.rgb
        n += 1
        yield last
    if last is None:
        raise BadInput(f"{path} has no decodable video frames")
    for _ in range(count - n):          # the last frame stays on screen to the end
        yield last
