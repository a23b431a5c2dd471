"""Moving-pixel PSNR and sharpness (issue 16) against hand-made cases and direct formulas."""
from __future__ import annotations

import math

import numpy as np

from vid2vid.temporal import metrics, reporting


def test_moving_mask_is_the_dilated_grey_change_above_8_levels():
    a = np.full((20, 20, 3), 0.5, np.float32)
    b = a.copy()
    b[10, 7] += 10 / 255          # grey change 10/255 > 8/255
    b[3, 15] += 7 / 255           # below the level: not moving
    m = metrics.moving_mask(a, b)
    expect = np.zeros((20, 20), bool)
    expect[8:13, 5:10] = True     # the 5x5 square around (10, 7)
    assert np.array_equal(m, expect)
    assert not metrics.moving_mask(a, a).any()


def test_masked_squared_error_counts_only_the_mask():
    ref = np.zeros((4, 4, 3), np.float32)
    out = ref.copy()
    out[0, 0] = 0.1
    out[3, 3] = 0.9               # outside the mask: ignored
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True
    sq, count = metrics.masked_squared_error(out, ref, mask)
    assert count == 6
    assert math.isclose(sq, 3 * 0.1 ** 2, rel_tol=1e-6)


def test_mean_gradient_against_a_direct_formula():
    rng = np.random.default_rng(3)
    img = rng.random((7, 9, 3)).astype(np.float32)
    g = (0.299 * img[..., 0].astype(np.float64) + 0.587 * img[..., 1] + 0.114 * img[..., 2])
    h, w = g.shape
    total = 0.0
    for y in range(h):
        for x in range(w):
            gx = (g[y, min(x + 1, w - 1)] - g[y, max(x - 1, 0)]) / (min(x + 1, w - 1) - max(x - 1, 0))
            gy = (g[min(y + 1, h - 1), x] - g[max(y - 1, 0), x]) / (min(y + 1, h - 1) - max(y - 1, 0))
            total += math.hypot(gx, gy)
    assert math.isclose(metrics.mean_gradient(img), total / (h * w), rel_tol=1e-5)
    ramp = np.repeat((np.arange(16, dtype=np.float32) * 0.01)[None, :, None], 3, axis=2).repeat(5, axis=0)
    assert math.isclose(metrics.mean_gradient(ramp), 0.01, rel_tol=1e-5)


def test_detail_figures_frame_by_frame():
    rng = np.random.default_rng(0)
    src = [np.full((16, 16, 3), 0.5, np.float32) for _ in range(3)]
    src[1][4, 4] = 0.9                      # frame 1 moves around (4, 4); frame 2 moves back
    ref = [rng.random((16, 16, 3)).astype(np.float32) for _ in range(3)]
    out = [r.copy() for r in ref]
    out[1][2:7, 2:7] += 0.1                 # an error exactly on frame 1's moving pixels
    out[0] += 0.3                           # frame 0 has no pair: its error is not "moving"
    out[0] = np.clip(out[0], 0, 1)
    fig = metrics.detail_figures(src, out, ref)
    # frame 1: 25 px error 0.1, frame 2: same 25 px moving (the change back) with no error
    assert math.isclose(fig["moving_psnr"], 10 * math.log10(1 / (0.01 / 2)), rel_tol=1e-5)
    # sharpness: the half-contrast copy has exactly half the gradient
    half = [0.5 * r + 0.25 for r in ref]
    assert math.isclose(metrics.detail_figures(src, half, ref)["sharpness"], 0.5, rel_tol=1e-6)
    # frames without a reference are left out (keys only)
    some = metrics.detail_figures(src, half, [ref[0], None, ref[2]])
    assert some["frames"] == 2 and math.isclose(some["sharpness"], 0.5, rel_tol=1e-6)


def test_report_carries_the_detail_figures():
    src = [np.full((16, 16, 3), v, np.float32) for v in (0.2, 0.4, 0.6)]
    rep = metrics.consistency_report(src, src, src, preset="ultrafast")
    assert rep["sharpness"] is None or math.isclose(rep["sharpness"], 1.0)
    assert rep["moving_psnr"] == float("inf")
    assert "moving-pixel PSNR" in reporting.format_report(rep)
    assert metrics.consistency_report(src, src, None, preset="ultrafast")["moving_psnr"] is None


def test_worst_frames_moving_psnr_catches_a_tear_in_few_frames():
    # 21 frames of a square moving 4 px a frame; the output equals the reference except for a dark
    # streak on the moving square in two frames (a tear); the mean moving-pixel PSNR hardly sees it
    n, h, w = 21, 48, 64
    src, ref, out = [], [], []
    rng = np.random.default_rng(5)
    for t in range(n):
        s = np.full((h, w, 3), 0.3, np.float32)
        s[16:32, 4 + 2 * t:20 + 2 * t] = 0.8
        src.append(s)
        r = np.clip(s + rng.normal(0, 0.01, s.shape), 0, 1).astype(np.float32)
        ref.append(r)
        o = r.copy()
        if t in (7, 15):
            o[22:26, 4 + 2 * t:20 + 2 * t] = 0.0          # the streak
        out.append(o)
    fig = metrics.detail_figures(src, out, ref)
    # direct: per frame t >= 1, the squared error over the moving mask (grey change > 8/255, dilated 5x5)
    per_frame = []
    for t in range(1, n):
        m = metrics.moving_mask(src[t - 1], src[t])
        d = out[t].astype(np.float64) - ref[t]
        per_frame.append((d * d).sum(axis=2)[m].sum() / (3 * m.sum()))
    expect = 10 * math.log10(1 / float(np.percentile(per_frame, 95)))
    assert math.isclose(fig["moving_psnr_worst"], expect, rel_tol=1e-6)
    assert fig["moving_psnr"] - fig["moving_psnr_worst"] > 3          # the tear shows in the worst frames
    clean = metrics.detail_figures(src, ref, ref)
    assert clean["moving_psnr_worst"] == float("inf")
    rep = metrics.consistency_report(src, out, ref, preset="ultrafast")
    assert math.isclose(rep["moving_psnr_worst"], expect, rel_tol=1e-6)
    assert "worst 5% of frames" in reporting.format_report(rep)
    assert metrics.consistency_report(src, out, None, preset="ultrafast")["moving_psnr_worst"] is None
