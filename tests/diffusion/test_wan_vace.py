"""One Wan VACE window in our code against diffusers' WanVACEPipeline on the same tiny parts."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from vid2vid.diffusion import wan_vace as wv

FRAMES, SIZE, STEPS, SHIFT, CFG = 9, 32, 3, 3.0, 4.0


def load_tiny(tmp_path_factory):
    """The tiny model written to disk and read back through diffusers' own loader (offline): (pipe, parts)."""
    from diffusers import WanVACEPipeline

    from vid2vid.diffusion.wan_tiny import make_tiny_wan_vace

    folder = make_tiny_wan_vace(tmp_path_factory.mktemp("wan") / "tiny-wan-vace")
    pipe = WanVACEPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    parts = wv.WanVace(pipe.transformer, pipe.vae, pipe.text_encoder, pipe.tokenizer, torch.device("cpu"))
    return pipe, parts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_tiny(tmp_path_factory)


def clip(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((SIZE, SIZE, 3)).astype(np.float32) for _ in range(FRAMES)]


def to_pil(frames):
    from PIL import Image
    return [Image.fromarray(np.round(f * 255).astype(np.uint8)) for f in frames]


def quantised(frames):
    return [np.round(f * 255).astype(np.float32) / 255 for f in frames]


def ours(parts, control, refs=(), scale=1.0, mask=None, seed=0):
    embeds = wv.encode_prompt(parts, "a cat dancing", max_len=16)
    negative = wv.encode_prompt(parts, "blurry", max_len=16)
    cond = wv.conditioning(parts, wv.frames_to_video(control), mask, list(refs))
    noise = torch.randn((1, 16, cond.shape[2], SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(seed))
    x = wv.denoise(parts, noise, cond, embeds, negative, STEPS, SHIFT, CFG, control_scale=scale)
    return wv.decode(parts.vae, x[:, :, len(refs):]), noise, embeds, negative, x[:, :, len(refs):]


def moved(a, b) -> float:
    """Mean change of the clean latents between two runs (the tiny random VAE squashes pixels)."""
    assert np.abs(np.stack(a[0]) - np.stack(b[0])).max() > 1e-4        # and the frames change too
    return float((a[4] - b[4]).abs().mean())


def test_prompt_embeddings_match_the_pipeline(tiny, monkeypatch):
    from diffusers.pipelines.wan import pipeline_wan_vace

    pipe, parts = tiny
    monkeypatch.setattr(pipeline_wan_vace, "ftfy", types.SimpleNamespace(fix_text=lambda s: s), raising=False)
    ref = pipe._get_t5_prompt_embeds("a  cat &amp; dog", max_sequence_length=16)
    assert torch.allclose(wv.encode_prompt(parts, "a  cat &amp; dog", max_len=16), ref, atol=1e-6)


@pytest.mark.parametrize("with_reference", [False, True])
def test_one_window_equals_wan_vace_pipeline(tiny, with_reference):
    pipe, parts = tiny
    control = quantised(clip(1))
    refs = [quantised(clip(2))[0]] if with_reference else []
    frames, noise, embeds, negative, _ = ours(parts, control, refs)
    expected = pipe(video=to_pil(control), reference_images=to_pil(refs) or None, height=SIZE, width=SIZE,
                    num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=CFG, latents=noise.clone(),
                    prompt_embeds=embeds, negative_prompt_embeds=negative, output_type="np").frames[0]
    assert expected.shape == (FRAMES, SIZE, SIZE, 3)
    assert np.abs(np.stack(frames) - expected).max() <= 1e-4


def test_control_video_and_reference_move_the_frames(tiny):
    _, parts = tiny
    base = ours(parts, clip(1))
    assert moved(base, ours(parts, [1 - f for f in clip(1)])) > 1e-3   # another control video
    assert moved(base, ours(parts, clip(1), [clip(2)[0]])) > 1e-3   # a reference image
    assert moved(base, ours(parts, clip(1), scale=0.5)) > 1e-3      # a weaker control
    # control scale 0: the VACE branch adds nothing, so the control video does not matter
    off = ours(parts, clip(1), scale=0.0)
    assert float((off[4] - ours(parts, clip(3), scale=0.0)[4]).abs().max()) < 1e-6
    assert moved(off, base) > 1e-3


def test_mask_keeps_and_repaints(tiny):
    _, parts = tiny
    keep = torch.zeros(FRAMES, SIZE, SIZE)
    assert moved(ours(parts, clip(1), mask=keep), ours(parts, clip(1))) > 1e-3


def test_fold_mask_layout():
    mask = torch.arange(9 * 16 * 16, dtype=torch.float32).reshape(9, 16, 16)
    folded = wv.fold_mask(mask, 1)
    assert folded.shape == (64, 3, 2, 2)
    # channel (dy*8+dx), latent pixel (y, x) holds pixel (8y+dy, 8x+dx); latent frame t takes frame
    # floor((t + 0.5) * 9 / 3) (nearest-exact), as the pipeline does: 1, 4, 7
    assert folded[3 * 8 + 5, 0, 1, 0] == mask[1, 8 + 3, 5]
    assert folded[2 * 8 + 7, 2, 0, 1] == mask[7, 2, 8 + 7]
