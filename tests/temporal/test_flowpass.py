"""Flow-guided temporal correction: steadier along the motion, close to the input, no leaks."""
from __future__ import annotations

import numpy as np
import pytest
from test_metrics import constant_flow, translating

from vid2vid.core.errors import BadInput
from vid2vid.temporal import flowpass, metrics, opticalflow


def flickering(frames: list[np.ndarray], seed: int, colour: float = 0.03, noise: float = 0.02) -> list[np.ndarray]:
    """Per-frame global colour shift N(0, colour) and pixel noise N(0, noise), clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        shift = rng.normal(0, colour, 3).astype(np.float32)
        out.append(np.clip(f + shift + rng.normal(0, noise, f.shape).astype(np.float32), 0, 1))
    return out


def test_flicker_is_removed_along_the_motion_and_the_output_stays_close():
    src = translating(10, 2, width=128, height=96)
    gen = flickering(src, seed=5)
    out = flowpass.flow_correct_sequence(src, gen)
    assert all(o.dtype == np.float32 and o.shape == g.shape for o, g in zip(out, gen))
    we_gen, we_out = metrics.warping_error(src, gen), metrics.warping_error(src, out)
    assert we_out < 0.25 * we_gen
    assert metrics.sequence_psnr(out, gen) > 28.0
    # it removed the flicker rather than anything else: closer to the steady frames than its input
    assert metrics.sequence_psnr(out, src) > metrics.sequence_psnr(gen, src) + 4.0


def test_stronger_correction_is_steadier_and_less_faithful():
    src = translating(8, 1, width=128, height=96)
    gen = flickering(src, seed=6)
    weak = flowpass.flow_correct_sequence(src, gen, 0.4)
    strong = flowpass.flow_correct_sequence(src, gen, 0.9)
    assert metrics.warping_error(src, strong) < metrics.warping_error(src, weak)
    assert metrics.sequence_psnr(strong, gen) < metrics.sequence_psnr(weak, gen)


def test_strength_zero_and_full_change_masks_return_the_generated_frames():
    src = translating(4, 2, width=64, height=48)
    gen = flickering(src, seed=7)
    for out in (flowpass.flow_correct_sequence(src, gen, 0.0),
                flowpass.flow_correct_sequence(src, gen, change_masks=[np.ones((48, 64, 1), np.float32)] * 4)):
        for o, g in zip(out, gen):
            np.testing.assert_allclose(o, g, atol=1e-6)
    zero = flowpass.flow_correct_sequence(src, gen, change_masks=[np.zeros((48, 64, 1), np.float32)] * 4)
    plain = flowpass.flow_correct_sequence(src, gen)
    for a, b in zip(zero, plain):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_scene_cut_does_not_leak_content_across_it():
    a, b = translating(6, 2, 128, 96, seed=1), translating(6, 1, 128, 96, seed=7)
    b = [np.clip(f * 0.5 + 0.5, 0, 1) for f in b]              # a brighter, unrelated shot
    ga, gb = flickering(a, seed=8), flickering(b, seed=9)
    whole = flowpass.flow_correct_sequence(a + b, ga + gb)
    # with the cut found, each shot is corrected exactly as if it were alone
    alone = flowpass.flow_correct_sequence(a, ga) + flowpass.flow_correct_sequence(b, gb)
    for w, s in zip(whole, alone):
        np.testing.assert_allclose(w, s, atol=1e-6)
    opts = flowpass.FlowOptions()
    size = flowpass.flow_size((128, 96), opts)
    link = flowpass.source_link(flowpass.flow_grey(a[-1], size), flowpass.flow_grey(b[0], size), opts)
    assert link.cut and not link.trust_bw.any() and not link.trust_fw.any()


def test_occluded_or_inconsistent_motion_gets_no_trust():
    h, w = 16, 40
    grey = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    shifted = np.roll(grey, -3, axis=1)                     # shifted(x) = grey(x + 3)
    flow, back = constant_flow(h, w, 3.0), constant_flow(h, w, -3.0)   # at shifted towards grey, and back
    trust = flowpass.motion_trust(flow, back, shifted, grey, sigma=0.05)
    assert np.all(trust[:, :-3] > 0.99)                     # consistent and photometrically right
    assert np.all(trust[:, -3:] == 0)                       # samples outside the other frame
    broken = constant_flow(h, w, 1.0)                       # the way back does not return
    assert not flowpass.motion_trust(flow, broken, shifted, grey, sigma=0.05).any()
    wrong = flowpass.motion_trust(constant_flow(h, w, 8.0), constant_flow(h, w, -8.0), shifted, grey, 0.05)
    assert np.all(wrong[:, :-8] < 0.01)                    # consistent but the colours disagree


def test_no_ghost_where_a_moving_object_uncovers_or_covers_the_background():
    from test_metrics import smooth_texture

    bg = smooth_texture(128, 96, seed=3) * 0.5                  # dark textured background
    src = []
    for t in range(8):
        f = bg.copy()
        f[30:62, 20 + 4 * t:52 + 4 * t] = (1.0, 0.9, 0.2)      # bright square moving right 4 px/frame
        src.append(f)
    gen = flickering(src, seed=11, colour=0.02, noise=0.01)
    out = flowpass.flow_correct_sequence(src, gen, 0.9)
    for t in range(1, 8):
        x0 = 20 + 4 * t
        behind = (slice(34, 58), slice(x0 - 4, x0))             # square at t-1, background at t
        ahead = (slice(34, 58), slice(x0 + 32, x0 + 36))        # background at t, square at t+1
        # the square differs from the background by > 0.5; blending it in (no occlusion
        # handling) leaves errors of 0.1 - 0.2 here, the flicker alone about 0.02
        assert np.abs(out[t][behind] - src[t][behind]).mean() < 0.05
        assert np.abs(out[t][ahead] - src[t][ahead]).mean() < 0.05


def test_constant_frames_give_no_nan():
    src = [np.full((32, 48, 3), 0.5, np.float32)] * 5
    levels = [0.0, 1.0, 0.0, 1.0, 0.5]
    gen = [np.full((32, 48, 3), v, np.float32) for v in levels]
    out = flowpass.flow_correct_sequence(src, gen, ghost_gate=False)
    assert all(np.isfinite(o).all() and o.min() >= 0 and o.max() <= 1 for o in out)
    assert out[0].std() < 1e-6 and 0.1 < out[1].mean() < 0.9      # averaged, still constant frames
    # the ghost gate: a jump of 1.0 on a still source is no flicker, each frame keeps its own level
    gated = flowpass.flow_correct_sequence(src, gen)
    assert all(np.isfinite(o).all() for o in gated)
    assert [round(float(o.mean()), 3) for o in gated[:4]] == [0.0, 1.0, 0.0, 1.0]
    black = flowpass.flow_correct_sequence([np.zeros((32, 48, 3), np.uint8)] * 3,
                                           [np.zeros((32, 48, 3), np.uint8)] * 3)
    assert all(np.isfinite(o).all() and not o.any() for o in black)


def test_sources_of_another_size_and_uint8_inputs_are_accepted():
    src = translating(5, 2, width=128, height=96)
    gen = flickering([opticalflow.resize_to(s, 64, 48) for s in src], seed=10)
    gen8 = [np.clip(np.rint(g * 255), 0, 255).astype(np.uint8) for g in gen]
    src8 = [np.clip(np.rint(s * 255), 0, 255).astype(np.uint8) for s in src]
    out = flowpass.flow_correct_sequence(src8, gen8)
    assert out[0].shape == (48, 64, 3) and out[0].dtype == np.float32
    assert metrics.warping_error(src, out) < metrics.warping_error(src, gen)


def test_bad_input_says_what_to_fix():
    src = translating(3, 1, width=32, height=24)
    with pytest.raises(BadInput, match="source frames"):
        flowpass.flow_correct_sequence(src, src[:2])
    with pytest.raises(BadInput, match="strength"):
        flowpass.flow_correct_sequence(src, src, 1.0)
    with pytest.raises(BadInput, match="unknown option"):
        flowpass.flow_correct_sequence(src, src, radius=3)
    with pytest.raises(BadInput, match="preset"):
        flowpass.flow_correct_sequence(src, src, preset="slow")
    with pytest.raises(BadInput, match="mask"):
        flowpass.flow_correct_sequence(src, src, change_masks=[np.zeros((5, 5, 1), np.float32)] * 3)


# ---------------------------------------------------------------- frame by frame, in segments

def test_segments_give_the_whole_sequence_result_to_the_bit():
    src = translating(13, 3, width=64, height=48)
    src[7] = 1.0 - src[7]                                   # a scene cut inside a segment
    gen = flickering(src, seed=2)
    rng = np.random.default_rng(4)
    masks = [None] + [rng.random((48, 64, 1)).astype(np.float32) * 0.5 for _ in range(12)]
    for change_masks in (None, masks):
        whole = flowpass.flow_correct_sequence(src, gen, 0.8, change_masks=change_masks)
        for segment in (1, 2, 5, 12):
            out, reads, calls = [None] * 13, [0] * 13, [0]

            def generated(t):
                reads[t] += 1
                return gen[t]

            def keep(t, frame):
                assert out[t] is None                   # each frame is handed over once
                out[t] = frame

            flowpass.flow_correct_frames(13, (64, 48), src.__getitem__, generated, 0.8, keep,
                                         change_mask=None if change_masks is None else masks.__getitem__,
                                         segment=segment, progress=lambda: calls.__setitem__(0, calls[0] + 1))
            assert all(np.array_equal(a, b) for a, b in zip(whole, out)), segment
            assert calls[0] == flowpass.flow_steps(13, segment)
            assert max(reads) <= 2                      # the checkpoint pass, then the segment's own pass


def test_segment_length_keeps_short_videos_whole_and_long_ones_near_sqrt():
    per_frame = 832 * 448 * 35                                                 # bytes held per frame
    assert flowpass.segment_length(150, 832, 448) == 150                     # 2 GB hold it: one segment
    assert flowpass.segment_length(300, 832, 448) == flowpass.MEMORY_BUDGET // (2 * per_frame)   # 2 segments fit
    assert flowpass.segment_length(20000, 832, 448) == 142                   # ceil(sqrt(20000))
    assert flowpass.segment_length(400, 832, 448, budget=10 ** 6) == 20       # sqrt(400) when nothing fits
    assert flowpass.flow_steps(10, 10) == 20 and flowpass.flow_steps(10, 3) == 8 + 20 and flowpass.flow_steps(1, 1) == 0
