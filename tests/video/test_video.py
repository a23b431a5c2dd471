"""Video in and out: probe, the frame-time rule, I/P/B selection, export duration and audio."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import av
import numpy as np
import pytest

from vid2vid.cli.main import main
from vid2vid.config import Settings
from vid2vid.core.errors import BadInput
from vid2vid.core.imageops import read_image, to_uint8
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.stages import export, extract
from vid2vid.video.democlip import make_clip
from vid2vid.video.probe import probe


def decode_all(path):
    """Every frame of a video with its time and picture type, decoded independently of our code."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append((float(f.pts * f.time_base), int(f.pict_type), f.to_ndarray(format="rgb24")))
    return out


def extracted(ws):
    return [to_uint8(read_image(p)) for p in ws.frames()]


def run_extract(tmp_path, clip, name="ws", **opts):
    s = Settings()
    for k, v in opts.items():
        setattr(s.extract, k, v)
    ws = Workspace(tmp_path / name).ensure()
    with ws.locked():
        info = extract.run(ws, clip, s, Job())
    return ws, info


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", fps=24, seconds=2.0, audio=True)


def test_probe_reports_streams_fps_duration_frames_and_audio(clip):
    info = probe(clip)
    assert (info.width, info.height) == (160, 96)
    assert info.fps == Fraction(24)
    assert info.duration == pytest.approx(2.0, abs=1e-6)
    assert info.frames == 48
    assert info.has_audio and info.audio_codec == "aac" and info.sample_rate == 48000
    kinds = sorted(s.kind for s in info.streams)
    assert kinds == ["audio", "video"]


