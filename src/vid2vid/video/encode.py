"""Frames into a video file, with the source audio put back in sync.

Formats: mp4 = H.264 (CRF) yuv420p + AAC; webm = VP9 + Opus (48 kHz); avi = MPEG-4 part 2
+ MP3; gif = one optimised global palette, no audio. The frame rate is exact (a fraction):
frames / source duration, so the result lasts as long as the source. Sizes the codec cannot
take (odd width/height for 4:2:0) are padded by repeating the last row/column.

Audio is stored in the workspace as a Matroska file holding the source's own packets
(`copy_audio`); at export it is copied packet by packet when the container accepts the codec,
and transcoded otherwise.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vid2vid.core.errors import BadInput, Vid2VidError


@dataclass(frozen=True)
class Format:
    container: str
    video_codec: str
    pix_fmt: str
    audio_codecs: tuple[str, ...]   # codecs the container takes as they are
    audio_encoder: str              # what to transcode other audio to ("" = no audio)
    audio_rate: int | None = None


FORMATS = {
    "mp4": Format("mp4", "libx264", "yuv420p", ("aac", "mp3", "alac", "ac3", "opus", "flac"), "aac"),
    "webm": Format("webm", "libvpx-vp9", "yuv420p", ("opus", "vorbis"), "libopus", 48000),
    "avi": Format("avi", "mpeg4", "yuv420p", ("mp3", "ac3", "pcm_s16le"), "libmp3lame"),
    "gif": Format("gif", "gif", "rgb8", (), ""),
}


def even_size(img: np.ndarray) -> np.ndarray:
    """Pad uint8 HxWx3 by one repeated row/column where width or height is odd (4:2:0 needs even)."""
    h, w = img.shape[:2]
    ph, pw = h % 2, w % 2
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return img


def _to_video_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """uint8 HxWx3 RGB (even size) as a frame in `pix_fmt`; 4:2:0 through OpenCV (BT.601 limited
    range, as FFmpeg's default conversion, about ten times faster than swscale in this build)."""
    if pix_fmt == "yuv420p":
        import cv2

        return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def copy_audio(video: str | Path, out: str | Path, offset: float = 0.0) -> dict:
    """Copy the first audio stream's packets losslessly into a Matroska file.

    `offset` (seconds, the video's start time) is subtracted so that audio time 0 is the first
    video frame. Returns a description of the stream.
    """
    from vid2vid.video.probe import open_video

    with open_video(video) as src:
        if not src.streams.audio:
            raise BadInput(f"{video} has no audio track; turn {{export.audio}} off")
        a_in = src.streams.audio[0]
        with av.open(str(out), mode="w", format="matroska") as dst:
            a_out = dst.add_stream_from_template(a_in)
            shift = int(round(offset / a_in.time_base)) if a_in.time_base else 0
            n = 0
            for packet in src.demux(a_in):
                if packet.dts is None or not packet.size:
                    continue
                packet.pts = (packet.pts or 0) - shift
                packet.dts = packet.dts - shift
                packet.stream = a_out
                dst.mux(packet)
                n += 1
        return {"codec": a_in.codec_context.name, "sample_rate": a_in.codec_context.sample_rate,
                "packets": n}


def _global_palette(frames: list[Image.Image]) -> Image.Image:
    """One 256-colour palette for the whole GIF, from a mosaic of up to 16 sampled frames."""
    pick = frames[:: max(1, len(frames) // 16)][:16]
    w, h = pick[0].size
    scale = max(1, int(np.sqrt(w * h * len(pick) / 1_000_000)))
    tiles = [im.resize((max(1, w // scale), max(1, h // scale))) for im in pick]
    tw, th = tiles[0].size
    mosaic = Image.new("RGB", (tw * len(tiles), th))
    for i, t in enumerate(tiles):
        mosaic.paste(t, (i * tw, 0))
    return mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def write_gif(frames: Iterable[np.ndarray], out: Path, fps: Fraction,
              on_frame: Callable[[], None] | None = None) -> int:
    """Palette-optimised GIF (delays in centiseconds, as the format stores them).

    Holds every frame until the end: one palette is made from frames spread over the whole
    clip, and Pillow's GIF writer takes the sequence at once. GIF is for short clips; long
    videos go to mp4 / webm / avi, which are encoded frame by frame."""
    images = []
    for f in frames:
        images.append(Image.fromarray(f, "RGB"))
        if on_frame:
            on_frame()
    if not images:
        raise BadInput("no frames to export")
    palette = _global_palette(images)
    quant = [im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for im in images]
    # centisecond delays that add up to the exact duration (no drift over long GIFs)
    ends = [round(100 * (i + 1) / fps) for i in range(len(quant))]
    durations = [10 * (e - s) for s, e in zip([0] + ends[:-1], ends)]
    quant[0].save(out, format="GIF", save_all=True, append_images=quant[1:], duration=durations,
                  loop=0, optimize=False, disposal=1)
    return len(quant)


def encode_video(frames: Iterator[np.ndarray], out: Path, fmt: str, fps: Fraction, size: tuple[int, int],
                 crf: int = 20, audio: Path | None = None, duration: float | None = None,
                 on_frame: Callable[[], None] | None = None, metadata: dict | None = None) -> int:
    """Encode uint8 HxWx3 frames of one `size` (w, h) to `out`; returns the number of frames.

    `audio` is a Matroska file from `copy_audio`; it is cut at `duration` seconds.
    """
    spec = FORMATS[fmt]
    if fmt == "gif":
        return write_gif(frames, out, fps, on_frame)
    w, h = size
    ew, eh = w + w % 2, h + h % 2
    with av.open(str(out), mode="w", format=spec.container) as dst:
        if metadata:
            for k, v in metadata.items():
                dst.metadata[k] = str(v)
        vs = dst.add_stream(spec.video_codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = ew, eh, spec.pix_fmt
        # frame times as exact multiples of 1/fps; the stream's time base is left to the muxer
        frame_tb = 1 / fps if fps.denominator < 100_000 else Fraction(1, 90000)
        vs.codec_context.thread_type = "FRAME"
        if fmt == "mp4":
            # frames are converted with BT.601 limited range (below): say so in the stream
            vs.options = {"crf": str(crf), "preset": "medium", "x264-params": "colormatrix=smpte170m:range=tv"}
        elif fmt == "webm":
            vs.options = {"crf": str(min(63, crf + 11)), "b": "0", "row-mt": "1", "deadline": "good",
                          "cpu-used": "4"}
        elif fmt == "avi":
            vs.options = {"qscale": "3"}
            vs.codec_context.qscale = 3
        audio_packets = _audio_packets(dst, spec, audio, duration) if audio else iter(())
        next_audio = next(audio_packets, None)
        n = 0
        for img in frames:
            if img.shape[1] != w or img.shape[0] != h:
                raise BadInput(f"frame {n + 1} is {img.shape[1]}x{img.shape[0]}, the first was {w}x{h}; "
                               "all frames of a video must have one size")
            vf = _to_video_frame(even_size(img), spec.pix_fmt)
            vf.pts = int(round(n / fps / frame_tb))
            vf.time_base = frame_tb
            for packet in vs.encode(vf):
                dst.mux(packet)
            n += 1
            # interleave: audio up to the time this frame ends
            while next_audio is not None and next_audio[0] < n / fps:
                dst.mux(next_audio[1])
                next_audio = next(audio_packets, None)
            if on_frame:
                on_frame()
        for packet in vs.encode(None):
            dst.mux(packet)
        while next_audio is not None:
            dst.mux(next_audio[1])
            next_audio = next(audio_packets, None)
    return n


def _audio_packets(dst, spec: Format, audio: Path, duration: float | None) -> Iterator[tuple[float, av.Packet]]:
    """Add the audio stream to `dst` now (before the first packet) and yield (time, packet) to mux.

    Copies packets when the container takes the codec, transcodes otherwise; stops at `duration`.
    """
    src = av.open(str(audio), mode="r")
    a_in = src.streams.audio[0]
    if a_in.codec_context.name in spec.audio_codecs:
        a_out = dst.add_stream_from_template(a_in)
        return _copied(src, a_in, a_out, duration)
    rate = spec.audio_rate or a_in.codec_context.sample_rate or 48000
    a_out = dst.add_stream(spec.audio_encoder, rate=rate)
    layout = a_in.codec_context.layout.name if a_in.codec_context.layout else "stereo"
    a_out.layout = layout if layout in ("mono", "stereo") else "stereo"
    return _transcoded(src, a_in, a_out, rate, duration)


def _copied(src, a_in, a_out, duration: float | None) -> Iterator[tuple[float, av.Packet]]:
    with src:
        for packet in src.demux(a_in):
            if packet.dts is None or not packet.size:
                continue
            t = float(packet.pts * a_in.time_base) if packet.pts is not None else 0.0
            if duration is not None and t >= duration:
                break
            packet.stream = a_out
            yield t, packet


def _transcoded(src, a_in, a_out, rate: int, duration: float | None) -> Iterator[tuple[float, av.Packet]]:
    resampler = av.AudioResampler(format=a_out.codec_context.format.name if a_out.codec_context.format
                                  else "fltp", layout=a_out.layout, rate=rate)

    def timed(packets):
        for packet in packets:
            t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else 0.0
            yield t, packet

    with src:
        try:
            for frame in src.decode(a_in):
                if duration is not None and frame.time is not None and frame.time >= duration:
                    break
                frame.pts = None
                for rf in resampler.resample(frame):
                    yield from timed(a_out.encode(rf))
            for rf in resampler.resample(None):
                yield from timed(a_out.encode(rf))
            yield from timed(a_out.encode(None))
        except av.error.FFmpegError as exc:
            raise Vid2VidError(f"audio transcoding to {a_out.codec_context.name} failed: {exc}") from exc
