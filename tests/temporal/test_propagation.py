"""Key frames and propagation (issue 16): key choice, exactness on known motion, holes, cuts, streaming."""
from __future__ import annotations

import numpy as np
import pytest
from test_metrics import smooth_texture

from vid2vid.core.errors import BadInput
from vid2vid.temporal import propagation as prop
from vid2vid.temporal.flowpass import FlowOptions


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    return smooth_texture(width, height, seed, waves=5, freq=(0.05, 0.2))


def panning(n: int, dx: int = 2, width: int = 128, height: int = 96, seed: int = 0) -> list[np.ndarray]:
    big = texture(width + n * dx, height, seed)
    return [np.ascontiguousarray(big[:, t * dx:t * dx + width]) for t in range(n)]


def paint(img: np.ndarray) -> np.ndarray:
    """A stand-in 'painting': a fixed colour transform of the frame (what a stable stylizer would give)."""
    return np.clip(img[..., ::-1] * 0.8 + 0.1, 0, 1).astype(np.float32)


# ---------------------------------------------------------------- key frames

def test_parse_keyframes():
    assert prop.parse_keyframes("off") == prop.KeySpec()
    assert prop.parse_keyframes("every:4") == prop.KeySpec("every", 4)
    assert prop.parse_keyframes("motion:12.5") == prop.KeySpec("motion", 12.5)
    for bad in ("every", "every:0", "every:2.5", "motion:-1", "motion:x", "sometimes:3"):
        with pytest.raises(BadInput):
            prop.parse_keyframes(bad)


def test_choose_keys_every_restarts_at_cuts():
    assert prop.choose_keys(10, prop.KeySpec("every", 3)) == [0, 3, 6, 9]
    assert prop.choose_keys(11, prop.KeySpec("every", 4)) == [0, 4, 8, 10]
    cuts = prop.SourceMotion([0.0] * 10, [t == 5 for t in range(10)])
    # a cut between 4 and 5: both are keys, and counting restarts at 5
    assert prop.choose_keys(10, prop.KeySpec("every", 3), cuts) == [0, 3, 4, 5, 8, 9]
    assert prop.choose_keys(4, prop.KeySpec()) == [0, 1, 2, 3]


def test_choose_keys_by_motion():
    motion = prop.SourceMotion([0, 1, 1, 5, 0.5, 0.5, 0.5, 3, 1], [False] * 9)
    # accumulated: 1, 2, 7 -> key 3; 0.5, 1, 1.5, 4.5 -> key 7; then the last frame
    assert prop.choose_keys(9, prop.KeySpec("motion", 4), motion) == [0, 3, 7, 8]
    with pytest.raises(BadInput):
        prop.choose_keys(9, prop.KeySpec("motion", 4))


def test_fast_motion_adds_keys_and_each_rule_is_counted():
    assert prop.parse_keyframes("every:4+fast") == prop.KeySpec("every", 4, 6.0)
    assert prop.parse_keyframes("motion:24+fast:8") == prop.KeySpec("motion", 24, 8.0)
    assert str(prop.parse_keyframes("every:4+fast:8")) == "every:4+fast:8"
    for bad in ("every:4+slow", "every:4+fast:0", "every:4+fast:x", "off+fast"):
        with pytest.raises(BadInput):
            prop.parse_keyframes(bad)
    # 12 frames; the pairs (5, 6) and (6, 7) move fast, a cut between 9 and 10
    motion = prop.SourceMotion([0, 1, 1, 1, 1, 1, 20, 15, 1, 1, 1, 1], [t == 10 for t in range(12)])
    rules = prop.key_rules(12, prop.KeySpec("every", 4, 12.0), motion)
    assert rules == {"ends": {0, 11}, "cuts": {9, 10}, "every:4": {4, 8}, "fast motion": {6, 7}}
    assert prop.choose_keys(12, prop.KeySpec("every", 4, 12.0), motion) == [0, 4, 6, 7, 8, 9, 10, 11]
    assert prop.choose_keys(12, prop.KeySpec("every", 4), motion) == [0, 4, 8, 9, 10, 11]    # no +fast
    assert prop.describe_rules(rules) == "8 keys: ends 2, cuts 2, every:4 2, fast motion 2"
    with pytest.raises(BadInput):
        prop.key_rules(12, prop.KeySpec("every", 4, 12.0))         # +fast needs the motion


def test_analyse_source_measures_motion_and_cuts():
    frames = panning(4, dx=3) + panning(3, dx=3, seed=7)       # a cut between frames 3 and 4
    sm = prop.analyse_source(len(frames), (128, 96), frames.__getitem__, FlowOptions(flow_scale=1.0))
    assert sm.cuts == [False, False, False, False, True, False, False]
    assert all(abs(m - 3.0) < 0.6 for t, m in enumerate(sm.motion) if t and not sm.cuts[t])


