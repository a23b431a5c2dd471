"""fdc.py against independent references: hand-made arrays with known answers and a float64
re-implementation of the seed's formulas written here (no OpenCV)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vid2vid.config import CorrectSettings
from vid2vid.core.errors import BadInput
from vid2vid.temporal import fdc, fdc_debug

LUMA64 = np.array([0.299, 0.587, 0.114])


# ---------------------------------------------------------------- float64 references

def ref_minmax(m):
    lo, hi = m.min(), m.max()
    return m if hi - lo < np.finfo(np.float32).eps else (m - lo) / (hi - lo)


def ref_motion_mask(delta, lowcut, k, px=4):
    """The motion mask's steps 1-5 (grey magnitude, stretch, high-cut, boost, high-ext) in float64.

    Step 1's route through (d + 1) / 2 equals d @ LUMA (weights sum to 1; checked in
    test_grey_magnitude_matches_the_seeds_luminance_route); the direct form keeps a zero delta
    exactly zero instead of 1e-16, which the cut at t = 0 would count as motion.
    """
    d = delta.astype(np.float64)
    grey = d @ LUMA64                                          # 1. grey of the delta
    m = np.abs(grey)
    m = ref_minmax(m)                                          # 2.
    t = np.float32(lowcut / 255)
    low = np.where(m.astype(np.float32) <= t, m, 0.0)          # 3. (same float32 comparison as the code)
    m = np.where(m.astype(np.float32) <= t, ref_minmax(low), 1.0)
    f = -1 / math.log2(1 - px / 255)                           # 4.
    m = 1 - (1 - m) ** (1 + (1 - float(t)) * f)
    return ref_max_filter(m, k)[..., None]                     # 5.


def ref_max_filter(m, k):
    """k x k maximum over the window clipped to the image (pad with -inf)."""
    r = k // 2
    padded = np.pad(m, r, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k))
    return windows.max(axis=(2, 3))


def ref_stats(c, d, method):
    c, d = c.astype(np.float64), d.astype(np.float64)
    mc, sc = c.mean(axis=(0, 1)), c.std(axis=(0, 1))
    md, sd = d.mean(axis=(0, 1)), d.std(axis=(0, 1))
    n = (c - mc) / sc
    if method == "clip":
        return np.clip(c, d.min(axis=(0, 1)), d.max(axis=(0, 1)))
    if method == "shift-mean":
        return n * sc + md
    if method == "shift-std":
        return n * sd + mc
    if method == "shift-mean-std":
        return n * sd + md
    return c


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def smooth_delta(rng, h=40, w=56):
    """A delta like a real one: mostly small, a moving blob with large values."""
    d = rng.normal(0, 0.01, (h, w, 3))
    d[10:20, 15:30] += rng.uniform(0.2, 0.6, 3)
    d[25:32, 5:12] -= 0.3
    return np.clip(d, -1, 1).astype(np.float32)


# ---------------------------------------------------------------- delta and mask steps

def test_frame_delta_is_the_signed_difference_at_full_precision():
    prev = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    cur = np.array([[[1.0, 0.5, 0.0]]], np.float32)
    d = fdc.frame_delta(prev, cur)
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d, [[[1.0, 0.0, -1.0]]])
    # 1/255 steps survive (the seed's 8-bit PNG truncation lost the half levels)
    d = fdc.frame_delta(np.full((2, 2, 3), 10 / 255, np.float32), np.full((2, 2, 3), 11 / 255, np.float32))
    np.testing.assert_allclose(d, 1 / 255, rtol=1e-5)
    with pytest.raises(BadInput):
        fdc.frame_delta(np.zeros((2, 2, 3), np.float32), np.zeros((2, 3, 3), np.float32))


def test_grey_magnitude_matches_the_seeds_luminance_route(rng):
    d = rng.uniform(-1, 1, (5, 7, 3)).astype(np.float32)
    g = fdc.grey_magnitude(d)
    assert g.shape == (5, 7, 1) and g.dtype == np.float32
    expected = np.abs((((d.astype(np.float64) + 1) / 2) @ LUMA64) * 2 - 1)
    np.testing.assert_allclose(g[..., 0], expected, atol=1e-6)


def test_minmax_normalise_hand_made_and_constant():
    m = np.array([0.2, 0.4, 0.6], np.float32).reshape(1, 3, 1)
    np.testing.assert_allclose(fdc.minmax_normalise(m)[0, :, 0], [0, 0.5, 1], atol=1e-7)
    assert fdc.minmax_normalise(m).max() == 1.0                  # exactly: the boost's log needs <= 1
    c = np.full((2, 2, 1), 0.3, np.float32)
    np.testing.assert_array_equal(fdc.minmax_normalise(c), c)   # range below eps: left alone
    assert fdc.minmax_normalise(m) is not m and m[0, 0, 0] == np.float32(0.2)


def test_high_cut_hand_made():
    m = np.array([0.0, 0.1, 0.2, 0.5, 0.9], np.float32).reshape(1, 5, 1)
    out = fdc.high_cut(m, 0.25)
    np.testing.assert_allclose(out[0, :, 0], [0, 0.5, 1, 1, 1], atol=1e-7)
    # t = 0: only exact zeros stay 0, everything else becomes 1
    np.testing.assert_array_equal(fdc.high_cut(m, 0.0)[0, :, 0], [0, 1, 1, 1, 1])
    # t = 1: nothing is above, the map is only renormalised
    np.testing.assert_allclose(fdc.high_cut(m, 1.0)[0, :, 0], np.array([0, 0.1, 0.2, 0.5, 0.9]) / 0.9, atol=1e-6)


def test_boost_maps_four_levels_to_one_half_at_lowcut_zero():
    m = np.array([0.0, 4 / 255, 1.0], np.float32).reshape(1, 3, 1)
    out = fdc.boost(m, 0.0)[0, :, 0]
    assert out[0] == 0.0 and out[2] == 1.0
    # (1 - p)^F = 1/2 by the choice of F, so 1 - (1 - p)^(1 + F) = 1 - (1 - p) / 2
    assert out[1] == pytest.approx(1 - (1 - 4 / 255) / 2, abs=1e-6)
    assert out[1] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("t", [0.0, 32 / 255, 0.5, 1.0])
def test_boost_matches_formula(rng, t):
    m = rng.uniform(0, 1, (9, 11, 1)).astype(np.float32)
    m[0, 0, 0], m[0, 1, 0] = 0.0, 1.0
    f = -1 / math.log2(1 - 4 / 255)
    expected = 1 - (1 - m.astype(np.float64)) ** (1 + (1 - t) * f)
    np.testing.assert_allclose(fdc.boost(m, t), expected, atol=2e-6)


@pytest.mark.parametrize("k", [1, 3, 7, 15])
def test_high_ext_is_a_k_by_k_maximum_filter(rng, k):
    m = rng.uniform(0, 1, (23, 31, 1)).astype(np.float32)
    np.testing.assert_array_equal(fdc.high_ext(m, k)[..., 0], ref_max_filter(m[..., 0], k))
    with pytest.raises(BadInput):
        fdc.high_ext(m, 4)


@pytest.mark.parametrize("lowcut,k", [(0, 1), (32, 7), (127, 3), (255, 15)])
def test_motion_mask_matches_float64_reference(rng, lowcut, k):
    d = smooth_delta(rng)
    mask = fdc.motion_mask(d, lowcut, k)
    assert mask.shape == d.shape[:2] + (1,) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    np.testing.assert_allclose(mask, ref_motion_mask(d, lowcut, k), atol=2e-5)


@pytest.mark.parametrize("value", [0.0, 0.2, -1.0, 1.0])
def test_constant_delta_gives_a_finite_mask(value):
    d = np.full((8, 9, 3), value, np.float32)
    for lowcut in (0, 32, 255):
        mask = fdc.motion_mask(d, lowcut, 3)
        assert np.isfinite(mask).all() and 0 <= mask.min() and mask.max() <= 1
        np.testing.assert_allclose(mask, ref_motion_mask(d, lowcut, 3), atol=2e-5)


def test_depth_mask_lowcut_hand_made():
    depth = (np.array([10, 50, 100, 200], np.float32) / 255).reshape(1, 4, 1)
    # L = 50: 10 goes to 0 and 50 (not below) stays; then min-max over [0, 50, 100, 200]
    np.testing.assert_allclose(fdc.depth_mask(depth, 50)[0, :, 0], [0, 0.25, 0.5, 1], atol=1e-6)
    # L = -1: no cut, only the min-max normalisation
    np.testing.assert_allclose(fdc.depth_mask(depth, -1)[0, :, 0], (np.array([10, 50, 100, 200]) - 10) / 190,
                               atol=1e-6)
    flat = np.full((3, 3), 0.4, np.float32)                      # HxW accepted, constant: no NaN
    out = fdc.depth_mask(flat, 0)
    assert out.shape == (3, 3, 1) and np.isfinite(out).all()
    assert not fdc.depth_mask(flat, 255).any()                   # everything below the cut
    with pytest.raises(BadInput):
        fdc.depth_mask(depth, 256)


# ---------------------------------------------------------------- masks applied, statistics

def test_delta_mask_blend_equals_both_seed_forms(rng):
    g, p = (rng.uniform(0, 1, (6, 5, 3)).astype(np.float32) for _ in range(2))
    m = rng.uniform(0, 1, (6, 5, 1)).astype(np.float32)
    out = fdc.apply_delta_mask(g, p, m)
    np.testing.assert_allclose(out, p + (g - p) * m, atol=1e-6)           # motion form
    np.testing.assert_allclose(out, g * m + p * (1 - m), atol=1e-6)       # depth form


@pytest.mark.parametrize("method", ["none", "clip", "shift-mean", "shift-std", "shift-mean-std"])
def test_stat_correct_matches_formulas(rng, method):
    c = rng.normal(0.05, 0.2, (12, 14, 3)).astype(np.float32)
    d = smooth_delta(rng, 12, 14)
    out = fdc.stat_correct(c, d, method)
    assert out.dtype == np.float32 and out.shape == c.shape
    np.testing.assert_allclose(out, ref_stats(c, d, method), atol=2e-5)


def test_shift_mean_std_gives_the_targets_channel_statistics(rng):
    c = rng.normal(-0.1, 0.3, (30, 20, 3)).astype(np.float32)
    d = smooth_delta(rng, 30, 20)
    out = fdc.stat_correct(c, d, "shift-mean-std").astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), d.astype(np.float64).mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(out.std(axis=(0, 1)), d.astype(np.float64).std(axis=(0, 1)), rtol=1e-4)
    clipped = fdc.stat_correct(c, d, "clip")                      # per channel within the target's range
    assert (clipped >= d.min(axis=(0, 1)) - 1e-7).all() and (clipped <= d.max(axis=(0, 1)) + 1e-7).all()


def test_constant_change_or_target_never_gives_nan(rng):
    zero = np.zeros((5, 6, 3), np.float32)
    d = smooth_delta(rng, 5, 6)
    for method in fdc.STAT_METHODS:
        for c, t in ((zero, d), (d, zero), (zero, zero), (zero + 0.1, zero - 0.2)):
            assert np.isfinite(fdc.stat_correct(c, t, method)).all()
    # a constant change has no shape: shift-mean-std gives the target's mean, shift-std keeps its own
    np.testing.assert_allclose(fdc.stat_correct(zero + 0.1, d, "shift-mean-std"),
                               np.broadcast_to(d.astype(np.float64).mean(axis=(0, 1)), d.shape), atol=1e-6)
    np.testing.assert_allclose(fdc.stat_correct(zero + 0.1, d, "shift-std"), 0.1, atol=1e-6)


# ---------------------------------------------------------------- per frame

def test_first_frame_passes_unchanged(rng):
    g = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
    out, mask = fdc.correct_frame(g, None, None, CorrectSettings())
    np.testing.assert_array_equal(out, g)
    assert mask is None


@pytest.mark.parametrize("fdc_method", ["none", "clip", "shift-std", "shift-mean-std"])
def test_correct_frame_matches_reference_with_motion_mask(rng, fdc_method):
    s = CorrectSettings(fdc=fdc_method, delta_mask="motion", motion_lowcut=32, motion_highext=5)
    g, p = (rng.uniform(0, 1, (40, 56, 3)).astype(np.float32) for _ in range(2))
    d = smooth_delta(rng)
    out, mask = fdc.correct_frame(g, p, d, s)
    m = ref_motion_mask(d, 32, 5)
    c = (g.astype(np.float64) - p) * m
    expected = np.clip(p + ref_stats(c, d, fdc_method), 0, 1)
    assert out.dtype == np.float32 and out.shape == g.shape and 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(mask, m, atol=2e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_correct_frame_depth_mask_and_resized_delta(rng):
    import cv2

    g, p = (rng.uniform(0, 1, (40, 56, 3)).astype(np.float32) for _ in range(2))
    small_depth = rng.uniform(0, 1, (20, 28, 1)).astype(np.float32)
    s = CorrectSettings(fdc="none", delta_mask="depth", depth_lowcut=64)
    out, mask = fdc.correct_frame(g, p, None, s, depth=small_depth)
    big = cv2.resize(small_depth[..., 0], (56, 40), interpolation=cv2.INTER_CUBIC).clip(0, 1)[..., None]
    m = ref_minmax(np.where(big >= np.float32(64 / 255), big, 0.0))
    np.testing.assert_allclose(out, g * m + p * (1 - m), atol=1e-5)
    # a source delta at another size is resized to the generated size (area when shrinking)
    s = CorrectSettings(fdc="shift-std", delta_mask="motion")
    big_delta = np.clip(rng.normal(0, 0.1, (80, 112, 3)), -1, 1).astype(np.float32)
    shrunk = cv2.resize(big_delta, (56, 40), interpolation=cv2.INTER_AREA)
    out_a, _ = fdc.correct_frame(g, p, big_delta, s)
    out_b, _ = fdc.correct_frame(g, p, shrunk, s)
    np.testing.assert_allclose(out_a, out_b, atol=1e-6)
    with pytest.raises(BadInput):
        fdc.correct_frame(g, p, None, CorrectSettings(delta_mask="depth"))


def test_constant_frames_never_give_nan():
    g = np.full((16, 16, 3), 0.5, np.float32)
    zero = np.zeros((16, 16, 3), np.float32)
    for method in fdc.STAT_METHODS:
        for kind in ("none", "motion"):
            out, _ = fdc.correct_frame(g, g, zero, CorrectSettings(fdc=method, delta_mask=kind))
            assert np.isfinite(out).all()
            np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_no_mask_no_statistics_returns_the_generated_frame(rng):
    g, p = (rng.uniform(0, 1, (8, 8, 3)).astype(np.float32) for _ in range(2))
    out, mask = fdc.correct_frame(g, p, None, CorrectSettings(fdc="none", delta_mask="none"))
    np.testing.assert_array_equal(out, g)
    assert mask is None


def test_spatial_mask_starts_at_the_second_frame(rng):
    s = CorrectSettings(spatial_mask="motion", motion_lowcut=0, motion_highext=1)
    assert fdc.spatial_mask(s, None, None, 40, 56) is None
    d = smooth_delta(rng)
    np.testing.assert_allclose(fdc.spatial_mask(s, d, None, 40, 56), ref_motion_mask(d, 0, 1), atol=2e-5)


# ---------------------------------------------------------------- debug sheets

def test_motion_grid_tiles_are_the_masks(rng):
    d = smooth_delta(rng, 20, 24)
    lowcuts = (0, 64, 128, 255)
    sheet = fdc_debug.motion_mask_grid(d, highext=3, lowcuts=lowcuts)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    for k, lc in enumerate(lowcuts):
        y, x = fdc_debug.tile_origin(k, (20, 24), columns=2)
        tile = sheet[y:y + 20, x:x + 24]
        expected = np.rint(ref_motion_mask(d, lc, 3)[..., 0] * 255)
        assert np.abs(tile[..., 0].astype(int) - expected).max() <= 1
        assert (tile[..., 0] == tile[..., 2]).all()


def test_depth_grid_and_fdc_sheet_shapes(rng):
    depth = rng.uniform(0, 1, (10, 12, 1)).astype(np.float32)
    sheet = fdc_debug.depth_mask_grid(depth, lowcuts=(-1, 0, 128))
    y, x = fdc_debug.tile_origin(2, (10, 12), columns=2)
    np.testing.assert_array_equal(sheet[y:y + 10, x:x + 12, 0],
                                  np.rint(fdc.depth_mask(depth, 128)[..., 0] * 255).astype(np.uint8))
    g, p = (rng.uniform(0, 1, (40, 56, 3)).astype(np.float32) for _ in range(2))
    sheet = fdc_debug.fdc_sheet(p, g, smooth_delta(rng), CorrectSettings())
    cell_h = 40 + fdc_debug.CAPTION_H
    assert sheet.shape == (2 * cell_h + fdc_debug.GAP, 3 * 56 + 2 * fdc_debug.GAP, 3)
    y, x = fdc_debug.tile_origin(1, (40, 56), columns=3)             # tile 1: the generated frame
    np.testing.assert_array_equal(sheet[y:y + 40, x:x + 56], np.rint(g * 255).astype(np.uint8))
