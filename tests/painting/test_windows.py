"""The window machinery on a model-free window predictor: plan, weights, noise, per-step resume, spread."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vid2vid.core.errors import BadInput
from vid2vid.diffusion import samplers
from vid2vid.painting import windows as W

SHAPE = (4, 3, 5)


class Mixer:
    """A nonlinear window model whose frames read each other (as temporal attention does)."""

    def __init__(self):
        self.calls = 0

    def predict(self, x, sigma, frames, evaluation=0):
        self.calls += 1
        s = sigma.view(-1, 1, 1, 1)
        mean = x.mean(0, keepdim=True)
        return torch.tanh(x / (1 + s)) * 0.8 + 0.3 * torch.sin(mean) + 0.01 * len(frames)


def clip(n=11, **kw):
    sigmas = torch.tensor([3.0, 1.7, 0.9, 0.4, 0.1, 0.0])
    opts = dict(seed=5, length=4, overlap=2, weighting="pyramid", init_noise=1.0)
    opts.update(kw)
    step = opts.pop("step", samplers.STEPS["dpm++-2m"])
    return W.ClipSampling(n, SHAPE, sigmas, step, **opts)


def init_latents(n=11):
    return torch.linspace(-1, 1, n * int(np.prod(SHAPE))).reshape(n, *SHAPE)


@pytest.mark.parametrize("n,length,overlap", [(16, 16, 4), (17, 16, 4), (64, 16, 4), (40, 16, 0), (9, 4, 3),
                                              (5, 8, 2), (30, 7, 5)])
@pytest.mark.parametrize("weighting", W.WEIGHTINGS)
def test_windows_cover_the_clip_and_weights_sum_to_one(n, length, overlap, weighting):
    wins = W.plan_windows(n, length, overlap)
    assert wins[0].start == 0 and wins[-1].stop == n
    assert all(len(w) == min(length, n) for w in wins)
    for a, b in zip(wins, wins[1:]):
        assert b.start <= a.stop - overlap and b.start > a.start        # at least `overlap` shared, no gaps
    total = torch.zeros(n, dtype=torch.float64)
    for w, wt in zip(wins, W.blend_weights(wins, n, weighting)):
        assert (wt > 0).all()
        total[w.start:w.stop] += wt.double()
    assert torch.allclose(total, torch.ones(n, dtype=torch.float64), atol=1e-6)


def test_pyramid_weights_favour_the_middle_of_a_window():
    assert W.window_weights(6, "pyramid").tolist() == [1, 2, 3, 3, 2, 1]
    assert W.window_weights(5, "pyramid").tolist() == [1, 2, 3, 2, 1]
    wins = W.plan_windows(12, 8, 4)
    first, second = W.blend_weights(wins, 12, "pyramid")
    assert first[-1] < second[3]                # frame 7: the end of window 1, the middle of window 2


@pytest.mark.parametrize("length,overlap,msg", [(1, 0, "at least 2"), (8, 8, "from 0 to 7"), (8, -1, "from 0 to 7")])
def test_bad_context_is_one_line(length, overlap, msg):
    with pytest.raises(BadInput, match=msg):
        W.plan_windows(20, length, overlap)
    with pytest.raises(BadInput, match=r"trained for \(24 frames\)"):
        W.check_context(32, 4, trained=24, what="this motion module")


def test_frame_noise_depends_on_seed_and_frame_only():
    a = W.frame_noise(3, 10, SHAPE)
    b = W.frame_noise(3, 4, SHAPE)
    assert torch.equal(a[:4], b)
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(W.frame_noise(4, 1, SHAPE)[0], a[0])


def test_shuffled_noise_reuses_earlier_frames_in_shuffled_order():
    n, length, overlap = 30, 8, 2
    src = [W.noise_source(f, length, overlap, 9) for f in range(n)]
    assert src[:length] == list(range(length))
    for f in range(length, n):
        assert src[f] < length                                  # every frame reuses a first-window noise
    block = src[length:length + 6]
    assert sorted(block) == list(range(0, 6)) and block != list(range(0, 6))
    a = W.frame_noise(9, n, SHAPE, (length, overlap))
    assert all(torch.equal(a[f], a[src[f]]) for f in range(n))
    assert torch.equal(W.frame_noise(9, 20, SHAPE, (length, overlap)), a[:20])


@pytest.mark.parametrize("name", ["euler", "euler-a", "dpm++-2m", "lms", "heun"])
def test_one_window_as_long_as_the_clip_is_the_sampler_on_the_clip(name):
    model = Mixer()
    run = clip(6, length=6, overlap=2, step=samplers.STEPS[name])
    out = run.run(W.LocalSpread(model), lambda: init_latents(6))
    x = run.start(init_latents(6))
    ref = samplers.SAMPLERS[name](lambda x, s: model.predict(x, s, range(6)), x, run.sigmas,
                                  W.step_noise(5, 6, SHAPE))
    assert torch.equal(out, ref)


def test_overlapping_windows_blend_predictions():
    model = Mixer()
    run = clip(11)
    x = run.start(init_latents(11))
    sigma = torch.full((11,), 3.0)
    blended = W.Blended(W.LocalSpread(model), run.windows, run.weights)(x, sigma)
    by_hand = torch.zeros_like(x)
    for w, wt in zip(run.windows, run.weights):
        by_hand[w.start:w.stop] += model.predict(x[w.start:w.stop], sigma[:len(w)], w) * wt.view(-1, 1, 1, 1)
    assert torch.allclose(blended, by_hand, atol=0)
    # frame 1 alone in window 1: its prediction is that window's
    assert torch.equal(blended[1], model.predict(x[0:4], sigma[:4], range(0, 4))[1])


class Kill(Exception):
    pass


@pytest.mark.parametrize("name", ["euler-a", "dpm++-2m", "lms", "dpm++-2m-sde"])
def test_resume_after_any_step_gives_the_same_bits(tmp_path, name):
    step = samplers.STEPS[name]
    whole = clip(step=step).run(W.LocalSpread(Mixer()), lambda: init_latents())
    for kill_after in (1, 3):
        folder = tmp_path / f"{name}-{kill_after}"
        store = W.StepStore(folder, "key-1", 5, {"painter": "test"})

        def stop(done, kill_after=kill_after):
            if done == kill_after:
                raise Kill

        with pytest.raises(Kill):
            clip(step=step).run(W.LocalSpread(Mixer()), lambda: init_latents(), store, stop)
        state = json.loads((folder / W.STATE_JSON).read_text())
        assert state["steps_done"] == kill_after and state["steps_total"] == 5 and state["painter"] == "test"

        def no_encode():
            raise AssertionError("a resumed run does not encode again")

        model = Mixer()
        resumed = clip(step=step).run(W.LocalSpread(model), no_encode, W.StepStore(folder, "key-1", 5))
        assert torch.equal(resumed, whole)
        calls = 2 if name == "heun" else 1
        assert model.calls == (5 - kill_after) * len(clip().windows) * calls
    # a state of other settings is not used
    other = W.StepStore(tmp_path / f"{name}-1", "key-2", 5)
    assert other.load((11, *SHAPE)) is None


def test_torn_state_file_starts_again(tmp_path):
    (tmp_path / W.STATE_FILE).write_bytes(b"not a torch file")
    store = W.StepStore(tmp_path, "k", 5)
    assert store.load((11, *SHAPE)) is None
    out = clip().run(W.LocalSpread(Mixer()), lambda: init_latents(), store)
    assert torch.equal(out, clip().run(W.LocalSpread(Mixer()), lambda: init_latents()))


def test_threads_give_the_same_bits_as_inline():
    step = samplers.STEPS["euler-a"]
    one = clip(step=step).run(W.LocalSpread(Mixer()), lambda: init_latents())
    spread = W.LocalSpread(Mixer(), workers=2, threads=1)
    try:
        two = clip(step=step).run(spread, lambda: init_latents())
    finally:
        spread.close()
    assert torch.equal(one, two)


def test_few_step_samplers_run_in_windows_and_resume(tmp_path):
    """LCM (AnimateLCM's sampler) in step form: the windowed loop with one window is the whole-schedule
    sampler, and a resumed run gives the same bits (its carry is only the noise generators)."""
    from vid2vid.diffusion import fewstep, schedules

    training = schedules.sd_training_sigmas()
    ts, real = fewstep.real_sigmas(4, 0.75, training)
    sigmas = torch.tensor(real, dtype=torch.float32)
    step = fewstep.step_for("lcm", ts, training)
    model = Mixer()
    one = W.ClipSampling(5, SHAPE, sigmas, step, 5, 5, 2)
    out = one.run(W.LocalSpread(model), lambda: init_latents(5))
    ref = fewstep.sampler_for("lcm", ts, training)(lambda x, s: model.predict(x, s, range(5)),
                                                   one.start(init_latents(5)), sigmas, W.step_noise(5, 5, SHAPE))
    assert torch.equal(out, ref)
    whole = W.ClipSampling(11, SHAPE, sigmas, step, 5, 4, 2).run(W.LocalSpread(Mixer()), lambda: init_latents())
    store = W.StepStore(tmp_path, "k", 4)
    with pytest.raises(Kill):
        W.ClipSampling(11, SHAPE, sigmas, step, 5, 4, 2).run(
            W.LocalSpread(Mixer()), lambda: init_latents(), store, lambda d: (_ for _ in ()).throw(Kill()))
    assert json.loads((tmp_path / W.STATE_JSON).read_text())["steps_done"] == 1
    again = W.ClipSampling(11, SHAPE, sigmas, step, 5, 4, 2).run(W.LocalSpread(Mixer()), lambda: init_latents(),
                                                                 W.StepStore(tmp_path, "k", 4))
    assert torch.equal(again, whole)
