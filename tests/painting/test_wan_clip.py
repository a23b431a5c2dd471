"""Wan VACE on the window machinery: one window equals diffusers' pipeline, windows, resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vid2vid.core.errors import BadInput
from vid2vid.diffusion import wan_vace as wv
from vid2vid.painting import wan_clip as wc
from vid2vid.painting import windows as win

SIZE, STEPS, SHIFT, CFG, SEED = 32, 3, 3.0, 4.0, 7


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from test_wan_vace import load_tiny

    pipe, parts = load_tiny(tmp_path_factory)
    embeds = wv.encode_prompt(parts, "a cat dancing", max_len=16)
    negative = wv.encode_prompt(parts, "blurry", max_len=16)
    return pipe, parts, embeds, negative


def clip(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.round(rng.random((SIZE, SIZE, 3)) * 255).astype(np.float32) / 255 for _ in range(n)]


def reader(frames):
    return lambda idx: [frames[i] for i in idx]


def paint(tiny, control, length, overlap, refs=(), store=None, on_step=None, strength=1.0, spread=None):
    _, parts, embeds, negative = tiny
    model = wc.WanWindows(parts, len(control), reader(control), embeds, negative, CFG, references=refs, seed=SEED)
    run = wc.sampling(len(control), (16, SIZE // 8, SIZE // 8), STEPS, SHIFT, SEED, length, overlap,
                      strength=strength)
    frames = wc.paint_clip(parts, model, run, spread or win.LocalSpread(model), store, reader(control), on_step)
    return np.stack(list(frames)), run


def test_one_window_equals_the_pipeline(tiny):
    from PIL import Image

    pipe = tiny[0]
    control = clip(9)
    ours, run = paint(tiny, control, 17, 1)
    assert len(run.windows) == 1
    noise = win.frame_noise(SEED, run.frames, run.shape).permute(1, 0, 2, 3)[None]
    expected = pipe(video=[Image.fromarray(np.round(f * 255).astype(np.uint8)) for f in control],
                    height=SIZE, width=SIZE, num_frames=9, num_inference_steps=STEPS, guidance_scale=CFG,
                    latents=noise, prompt_embeds=tiny[2], negative_prompt_embeds=tiny[3],
                    output_type="np").frames[0]
    assert np.abs(ours - expected).max() <= 1e-4


def test_streamed_decode_equals_the_vae(tiny):
    vae = tiny[1].vae
    z = torch.randn(3, 16, 4, 4, generator=torch.Generator().manual_seed(3))
    whole = np.stack(wv.decode(vae, z.permute(1, 0, 2, 3)[None]))
    assert np.abs(np.stack(list(wv.decode_stream(vae, z))) - whole).max() < 1e-6


def test_streamed_encode_equals_the_vae(tiny):
    vae = tiny[1].vae
    video = wv.frames_to_video(clip(9))
    whole = wv.encode(vae, video)
    chunks = [video[:, :, :1], video[:, :, 1:5], video[:, :, 5:9]]
    streamed = torch.cat(list(wv.encode_stream(vae, chunks)), dim=2)
    assert streamed.shape == whole.shape == (1, 16, 3, SIZE // 8, SIZE // 8)
    assert (streamed - whole).abs().max() < 1e-5


def test_windows_cover_the_clip_and_differ_from_one_window(tiny):
    control = clip(17)
    one, _ = paint(tiny, control, 17, 1)
    again, _ = paint(tiny, control, 33, 1)              # a window longer than the clip: still one
    assert np.array_equal(one, again)
    three, run = paint(tiny, control, 9, 5)
    assert [(w.start, w.stop) for w in run.windows] == [(0, 3), (1, 4), (2, 5)]
    assert three.shape == one.shape and np.isfinite(three).all()
    assert np.abs(three - one).max() > 1e-4
    # lone first latents of later windows weigh nothing; every latent's weights sum to 1
    assert [float(w[0]) for w in run.weights] == [1.0, 0.0, 0.0]
    total = torch.zeros(5)
    for w, wt in zip(run.windows, run.weights):
        total[w.start:w.stop] += wt
    assert torch.allclose(total, torch.ones(5))


def test_padding_to_4n_plus_1_and_reference(tiny):
    control = clip(11)                                  # padded to 13 frames, 11 come back
    plain, _ = paint(tiny, control, 9, 5)
    with_ref, _ = paint(tiny, control, 9, 5, refs=[clip(1, seed=5)[0]])
    assert plain.shape == (11, SIZE, SIZE, 3)
    assert np.abs(plain - with_ref).max() > 1e-4


def test_kill_and_resume_give_the_same_bits(tiny, tmp_path):
    control = clip(13)
    whole, _ = paint(tiny, control, 9, 5)

    class Killed(Exception):
        pass

    def kill_after_two(done):
        if done == 2:
            raise Killed

    store = win.StepStore(tmp_path, "k", STEPS)
    with pytest.raises(Killed):
        paint(tiny, control, 9, 5, store=store, on_step=kill_after_two)
    assert store.load((4, 16, SIZE // 8, SIZE // 8))["steps_done"] == 2
    resumed, _ = paint(tiny, control, 9, 5, store=store)
    assert np.array_equal(resumed, whole)


def test_strength_below_one_starts_from_the_source(tiny):
    control = clip(9)
    full, _ = paint(tiny, control, 9, 1)
    part, run = paint(tiny, control, 9, 1, strength=0.5)
    assert run.steps_total == 2 and np.abs(full - part).max() > 1e-4


@pytest.mark.parametrize("length, overlap", [(16, 4), (8, 0), (17, 4), (17, 17), (17, 0)])
def test_bad_windows_are_refused(length, overlap):
    with pytest.raises(BadInput, match="context[-_](length|overlap)"):
        wc.check_context(length, overlap)
