"""Temporal consistency figures against hand-made cases and direct formulas."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from vid2vid import metrics
from vid2vid.errors import BadInput


def smooth_texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """float32 HxWx3 in [0, 1]: a sum of a few sinusoids (smooth, textured everywhere)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        for _ in range(4):
            fx, fy, ph = rng.uniform(0.03, 0.15), rng.uniform(0.03, 0.15), rng.uniform(0, 6.3)
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


# ---------------------------------------------------------------- warping and the check

def test_warp_of_a_known_translation_matches_the_next_frame():
    frames = translating(2, 3)
    warped = metrics.warp(frames[0], constant_flow(64, 96, 3))
    # exact away from the right border, where the sample leaves frame t-1
    np.testing.assert_allclose(warped[:, :-3], frames[1][:, :-3], atol=1e-6)
    inside = metrics.inside_mask(constant_flow(64, 96, 3))
    assert inside[:, :93].all() and not inside[:, 93:].any()


def test_dis_recovers_a_known_translation():
    frames = translating(2, 2, width=128, height=96)
    flow = metrics.dis_flow(metrics.grey_u8(frames[1]), metrics.grey_u8(frames[0]))
    interior = flow[16:-16, 16:-16]
    assert abs(np.median(interior[..., 0]) - 2.0) < 0.25
    assert abs(np.median(interior[..., 1])) < 0.25


def test_consistency_check_is_the_design_formula_on_hand_made_flows():
    h, w = 8, 40
    flow = constant_flow(h, w, 3.0)
    # |F + B| = e, threshold 0.01 (9 + (3 - e)^2) + 0.5: e = 0.6 passes (0.6 <= 0.6476), e = 0.7
    # fails (0.7 > 0.6429); a squared left side would pass both, so this pins the formula
    assert metrics.consistency_mask(flow, constant_flow(h, w, -3.0 + 0.6))[:, :30].all()
    assert not metrics.consistency_mask(flow, constant_flow(h, w, -3.0 + 0.7))[:, :30].any()
    # the backward flow is read at x + F: it undoes the motion only left of column 20
    back = constant_flow(h, w, -3.0)
    back[:, 20:] = 0.0
    ok = metrics.consistency_mask(flow, back)
    assert ok[:, :16].all()           # x + 3 < 19: reads -3, sum 0
    assert not ok[:, 17:].any()        # reads 0 (or a blend near the edge): |sum| = 3 > 0.59


def test_consistency_check_thresholds_grow_with_the_motion():
    # large motion: F = (40, 0), B = (-40 + 15, 0): 15 <= 0.01 (1600 + 625) + 0.5 = 22.75 passes
    h, w = 4, 200
    assert metrics.consistency_mask(constant_flow(h, w, 40.0), constant_flow(h, w, -25.0))[:, :100].all()
    assert not metrics.consistency_mask(constant_flow(h, w, 1.0), constant_flow(h, w, 0.0))[:, :100].any()


# ---------------------------------------------------------------- warping error

def test_warping_error_of_a_translation_with_known_flow_is_the_direct_formula():
    rng = np.random.default_rng(1)
    src = translating(4, 2)
    outs = [np.clip(s + rng.uniform(-0.1, 0.1), 0, 1).astype(np.float32) for s in src]  # brightness flicker
    pf = metrics.PairFlow(constant_flow(64, 96, 2.0), metrics.inside_mask(constant_flow(64, 96, 2.0)))
    for a, b in zip(outs[:-1], outs[1:]):
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
    frame = metrics.as_float_rgb(np.full((32, 48, 3), 77, np.uint8))
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
    out = [metrics.resize_to(s, 64, 48) for s in src]
    ref = [np.clip(o + 0.02, 0, 1) for o in out]
    r = metrics.consistency_report(src, out, ref)
    assert (r["width"], r["height"], r["frames"]) == (64, 48, 5)
    assert len(r["per_pair"]["warping_error"]) == 4 and len(r["per_frame"]["psnr"]) == 5
    assert r["warping_error"] == pytest.approx(np.mean(r["per_pair"]["warping_error"]))
    assert r["warping_error"] < 0.02        # the output follows the (resized) source motion
    assert r["psnr"] == pytest.approx(metrics.sequence_psnr(out, ref))
    assert r["source_flicker"] == pytest.approx(metrics.flicker(out), rel=1e-3)
    json.loads(metrics.report_json(r))
    with pytest.raises(BadInput):
        metrics.consistency_report(src[:4], out)


def _write_video(path, frames, fps=24):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_video_is_read_at_the_output_frame_times(tmp_path):
    # 24 frames at 24 fps whose grey level is 10 * index; 7 output frames sample k / 7 s
    frames = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(24)]
    _write_video(tmp_path / "v.mkv", frames)
    got = metrics.read_video(tmp_path / "v.mkv", 7)
    expect = [int(Fraction(k, 7) * 24) for k in range(7)]    # last frame shown at or before k / 7 s
    assert [int(g[0, 0, 0]) // 10 for g in got] == expect
    assert len(metrics.read_video(tmp_path / "v.mkv")) == 24


def test_metrics_command_prints_json_and_a_plot(tmp_path, capsys):
    from vid2vid.cli import main
    from vid2vid.imageops import write_image
    from vid2vid.workspace import frame_name

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
    u8 = [metrics.read_folder(tmp_path / n) for n in ("src", "out", "ref")]
    direct = metrics.consistency_report(*u8)
    assert report["warping_error"] == pytest.approx(direct["warping_error"])
    assert report["psnr"] == pytest.approx(direct["psnr"])
    assert (tmp_path / "p.png").stat().st_size > 1000
    # a frame folder of another length is refused with a hint
    (tmp_path / "out" / frame_name(4)).unlink()
    assert main(["metrics", "--source", str(tmp_path / "src"), str(tmp_path / "out")]) == 2
