"""The detail gate of the flow pass: a carried average's fine detail replaced by the frame's own where
they are different drawings, the low band and the weight kept (vid2vid.temporal.detailgate)."""
from __future__ import annotations

import cv2
import numpy as np
from test_metrics import smooth_texture

from vid2vid.temporal import detailgate as dg


def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def _reference(carried: np.ndarray, current: np.ndarray, tol: float, width: float, sigma: float,
               spread: float) -> np.ndarray:
    """The module docstring's formula, written out in float64 numpy (Gaussian blurs from OpenCV)."""
    c = carried.astype(np.float64)
    g = current.astype(np.float64)
    w = c[..., 3]
    mean = c[..., :3] / w[..., None]
    low_diff = _gauss(c[..., :3] - w[..., None] * g, sigma) / _gauss(w, sigma)[..., None]
    high_diff = (mean - g) - low_diff
    d = np.abs(high_diff).mean(axis=2)
    d = _gauss(d * w, spread) / _gauss(w, spread)
    k = np.clip((d - tol) / width, 0, 1)[..., None]
    out = c.copy()
    out[..., :3] = (1 - k) * c[..., :3] + k * w[..., None] * (g + low_diff)
    return out


def _premultiplied(picture: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.concatenate([picture * weight[..., None], weight[..., None]], axis=2).astype(np.float32)


def test_keep_current_detail_follows_its_formula():
    h, w = 48, 64
    rng = np.random.default_rng(1)
    base = smooth_texture(w, h, 1, waves=3, freq=(0.05, 0.1)) * 0.6 + 0.2
    picture = np.clip(base + rng.normal(0, 0.01, (h, w, 3)), 0, 1).astype(np.float32)
    current = np.clip(base + rng.normal(0, 0.01, (h, w, 3)), 0, 1).astype(np.float32)
    current[:, 30:34] -= 0.2                             # a line the carried picture does not have
    weight = (0.5 + 2.5 * smooth_texture(w, h, 2, waves=2, freq=(0.05, 0.1))[..., 0]).astype(np.float32)
    carried = _premultiplied(picture, weight)
    ref = _reference(carried, current, dg.DETAIL_TOLERANCE, dg.DETAIL_WIDTH, dg.DETAIL_SIGMA, dg.DETAIL_SPREAD)
    out = dg.keep_current_detail(carried.copy(), current)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    np.testing.assert_array_equal(out[..., 3], carried[..., 3])          # the weight is kept
    # the formula reaches both ends here: the line's neighbourhood replaced in full, somewhere left alone
    k = (out[..., 0] - carried[..., 0]) != 0
    assert k[:, 31].all() and not k.all()


def test_the_same_drawing_is_carried_as_it_is():
    h, w = 40, 56
    picture = 0.2 + 0.6 * smooth_texture(w, h, 3, waves=4, freq=(0.1, 0.4))
    carried = _premultiplied(picture.astype(np.float32), np.full((h, w), 3.0, np.float32))
    # the frame differs only in colour and shading (a smooth shift): its detail is the carried one
    shade = np.linspace(-0.05, 0.05, w, dtype=np.float32)[None, :, None]
    out = dg.keep_current_detail(carried.copy(), (picture + shade).astype(np.float32))
    np.testing.assert_allclose(out, carried, atol=1e-6)


def test_a_re_drawn_detail_takes_the_frames_drawing_and_keeps_the_carried_colour():
    h, w = 40, 56
    picture = np.full((h, w, 3), 0.6, np.float32)
    picture[:, 10:12] = 0.3                               # the carried drawing: a line at x = 10
    current = np.full((h, w, 3), 0.5, np.float32)         # the frame: another colour, the line at x = 40
    current[:, 40:42] = 0.2
    carried = _premultiplied(picture, np.full((h, w), 2.0, np.float32))
    out = dg.keep_current_detail(carried.copy(), current)
    mean = out[..., :3] / out[..., 3:4]
    row = mean[20, :, 0]
    # the frame's line is drawn into the carried picture (which had nothing there), the carried line keeps
    # only its low band: each shows about half its contrast against the carried colour
    assert 0.6 - row[40] > 0.1
    assert 0.6 - row[10] < 0.6 * 0.3
    # away from both lines, the carried colour (0.6), not the frame's (0.5)
    np.testing.assert_allclose(mean[:, 24:28], 0.6, atol=1e-3)


def test_no_weight_means_no_say():
    # pixels that carry (almost) nothing take no part in their neighbours' disagreement: a garbage picture
    # there changes nothing next to them
    h, w = 32, 64
    weight = np.full((h, w), 2.0, np.float32)
    weight[:, 32:] = 1e-4
    picture = np.full((h, w, 3), 0.5, np.float32)
    garbage = picture.copy()
    garbage[:, 32:] = np.random.default_rng(0).uniform(0, 1, (h, 32, 3))
    current = np.full((h, w, 3), 0.5, np.float32)
    clean = _premultiplied(picture, weight)
    a = dg.keep_current_detail(clean.copy(), current)
    b = dg.keep_current_detail(_premultiplied(garbage, weight), current)
    np.testing.assert_allclose(a, clean, atol=1e-6)
    np.testing.assert_allclose(b[:, :30], clean[:, :30], atol=1e-4)
