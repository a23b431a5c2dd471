"""Temporal consistency figures against hand-made cases and direct formulas."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import metrics_reference as reference
from metrics_reference import same
from vid2vid.core.errors import BadInput
from vid2vid.temporal import metrics, reporting
from vid2vid.temporal.opticalflow import PairFlow, as_float_rgb, inside_mask, resize_to


def smooth_texture(width: int, height: int, seed: int = 0, waves: int = 4,
                   freq: tuple[float, float] = (0.03, 0.15)) -> np.ndarray:
    """float32 HxWx3 in [0, 1]: a sum of a few sinusoids (smooth, textured everywhere)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        for _ in range(waves):
            fx, fy, ph = rng.uniform(*freq), rng.uniform(*freq), rng.uniform(0, 6.3)
            img[..., c] += np.sin(xx * fx + yy * fy + ph).astype(np.float32)
    img -= img.min()
    return (img / img.max()).astype(np.float32)


def translating(n: int, dx: int, width: int = 96, height: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Frames S_t(x, y) = T(x + t * dx, y): the content moves left by dx px per frame, so the flow
    at frame t towards t-1 is (+dx, 0) everywhere it stays in view."""
    big = smooth_texture(width + n * dx, height, seed)
    return [np.ascontiguousarray(big[:, t * dx:t * dx + width]) for t in range(n)]


def constant_flow(height: int, width: int, dx: float, dy: float = 0.0) -> np.ndarray:
    f = np.zeros((height, width, 2), np.float32)
    f[..., 0], f[..., 1] = dx, dy
    return f


# ---------------------------------------------------------------- warping error

def test_warping_error_of_a_translation_with_known_flow_is_the_direct_formula():
    rng = np.random.default_rng(1)
    src = translating(4, 2)
    outs = [np.clip(s + rng.uniform(-0.1, 0.1), 0, 1).astype(np.float32) for s in src]  # brightness flicker
    pf = PairFlow(constant_flow(64, 96, 2.0), inside_mask(constant_flow(64, 96, 2.0)))
    for a, b in itertools.pairwise(outs):
        direct = np.abs(b[:, :94].astype(np.float64) - a[:, 2:96]).mean()
        assert metrics.pair_warping_error(a, b, pf) == pytest.approx(direct, rel=1e-5)
    # a steady output along the motion scores 0 even though every pixel changes
    assert metrics.pair_warping_error(src[0], src[1], pf) == pytest.approx(0.0, abs=1e-6)
    assert metrics.frame_difference(src[0], src[1]) > 0.01


def test_warping_error_with_estimated_flow_sees_flicker_not_motion():
    src = translating(5, 2, width=128, height=96)
    steady = metrics.warping_error(src, src)
    offsets = [0.0, 0.1, 0.0, 0.1, 0.0]
    flickering = [np.clip(s + o, 0, 1) for s, o in zip(src, offsets)]
    we = metrics.warping_error(src, flickering)
    assert steady < 0.01
    assert we > 0.07          # about |0.1| on every pair, minus clipping


def test_identical_frames_give_zero():
    frame = as_float_rgb(np.full((32, 48, 3), 77, np.uint8))
    seq = [frame] * 4
    assert metrics.warping_error(seq, seq) == 0.0
    assert metrics.flicker(seq) == 0.0
    assert math.isinf(metrics.psnr(frame, frame))


def test_uint8_inputs_never_wrap():
    src = [np.full((16, 24, 3), 128, np.uint8)] * 2
    out = [np.full((16, 24, 3), 200, np.uint8), np.full((16, 24, 3), 10, np.uint8)]
    # uint8 arithmetic would give (10 - 200) % 256 = 66 and 200 - 10 = 190 in different orders
    assert metrics.warping_error(src, out) == pytest.approx(190 / 255, rel=1e-6)
    assert metrics.flicker(out) == pytest.approx(190 / 255, rel=1e-6)
    assert metrics.psnr(out[0], out[1]) == pytest.approx(10 * math.log10(1 / (190 / 255) ** 2), rel=1e-6)


# ---------------------------------------------------------------- fidelity

def test_psnr_matches_the_direct_formula():
    rng = np.random.default_rng(2)
    a = rng.random((20, 30, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    direct = 10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    assert metrics.psnr(a, b) == pytest.approx(direct, rel=1e-9)
    a8, b8 = (rng.random((8, 8, 3)) * 255).astype(np.uint8), (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    direct8 = 10 * np.log10(255.0 ** 2 / np.mean((a8.astype(np.float64) - b8) ** 2))
    assert metrics.psnr(a8, b8) == pytest.approx(direct8, rel=1e-6)
    # sequence PSNR: the MSE over all frames, not the mean of per-frame PSNRs
    seq = metrics.sequence_psnr([a, a], [b, a])
    assert seq == pytest.approx(10 * np.log10(1.0 / (np.mean((a.astype(np.float64) - b) ** 2) / 2)), rel=1e-6)


# ---------------------------------------------------------------- report

def test_report_resizes_the_source_and_lists_per_pair_figures():
    src = translating(5, 2, width=128, height=96)
    out = [resize_to(s, 64, 48) for s in src]
    ref = [np.clip(o + 0.02, 0, 1) for o in out]
    r = metrics.consistency_report(src, out, ref)
    assert (r["width"], r["height"], r["frames"]) == (64, 48, 5)
    assert len(r["per_pair"]["warping_error"]) == 4 and len(r["per_frame"]["psnr"]) == 5
    assert r["warping_error"] == pytest.approx(np.mean(r["per_pair"]["warping_error"]))
    assert r["warping_error"] < 0.02        # the output follows the (resized) source motion
    assert r["psnr"] == pytest.approx(metrics.sequence_psnr(out, ref))
    assert r["source_flicker"] == pytest.approx(metrics.flicker(out), rel=1e-3)
    json.loads(reporting.report_json(r))
    with pytest.raises(BadInput):
        metrics.consistency_report(src[:4], out)


def test_metrics_command_prints_json_and_a_plot(tmp_path, capsys):
    from vid2vid.cli.main import main
    from vid2vid.core.imageops import read_image, to_uint8, write_image
    from vid2vid.core.workspace import frame_name, list_frames

    src = translating(4, 2, width=64, height=48)
    rng = np.random.default_rng(3)
    gen = [np.clip(s + rng.uniform(-0.05, 0.05), 0, 1) for s in src]
    for name, seq in (("src", src), ("out", gen), ("ref", src)):
        for i, f in enumerate(seq, 1):
            write_image(tmp_path / name / frame_name(i), f)
    code = main(["metrics", "--source", str(tmp_path / "src"), str(tmp_path / "out"), "--ref",
                 str(tmp_path / "ref"), "--json", "--plot", str(tmp_path / "p.png")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    u8 = [[to_uint8(read_image(p)) for p in list_frames(tmp_path / n)] for n in ("src", "out", "ref")]
    assert same(reference.consistency_report(*u8), report)
    assert (tmp_path / "p.png").stat().st_size > 1000
    # a frame folder of another length is refused with a hint
    (tmp_path / "out" / frame_name(4)).unlink()
    assert main(["metrics", "--source", str(tmp_path / "src"), str(tmp_path / "out")]) == 2


# ---------------------------------------------------------------- pair by pair

def _lazy(frames, loads=None):
    """A generator of zero-argument readers (as video.read yields); `loads` collects the indices read."""
    def reader(i):
        if loads is not None:
            loads.append(i)
        return frames[i]
    return (lambda i=i: reader(i) for i in range(len(frames)))


def _clip(n=7, seed=4):
    src = translating(n, 3, width=120, height=80, seed=seed)
    rng = np.random.default_rng(seed)
    out = [np.clip(resize_to(s, 64, 48) + rng.uniform(-0.08, 0.08), 0, 1).astype(np.float32) for s in src]
    out[3] = np.zeros_like(out[3])                 # a jump: large figures on two pairs
    ref = [np.clip(o + rng.normal(0, 0.02, o.shape), 0, 1).astype(np.float32) for o in out]
    return src, out, ref


def test_streamed_report_equals_the_whole_list_figures_to_the_last_digit():
    src, out, ref = _clip()
    expect = reference.consistency_report(src, out, ref)
    # float frames (as the run's summary reads them), given as lazy readers in generators
    got = metrics.consistency_report(_lazy(src), _lazy(out), _lazy(ref))
    assert same(expect, got)
    assert got["warping_error"] == expect["warping_error"] and got["psnr"] == expect["psnr"]
    assert got["per_pair"]["frame"] == list(range(2, 8)) and got["per_frame"]["frame"] == list(range(1, 8))
    # uint8 frames (as `vid2vid metrics` reads them), as plain lists
    u8 = [[np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in seq] for seq in (src, out, ref)]
    assert same(reference.consistency_report(*u8), metrics.consistency_report(*u8))
    # precomputed flows give the same figures
    flows = reference.source_flows(src, (64, 48))
    assert same(expect, metrics.consistency_report(iter(src), iter(out), iter(ref), flows=iter(flows)))


def test_memory_does_not_grow_with_the_number_of_frames():
    import tracemalloc

    frame = smooth_texture(96, 64, seed=5)

    def peak(n):
        # frames made on the fly: whatever stays alive is held by the report itself
        seq = (lambda t=t: np.roll(frame, 2 * t, axis=1) for t in range(n))
        out = (lambda t=t: np.roll(frame, 2 * t, axis=1) * np.float32(0.9 + 0.01 * (t % 3)) for t in range(n))
        tracemalloc.start()
        metrics.consistency_report(seq, out)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    short, long = peak(6), peak(60)
    assert long < short * 1.1 + 50_000, (short, long)     # 60 frames held would be 54 x 74 KB more


def test_every_nth_pair_reads_only_those_frames_and_gives_their_exact_figures():
    src, out, ref = _clip(n=10, seed=6)
    full = metrics.consistency_report(src, out, ref)
    loads: list[int] = []
    r = metrics.consistency_report(_lazy(src), _lazy(out, loads), _lazy(ref), every=3)
    assert sorted(set(loads)) == [0, 1, 3, 4, 6, 7, 9]          # pairs (0,1), (3,4), (6,7); frame 9 for PSNR
    assert r["per_pair"]["frame"] == [2, 5, 8] and r["measured"] == {"width": 64, "height": 48, "every": 3,
                                                                     "pairs": 3}
    for key in ("warping_error", "source_warping_error", "flicker", "valid_fraction"):
        assert r["per_pair"][key] == [full["per_pair"][key][k] for k in (0, 3, 6)]
    assert r["per_frame"]["psnr"] == [full["per_frame"]["psnr"][k] for k in (0, 3, 6, 9)]
    assert r["warping_error"] == float(np.mean(r["per_pair"]["warping_error"]))
    assert "on every 3rd pair (3 of 9)" in reporting.format_report(r)


def test_reduced_size_is_the_report_on_frames_resized_first():
    src, out, ref = _clip(n=5, seed=7)
    r = metrics.consistency_report(src, out, ref, max_side=32)
    assert (r["width"], r["height"]) == (64, 48) and (r["measured"]["width"], r["measured"]["height"]) == (32, 24)
    small = [[resize_to(f, 32, 24) for f in seq] for seq in (src, out, ref)]
    direct = reference.consistency_report(*small)
    for key in ("warping_error", "source_warping_error", "flicker", "source_flicker", "psnr", "per_pair"):
        assert same(direct[key], r[key]), key
    assert "at 32x24" in reporting.format_report(r)
    # no reduction asked, or a size above the output's: the output's own size
    assert metrics.measure_size(64, 48, 0) == (64, 48) == metrics.measure_size(64, 48, 100)


def test_lengths_sizes_and_sampling_options_are_checked():
    src, out, ref = _clip(n=5)
    with pytest.raises(BadInput, match="the source has 4 frames but the output has 5"):
        metrics.consistency_report(iter(src[:4]), iter(out))
    with pytest.raises(BadInput, match="the reference has 6 frames but the output has 5"):
        metrics.consistency_report(iter(src), iter(out), iter(ref + ref[:1]))
    with pytest.raises(BadInput, match="output frame 3 is 32x24"):
        metrics.consistency_report(src, out[:2] + [resize_to(out[2], 32, 24)] + out[3:])
    with pytest.raises(BadInput, match="reference frame 1 is 32x24"):
        metrics.consistency_report(src, out, [resize_to(r, 32, 24) for r in ref])
    with pytest.raises(BadInput, match="too small"):
        metrics.consistency_report(src, out, max_side=8)
    with pytest.raises(BadInput, match="every 0"):
        metrics.consistency_report(src, out, every=0)


def test_the_runs_summary_streams_the_workspace_frames_with_the_same_figures(tmp_path):
    from conftest import make_workspace
    from vid2vid.config import Settings
    from vid2vid.core.imageops import read_image, write_image
    from vid2vid.core.workspace import frame_name
    from vid2vid.pipeline.runner import _measure

    src, out, _ = _clip(n=6, seed=8)
    ws = make_workspace(tmp_path / "ws", src)
    for i, f in enumerate(out, 1):
        write_image(ws.path("img2img", frame_name(i)), f)
    s = Settings()
    m = _measure(ws, s)
    # today's figures: every frame of both folders read into lists, then measured
    direct = reference.consistency_report([read_image(p) for p in ws.frames()],
                                          [read_image(p) for p in ws.frames("img2img")])
    assert m == {"warp_error": direct["warping_error"], "flicker": direct["flicker"],
                 "source_warp_error": direct["source_warping_error"], "source_flicker": direct["source_flicker"]}
    s.run.metrics_size, s.run.metrics_every = 32, 2
    reduced = _measure(ws, s)
    assert reduced["measured"] == "at 32x24, on every 2nd pair (3 of 5)"
    assert reduced["warp_error"] != m["warp_error"]


def test_metrics_command_sampling_options(tmp_path, capsys):
    from vid2vid.cli.main import main
    from vid2vid.core.imageops import write_image
    from vid2vid.core.workspace import frame_name

    src, out, _ = _clip(n=5, seed=9)
    for name, seq in (("src", src), ("out", out)):
        for i, f in enumerate(seq, 1):
            write_image(tmp_path / name / frame_name(i), f)
    args = ["metrics", "--source", str(tmp_path / "src"), str(tmp_path / "out")]
    assert main(args + ["--metrics-size", "32", "--metrics-every", "2"]) == 0
    text = capsys.readouterr().out
    assert "measured at 32x24, on every 2nd pair (2 of 4)" in text
    assert main(args + ["--metrics-every", "0"]) == 2
    assert "every 0" in capsys.readouterr().err
    assert main(args + ["--metrics-size", "4"]) == 2
    # the run's summary takes the same two options, checked before any work
    assert main(["run", str(tmp_path / "none.mp4"), "--metrics-every", "0"]) == 2
    assert "--metrics-every 0 is out of range" in capsys.readouterr().err
