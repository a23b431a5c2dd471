"""The img2img fill's budget: which frames the model repaints when it may paint only some of them."""
from __future__ import annotations

import numpy as np
import pytest
from test_propagation import paint, panning

from vid2vid.temporal import fillbudget
from vid2vid.temporal import propagation as prop
from vid2vid.temporal.flowpass import flow_options


def test_allowance_is_what_the_keys_leave_of_the_budget():
    assert fillbudget.allowance(81, 27, 0.35) == 1          # floor(28.35) = 28 frames, 27 of them keys
    assert fillbudget.allowance(81, 18, 0.35) == 10
    assert fillbudget.allowance(20, 4, 0.35) == 3           # 7 frames
    assert fillbudget.allowance(10, 6, 0.35) == 0           # the keys alone are over the budget
    assert fillbudget.allowance(10, 2, 0.0) == 0
    assert fillbudget.allowance(10, 2, 1.0) is None          # 1: no limit


@pytest.mark.parametrize("seed", range(5))
def test_choose_takes_the_largest_holes_and_never_more_than_the_limit(seed):
    rng = np.random.default_rng(seed)
    shares = {int(t): float(s) for t, s in zip(rng.permutation(200)[:60], rng.uniform(0, 0.05, 60))}
    shares[500] = shares[501] = 0.04                           # a tie
    candidates = {t for t, s in shares.items() if s > 0.01}
    for limit in (0, 1, 7, 30, len(candidates), 1000, None):
        chosen = fillbudget.choose(shares, limit, fill_min=0.01)
        assert len(chosen) == (len(candidates) if limit is None else min(limit, len(candidates)))
        assert chosen <= candidates                            # never a hole at or under fill_min
        left = candidates - chosen
        if chosen and left:                                    # every chosen hole at least every one left
            assert min(shares[t] for t in chosen) >= max(shares[t] for t in left)
        assert fillbudget.choose(dict(reversed(list(shares.items()))), limit, fill_min=0.01) == chosen
    ranked = sorted(candidates, key=lambda t: -shares[t])
    tie_at = ranked.index(500) if 500 in ranked[:ranked.index(501) + 1] else ranked.index(501)
    assert 500 in fillbudget.choose(shares, tie_at + 1, fill_min=0.01)      # a tie: the earlier frame first
    assert 501 not in fillbudget.choose(shares, tie_at + 1, fill_min=0.01)


def _holes_case():
    """Five frames, keys 0 and 4: a square in frame 1 and a dark line in frame 3 disturb the flow, so
    frames 1, 2, 3 each have a hole of a different size (see test_propagation's fill test)."""
    frames = [0.3 + 0.7 * f for f in panning(5, dx=0)]
    frames[1][30:60, 40:80] = 0.0
    frames[3][80:82, 10:120] = 0.0
    return frames, {0: paint(frames[0]), 4: paint(frames[4])}


def _recording_fill(calls):
    def fill(t, frame, hole):
        calls.append((t, float(prop.meaningful_hole(hole, 1).mean())))
        return np.full_like(frame, 0.5)
    return fill


def test_hole_shares_are_the_holes_the_pass_measures():
    frames, keys = _holes_case()
    calls: list = []
    # fill_min -1: the pass hands every in-between frame to the fill, with the hole it measured
    prop.propagate_sequence(frames, keys, fill=_recording_fill(calls), flow_scale=1.0, fill_open=1, fill_min=-1.0)
    shares = fillbudget.hole_shares(5, (128, 96), frames.__getitem__, [0, 4], flow_options({"flow_scale": 1.0}), 1)
    assert shares == dict(calls)                               # bit for bit, measured before any painting
    assert len(set(shares.values())) == 3 and all(s > 0.005 for s in shares.values())


def test_a_budget_fills_the_largest_holes_only_and_the_rest_keep_the_redraw():
    frames, keys = _holes_case()
    shares = fillbudget.hole_shares(5, (128, 96), frames.__getitem__, [0, 4], flow_options({"flow_scale": 1.0}), 1)
    order = sorted(shares, key=lambda t: -shares[t])
    warp_only, _ = prop.propagate_sequence(frames, keys, flow_scale=1.0, fill_open=1)
    for budget, filled in ((0.4, 0), (0.6, 1), (0.99, 2)):     # floor(5 b) - 2 keys; 3 frames have holes
        calls: list = []
        out, stats = prop.propagate_sequence(frames, keys, fill=_recording_fill(calls), flow_scale=1.0, fill_open=1,
                                             fill_budget=budget)
        assert sorted(t for t, _ in calls) == sorted(order[:filled]) and stats["filled"] == filled
        for t in order[filled:]:                               # not chosen: exactly the warp-only frame
            assert np.array_equal(out[t], warp_only[t])
        again, _ = prop.propagate_sequence(frames, keys, fill=_recording_fill([]), flow_scale=1.0, fill_open=1,
                                           fill_budget=budget)
        assert all(np.array_equal(a, b) for a, b in zip(out, again))     # deterministic


def test_a_budget_that_excludes_nothing_is_todays_fill_bit_for_bit():
    frames, keys = _holes_case()
    runs = {}
    for budget in (1.0, 0.99):              # 1: frame by frame (no hole pass); 0.99: the hole pass, 2 allowed
        calls: list = []
        runs[budget] = prop.propagate_sequence(frames, keys, fill=_recording_fill(calls), flow_scale=1.0,
                                               fill_open=9), calls
    (a, sa), ca = runs[1.0]
    (b, sb), cb = runs[0.99]
    assert ca == cb and sa == sb and [t for t, _ in ca] == [1, 3]        # the old rule's frames (slivers: none)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_budget_holds_when_a_run_resumes():
    # a resumed run (todo: frames not yet written) gets the same choice and the same frames
    frames, keys = _holes_case()
    size, options = (128, 96), flow_options({"flow_scale": 1.0})
    chosen = fillbudget.fill_frames(5, size, frames.__getitem__, [0, 4], 0.6, options, 1)
    full: dict = {}
    prop.propagate_frames(5, size, frames.__getitem__, [0, 4], keys.__getitem__, lambda t, f, h: full.setdefault(t, f),
                          fill=_recording_fill([]), options=options, fill_open=1, fill_frames=chosen)
    rest: dict = {}
    again = fillbudget.fill_frames(5, size, frames.__getitem__, [0, 4], 0.6, options, 1)
    prop.propagate_frames(5, size, frames.__getitem__, [0, 4], keys.__getitem__, lambda t, f, h: rest.setdefault(t, f),
                          fill=_recording_fill([]), options=options, fill_open=1, fill_frames=again,
                          todo=lambda t: t >= 2)
    assert again == chosen and len(chosen) == 1
    assert all(np.array_equal(rest[t], full[t]) for t in rest) and sorted(rest) == [2, 3, 4]