# ---------------------------------------------------------------- propagation

def test_propagated_frames_match_the_painting_of_known_motion():
    frames = panning(9)
    keys = {k: paint(frames[k]) for k in (0, 4, 8)}
    raw, _ = prop.propagate_sequence(frames, keys, steady=False)
    for k in keys:
        assert np.array_equal(raw[k], keys[k])                         # not steadied: the keys as painted
    out, stats = prop.propagate_sequence(frames, keys, steady=False)
    assert stats["propagated"] == 6 and stats["keys"] == 3
    for t in range(9):
        err = np.abs(out[t] - paint(frames[t]))[8:-8, 16:-16]     # away from the borders content enters at
        assert err.mean() < 0.005, t
    # against a plain cross-fade of the two keys (no motion), which ghosts
    fade = 0.5 * keys[0] + 0.5 * keys[4]
    inner = (slice(8, -8), slice(16, -16))
    # (about 10x: the bicubic warp of the key is slightly less exact than a bilinear one on this smooth texture)
    assert np.abs(fade - paint(frames[2]))[inner].mean() > 8 * np.abs(out[2] - paint(frames[2]))[inner].mean()


def test_distance_weights_favour_the_nearer_key():
    frames = [texture(96, 64)] * 5            # no motion: both warps are the keys themselves
    a, b = np.zeros((64, 96, 3), np.float32), np.ones((64, 96, 3), np.float32)
    out, _ = prop.propagate_sequence(frames, {0: a, 4: b}, steady=False)
    for t in (1, 2, 3):
        np.testing.assert_allclose(out[t], t / 4, atol=1e-5)


def test_disocclusion_is_a_hole_and_the_fill_paints_it():
    # a square present only between the keys: neither key sees it
    # (a dark square on a bright background, so that the photometric check cannot mistake it)
    frames = [0.3 + 0.7 * f for f in panning(5, dx=0)]
    for t in (1, 2, 3):
        frames[t][30:60, 40:80] = 0.0
    keys = {0: paint(frames[0]), 4: paint(frames[4])}
    calls = []

    def fill(t, frame, hole):
        calls.append(t)
        return np.full_like(frame, 0.5)

    # (flow at the full size: at half of these small frames the square disturbs the flow far around it)
    out, stats = prop.propagate_sequence(frames, keys, fill=fill, flow_scale=1.0, steady=False)
    assert calls == [1, 2, 3] and stats["filled"] == 3
    inner = out[2][36:54, 48:72]
    np.testing.assert_allclose(inner, 0.5, atol=1e-4)                 # the hole takes the fill
    far = np.ones((96, 128), bool)
    far[14:76, 24:96] = False                                         # 16 px away from the square
    assert np.abs(out[2] - paint(frames[2]))[far].mean() < 0.01       # the rest comes from the keys
    # fill "warp": the hole redrawn from both keys' colour models, weighted by distance (flat keys: each
    # model is its key's value, whatever the source's grey, so the redraw is w_a 0.2 + w_b 0.8)
    flat = {0: np.full((96, 128, 3), 0.2, np.float32), 4: np.full((96, 128, 3), 0.8, np.float32)}
    warp_out, stats = prop.propagate_sequence(frames, flat, fill="warp", flow_scale=1.0, steady=False)
    assert stats["filled"] == 0
    np.testing.assert_allclose(warp_out[1][36:54, 48:72], 0.75 * 0.2 + 0.25 * 0.8, atol=1e-4)
    np.testing.assert_allclose(warp_out[3][36:54, 48:72], 0.25 * 0.2 + 0.75 * 0.8, atol=1e-4)


def test_nothing_crosses_a_scene_cut():
    shot_a, shot_b = panning(4, seed=1), panning(4, seed=2)
    frames = shot_a + shot_b
    sm = prop.analyse_source(8, (128, 96), frames.__getitem__)
    keys = prop.choose_keys(8, prop.KeySpec("every", 8), sm)
    assert keys == [0, 3, 4, 7]
    white = {k: np.full((96, 128, 3), 1.0 if k < 4 else 0.0, np.float32) for k in keys}
    out, _ = prop.propagate_sequence(frames, white)
    for t in range(8):
        np.testing.assert_allclose(out[t], 1.0 if t < 4 else 0.0, atol=1e-5, err_msg=str(t))


