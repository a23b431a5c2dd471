"""Optical flow, warping and the forward-backward check against hand-made cases."""
from __future__ import annotations

import numpy as np
from test_metrics import constant_flow, translating

from vid2vid.temporal import opticalflow

# ---------------------------------------------------------------- warping and the check

def test_warp_of_a_known_translation_matches_the_next_frame():
    frames = translating(2, 3)
    warped = opticalflow.warp(frames[0], constant_flow(64, 96, 3))
    # exact away from the right border, where the sample leaves frame t-1
    np.testing.assert_allclose(warped[:, :-3], frames[1][:, :-3], atol=1e-6)
    inside = opticalflow.inside_mask(constant_flow(64, 96, 3))
    assert inside[:, :93].all() and not inside[:, 93:].any()


def test_dis_recovers_a_known_translation():
    frames = translating(2, 2, width=128, height=96)
    flow = opticalflow.dis_flow(opticalflow.grey_u8(frames[1]), opticalflow.grey_u8(frames[0]))
    interior = flow[16:-16, 16:-16]
    assert abs(np.median(interior[..., 0]) - 2.0) < 0.25
    assert abs(np.median(interior[..., 1])) < 0.25


def test_consistency_check_is_the_design_formula_on_hand_made_flows():
    h, w = 8, 40
    flow = constant_flow(h, w, 3.0)
    # |F + B| = e, threshold 0.01 (9 + (3 - e)^2) + 0.5: e = 0.6 passes (0.6 <= 0.6476), e = 0.7
    # fails (0.7 > 0.6429); a squared left side would pass both, so this pins the formula
    assert opticalflow.consistency_mask(flow, constant_flow(h, w, -3.0 + 0.6))[:, :30].all()
    assert not opticalflow.consistency_mask(flow, constant_flow(h, w, -3.0 + 0.7))[:, :30].any()
    # the backward flow is read at x + F: it undoes the motion only left of column 20
    back = constant_flow(h, w, -3.0)
    back[:, 20:] = 0.0
    ok = opticalflow.consistency_mask(flow, back)
    assert ok[:, :16].all()           # x + 3 < 19: reads -3, sum 0
    assert not ok[:, 17:].any()        # reads 0 (or a blend near the edge): |sum| = 3 > 0.59


def test_consistency_check_thresholds_grow_with_the_motion():
    # large motion: F = (40, 0), B = (-40 + 15, 0): 15 <= 0.01 (1600 + 625) + 0.5 = 22.75 passes
    h, w = 4, 200
    assert opticalflow.consistency_mask(constant_flow(h, w, 40.0), constant_flow(h, w, -25.0))[:, :100].all()
    assert not opticalflow.consistency_mask(constant_flow(h, w, 1.0), constant_flow(h, w, 0.0))[:, :100].any()