def test_probe_cli_json(clip, capsys):
    assert main(["probe", str(clip), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fps"] == "24/1" and data["frames"] == 48 and data["has_audio"] is True


@pytest.mark.parametrize("fps", [10.0, 24.0, 7.5, 24.2])   # 24.2: within the 1 % allowed above the source
def test_fixed_fps_frame_i_shows_source_at_time_i_over_fps(tmp_path, clip, fps):
    src = decode_all(clip)
    ws, info = run_extract(tmp_path, clip, fps=fps)
    frames = extracted(ws)
    assert len(frames) == math.ceil(2.0 * fps - 1e-9) == info["frames"]
    for k, img in enumerate(frames):
        t = k / fps
        expect = max(i for i, (ts, _, _) in enumerate(src) if ts <= t + 1e-9)
        assert np.array_equal(img, src[expect][2]), f"frame {k} at t={t} should be source frame {expect}"


def test_variable_frame_rate_has_no_drift(tmp_path):
    times = [0.0, 0.05, 0.3, 0.31, 0.7, 1.0]
    clip = make_clip(tmp_path / "vfr.mkv", times=times, audio=False)
    src = decode_all(clip)
    assert [round(t, 3) for t, _, _ in src] == times
    ws, info = run_extract(tmp_path, clip, fps=10.0)
    frames = extracted(ws)
    duration = probe(clip).duration
    assert len(frames) == math.ceil(duration * 10 - 1e-9)
    for k, img in enumerate(frames):
        expect = max(i for i, t in enumerate(times) if t <= k / 10 + 1e-9)
        assert np.array_equal(img, src[expect][2]), k


def test_all_frames_and_picture_types_match_the_stream(tmp_path, clip):
    src = decode_all(clip)
    ws, _ = run_extract(tmp_path, clip, name="all", frames="all")
    assert len(ws.frames()) == len(src)
    codes = {"i": 1, "p": 2, "b": 3}
    for mode, code in codes.items():
        want = [img for _, t, img in src if t == code]
        assert want, f"the test clip should hold {mode.upper()} frames"
        ws, info = run_extract(tmp_path, clip, name=mode, frames=mode)
        got = extracted(ws)
        assert len(got) == len(want) == info["frames"]
        assert all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("fmt,lossless", [("png", True), ("webp", True), ("jpg", False)])
def test_image_formats(tmp_path, clip, fmt, lossless):
    src = decode_all(clip)
    ws, _ = run_extract(tmp_path, clip, format=fmt, fps=24.0)
    files = ws.frames()
    assert files[0].name == f"00001.{fmt}"
    got = to_uint8(read_image(files[3])).astype(np.float64)
    ref = src[3][2].astype(np.float64)
    if lossless:
        assert np.array_equal(got, ref)
    else:
        psnr = 10 * np.log10(255.0 ** 2 / np.mean((got - ref) ** 2))
        assert psnr > 35


def _audio_span(path):
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        a = c.streams.audio[0]
        times = [float(p.pts * p.time_base) for p in c.demux(a) if p.pts is not None and p.size]
        return min(times), max(times), a.codec_context.name


def _video_duration(path):
    info = probe(path, count=True)
    return info.frames / float(info.fps) if info.fps else info.duration, info


@pytest.mark.parametrize("fmt,acodec", [("mp4", "aac"), ("webm", "opus"), ("avi", "mp3"), ("gif", None)])
def test_export_lasts_as_long_as_the_source_with_audio_in_sync(tmp_path, clip, fmt, acodec):
    ws, _ = run_extract(tmp_path, clip, fps=10.0, audio=True)
    s = Settings()
    s.export.source, s.export.format, s.export.audio = "frames", fmt, True
    said = []
    with ws.locked():
        info = export.run(ws, s, Job(log=said.append))
    out = ws.path(f"synth-frames.{fmt}")
    assert info["output"] == str(out) and out.is_file()
    n = len(ws.frames())
    # exact rate: frames / source duration
    assert Fraction(info["fps"]) == Fraction(n) / Fraction(2)
    if fmt == "gif":
        assert any("audio" in m and "dropped" in m for m in said)
        with av.open(str(out)) as c:
            assert not c.streams.audio
            frames = sum(1 for _ in c.decode(video=0))
        assert frames == n
        return
    dur, vinfo = _video_duration(out)
    assert vinfo.frames == n
    assert abs(dur - 2.0) <= 1 / 10 + 1e-6          # within one frame of the source
    start, end, name = _audio_span(out)
    assert name.startswith(acodec)
    assert abs(start) < 0.03                         # audio starts with the first frame
    assert 2.0 - 0.1 < end <= 2.0 + 0.05             # and ends with the last


def test_export_pads_odd_sizes_and_round_trips(tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", width=63, height=47, codec="ffv1", audio=False, fps=12, seconds=1)
    ws, _ = run_extract(tmp_path, clip, frames="all")
    s = Settings()
    s.export.source = "frames"
    with ws.locked():
        export.run(ws, s, Job())
    out = ws.path("synth-frames.mp4")
    back = decode_all(out)
    assert back[0][2].shape == (48, 64, 3)
    orig = extracted(ws)
    # round trip through H.264 CRF 20 and 4:2:0 chroma: close to the frames (this synthetic clip is the
    # worst case: saturated one-pixel colour edges, where 4:2:0 alone costs about 30 dB)
    for a, b in zip(orig, back):
        mse = np.mean((a.astype(np.float64) - b[2][:47, :63].astype(np.float64)) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 25


def test_export_settings_are_written_into_the_video(tmp_path, clip):
    ws, _ = run_extract(tmp_path, clip, fps=6.0)
    s = Settings()
    s.export.source = "frames"
    s.img2img.prompt = "a unique prompt 12345"
    with ws.locked():
        export.run(ws, s, Job())
    with av.open(str(ws.path("synth-frames.mp4"))) as c:
        comment = c.metadata.get("comment", "")
    assert json.loads(comment)["settings"]["img2img"]["prompt"] == "a unique prompt 12345"


def test_cli_extract_then_export_with_audio(tmp_path, clip, capsys):
    ws = tmp_path / "w s ü"       # spaces and non-ASCII must work
    assert main(["extract", str(clip), "-w", str(ws), "--fps", "12", "--audio"]) == 0
    assert main(["export", "-w", str(ws), "--from", "frames", "--audio"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    dur, _ = _video_duration(out)
    assert abs(dur - 2.0) <= 1 / 12
    assert _audio_span(out) is not None


def test_export_to_named_output_replaces_only_when_complete(tmp_path, clip):
    ws, _ = run_extract(tmp_path, clip, fps=6.0)
    target = tmp_path / "out" / "result.mp4"
    s = Settings()
    s.export.source, s.export.output = "frames", str(target)
    with ws.locked():
        export.run(ws, s, Job())
    good = target.read_bytes()
    # a failing export (a frame of another size) must leave the earlier output as it was
    from PIL import Image
    Image.new("RGB", (10, 10)).save(ws.frames()[2])
    s.export.crf = 30
    with pytest.raises(BadInput, match="one size"):
        with ws.locked():
            export.run(ws, s, Job())
    assert target.read_bytes() == good
    assert not [p for p in target.parent.iterdir() if p.name != "result.mp4"]


def test_png_writer_is_lossless_and_pillow_readable(tmp_path):
    from PIL import Image

    from vid2vid.core.imageops import png_bytes

    rng = np.random.default_rng(1)
    cases = [rng.integers(0, 256, (7, 5, 3), dtype=np.uint8), rng.integers(0, 256, (4, 9), dtype=np.uint8),
             rng.integers(0, 65536, (6, 3), dtype=np.uint16), np.zeros((1, 1, 3), np.uint8)]
    for a in cases:
        p = tmp_path / "x.png"
        p.write_bytes(png_bytes(a))
        with Image.open(p) as im:
            b = np.asarray(im)
        assert b.shape == a.shape and np.array_equal(b.astype(np.int64), a.astype(np.int64))