@pytest.mark.parametrize("steady", [False, True])
def test_streaming_skips_done_intervals_and_equals_the_list_form(steady):
    frames = panning(9, dx=1)
    keys = {k: paint(frames[k]) for k in (0, 3, 6, 8)}
    full, _ = prop.propagate_sequence(frames, keys, steady=steady)
    got, reads = {}, []

    def source(t):
        reads.append(t)
        return frames[t]

    ticks = []
    prop.propagate_frames(9, (128, 96), source, sorted(keys), keys.__getitem__,
                          lambda t, f, h: got.setdefault(t, f), todo=lambda t: t >= 4,
                          progress=lambda: ticks.append(1), steady=steady)
    assert sorted(got) == [4, 5, 6, 7, 8] and len(ticks) == 9
    # the interval 0..3 was not computed, unless key 3's steadying needs its motion
    assert min(reads) == (0 if steady else 3)
    for t in got:
        assert np.array_equal(got[t], full[t])


def test_bad_keys():
    frames = panning(5)
    with pytest.raises(BadInput, match="first and the last"):
        prop.propagate_sequence(frames, {0: paint(frames[0]), 2: paint(frames[2])})
    with pytest.raises(BadInput, match="keys must all be"):
        prop.propagate_sequence(frames, {0: paint(frames[0]), 4: np.zeros((8, 8, 3), np.float32)})
    with pytest.raises(BadInput, match="not known"):
        prop.propagate_sequence(frames, {0: paint(frames[0]), 4: paint(frames[4])}, fill="img2img")


def test_meaningful_hole_drops_slivers_and_keeps_regions():
    hole = np.zeros((60, 80), np.float32)
    hole[10:40, 10:40] = 1.0                 # a region 30 px across
    hole[9, 10:40] = 0.4                     # its soft rim
    hole[50:53, 0:80] = 1.0                  # a sliver 3 px thick along an edge
    hole[5, 60] = 1.0                        # a speck
    kept = prop.meaningful_hole(hole, 9)
    assert np.array_equal(kept[10:40, 10:40], hole[10:40, 10:40])          # the region, untouched
    assert np.array_equal(kept[9, 12:38], hole[9, 12:38])                  # with its rim
    assert kept[45:, :].max() == 0.0 and kept[5, 60] == 0.0              # no sliver, no speck
    assert np.array_equal(prop.meaningful_hole(hole, 1), hole)             # size 1: the hole itself


def test_only_frames_with_meaningful_holes_get_a_fill():
    # the square of the disocclusion test in frame 1 and a dark line 2 px thick in frame 3: the line
    # disturbs the flow around it, so frame 3 has a real hole, while frame 2, whose chains pass through
    # frame 3, is left with scattered thin slivers only (280 px, 2.3% of the frame: over FILL_MIN)
    frames = [0.3 + 0.7 * f for f in panning(5, dx=0)]
    frames[1][30:60, 40:80] = 0.0
    frames[3][80:82, 10:120] = 0.0
    keys = {0: paint(frames[0]), 4: paint(frames[4])}
    calls = []

    def fill(t, frame, hole):
        calls.append(t)
        return np.full_like(frame, 0.5)

    assert prop.fill_opening((128, 96)) == 2 and prop.fill_opening((832, 480)) == 9   # in proportion to the size
    out, stats = prop.propagate_sequence(frames, keys, fill=fill, flow_scale=1.0, fill_open=9)
    assert calls == [1, 3] and stats["filled"] == 2
    np.testing.assert_allclose(out[1][36:54, 48:72], 0.5, atol=1e-4)
    warp_only, _ = prop.propagate_sequence(frames, keys, fill="warp", flow_scale=1.0)
    assert np.array_equal(out[2], warp_only[2])                            # the slivers keep the warp
    calls.clear()
    _, stats = prop.propagate_sequence(frames, keys, fill=fill, flow_scale=1.0, fill_open=1)
    assert calls == [1, 2, 3]                                             # the old rule fills the slivers too


# ---------------------------------------------------------------- steady keys (issue 16, second session)

def test_steady_key_averages_trusted_neighbours_and_keeps_an_untrusted_key():
    rng = np.random.default_rng(8)
    clean = paint(texture(64, 48, seed=3))
    noise = rng.normal(0.0, 0.02, clean.shape).astype(np.float32)
    key = np.clip(clean + noise, 0, 1)
    full, none = np.ones((48, 64), np.float32), np.zeros((48, 64), np.float32)
    # four neighbours that carry the clean painting with full trust: the noise drops to about 1/5
    out = prop.steady_key(key, [(clean, full)] * 4, trust_floor=0.3)
    err_in, err_out = np.abs(key - clean).mean(), np.abs(out - clean).mean()
    assert err_out < 0.25 * err_in
    # a trust at or below the floor gives nothing: the key as it is
    assert prop.steady_key(key, [(clean, full * 0.3), (clean, none)], trust_floor=0.3) is key
    # neighbours of total weight W that carry the painting shifted by +0.1: the colour match moves the
    # key to the mean of all, + 0.1 W / (1 + W) (gain 1: a pure offset); the average then gives
    # (0.1 W / (1 + W) + 0.1 W) / (1 + W)
    one = prop.steady_key(clean, [(clean + 0.1, full)], trust_floor=0.0)
    four = prop.steady_key(clean, [(clean + 0.1, full)] * 4, trust_floor=0.0)
    np.testing.assert_allclose((one - clean).mean(), (0.1 / 2 + 0.1) / 2, atol=2e-3)
    np.testing.assert_allclose((four - clean).mean(), (0.4 / 5 + 0.4) / 5, atol=2e-3)


