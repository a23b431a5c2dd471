"""Trust measures (vid2vid.temporal.trust) against direct formulas on hand-made values."""
from __future__ import annotations

import numpy as np

from vid2vid.temporal import trust


def test_agreement_follows_its_formula():
    current = np.zeros((4, 6, 3), np.float32)
    picture = np.zeros((4, 6, 3), np.float32)
    picture[0, 0] = 0.5                    # d = 0.5
    picture[1, 1] = [0.3, 0.3, 0.0]        # d = 0.2
    picture[2, 2] = 0.25                   # d = 0.25, explained by a source residual of 0.25
    resid = np.zeros((4, 6), np.float32)
    resid[2, 2] = 0.25
    got = trust.agreement(picture, current, resid, tolerance=0.1, width=0.2)
    expect = np.ones((4, 6), np.float32)
    expect[0, 0] = 1 - (0.5 - 0.1) / 0.2                     # clipped to 0 below
    expect[1, 1] = 1 - (0.2 - 0.1) / 0.2
    np.testing.assert_allclose(got, np.clip(expect, 0, 1), atol=1e-6)
    assert got[0, 0] == 0.0 and got[2, 2] == 1.0


def test_ghost_gate_reads_the_premultiplied_average():
    rng = np.random.default_rng(1)
    rgb = rng.random((5, 7, 3)).astype(np.float32)
    w = np.float32(2.5)
    carried = np.concatenate([rgb * w, np.full((5, 7, 1), w, np.float32)], axis=2)
    current = rng.random((5, 7, 3)).astype(np.float32)
    resid = rng.random((3, 4)).astype(np.float32) * 0.1      # any size: resized to the frame's
    np.testing.assert_allclose(trust.ghost_gate(carried, current, resid),
                               trust.agreement(rgb, current, resid), atol=1e-5)


def test_key_disagreement_unblurred_is_the_mean_abs_difference():
    a = np.zeros((15, 15, 3), np.float32)
    b = a.copy()
    b[7, 7] = [0.3, 0.6, 0.9]
    d = trust.key_disagreement(a, b, blur=0)
    assert np.isclose(d[7, 7], 0.6) and d.sum() == d[7, 7]
    assert np.isclose(trust.key_disagreement(a, b).sum(), 0.6, rtol=1e-2)     # blurring keeps the total