def test_steady_keys_take_the_per_key_flicker_out():
    # keys painted with their own colour shift each (as per-frame diffusion does); steadied, the keys
    # and the frames between them lie nearer the steady painting, and nothing crosses a cut
    frames = panning(17, dx=1)
    rng = np.random.default_rng(9)
    keys = {}
    for k in (0, 4, 8, 12, 16):
        keys[k] = np.clip(paint(frames[k]) * rng.normal(1.0, 0.05) + rng.normal(0.0, 0.04), 0, 1).astype(np.float32)
    raw, _ = prop.propagate_sequence(frames, keys, steady=False)
    out, _ = prop.propagate_sequence(frames, keys)
    inner = (slice(8, -8), slice(16, -16))

    def err(seq):
        return float(np.mean([np.abs(f - paint(s))[inner].mean() for f, s in zip(seq, frames)]))

    assert err(out) < 0.6 * err(raw)


# ---------------------------------------------------------------- where the keys cannot be trusted

def fast_patch(n: int = 5, step: int = 24, width: int = 160, height: int = 96) -> list[np.ndarray]:
    """A still textured background and a dark textured patch crossing it `step` px a frame."""
    background = 0.5 + 0.45 * texture(width, height, seed=3)
    patch = 0.4 * texture(16, 16, seed=9)
    frames = []
    for t in range(n):
        f = background.copy()
        f[40:56, 20 + step * t:36 + step * t] = patch
        frames.append(f.astype(np.float32))
    return frames


def tint(img: np.ndarray) -> np.ndarray:
    """A 'painting' that is a function of the grey level alone (a duotone), as the redraw's model assumes."""
    g = img @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.stack([0.9 * g + 0.05, 0.6 * g + 0.2, 0.3 * g + 0.4], axis=2).astype(np.float32)


def test_a_patch_too_fast_for_the_flow_is_redrawn_not_torn():
    frames = fast_patch()
    keys = {0: tint(frames[0]), 4: tint(frames[4])}
    out: dict[int, np.ndarray] = {}
    holes: dict[int, np.ndarray] = {}

    def keep(t, frame, hole):
        out[t] = frame
        if hole is not None:
            holes[t] = hole

    prop.propagate_frames(5, (160, 96), frames.__getitem__, [0, 4], keys.__getitem__, keep, steady=False)
    for t in (1, 2, 3):
        where = (slice(42, 54), slice(22 + 24 * t, 34 + 24 * t))      # the patch at t
        left = (slice(42, 54), slice(22 + 24 * t - 24, 34 + 24 * t - 24))   # where it was a frame ago
        assert holes[t][where].mean() > 0.5, t                 # no key's warp is trusted on the patch
        want = tint(frames[t])
        # drawn where the source has it, in the keys' colours: no streak, no half-transparent double
        assert np.abs(out[t][where] - want[where]).mean() < 0.08, t
        assert np.abs(out[t][left] - want[left]).mean() < 0.08, t
        # a cross-fade of the keys' own pixels would be far off on the patch
        fade = (keys[0] * (4 - t) + keys[4] * t) / 4
        assert np.abs(fade[where] - want[where]).mean() > 3 * np.abs(out[t][where] - want[where]).mean(), t


def test_steadied_keys_keep_what_was_painted_where_the_keys_disagree():
    frames = [texture(96, 64, seed=5)] * 9                      # a still source
    rng = np.random.default_rng(2)
    keys = {k: np.clip(paint(frames[k]) + rng.normal(0, 0.01, (64, 96, 3)), 0, 1).astype(np.float32)
            for k in (0, 4, 8)}
    keys[4][20:40, 30:60] = [0.9, 0.1, 0.1]                     # the painter drew a red sign on key 4 only
    out, _ = prop.propagate_sequence(frames, keys, steady=True)
    sign = (slice(22, 38), slice(32, 58))
    np.testing.assert_allclose(out[4][sign], keys[4][sign], atol=0.02)     # not pulled towards the others
    # elsewhere the keys agree up to noise and the steadied key averages the noise away
    calm = (slice(44, 64), slice(0, 96))
    clean = paint(frames[4])
    assert np.abs(out[4][calm] - clean[calm]).mean() < 0.75 * np.abs(keys[4][calm] - clean[calm]).mean()
