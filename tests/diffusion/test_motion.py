"""Motion modules on the tiny model: the files load, the windowed run equals diffusers' AnimateDiff."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import moving_frames
from vid2vid.config import Img2ImgSettings
from vid2vid.core.errors import BadInput
from vid2vid.diffusion.engine import Img2ImgEngine
from vid2vid.diffusion.motion import MotionLayers
from vid2vid.diffusion.motion_loading import check_family, load_adapter
from vid2vid.diffusion.motion_windows import EngineWindows, sampler_step
from vid2vid.diffusion.tiny_motion import build_tiny_motion_module, make_tiny_motion_module
from vid2vid.painting import windows as W

SIDE = 64


@pytest.fixture(scope="module")
def module_file(tmp_path_factory):
    return make_tiny_motion_module(tmp_path_factory.mktemp("mm"), single_file=True)


def settings(**kw) -> Img2ImgSettings:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=6, denoise=0.75, width=SIDE,
                height=SIDE, sampler="euler", schedule="exponential", cfg=7.0)
    base.update(kw)
    return Img2ImgSettings(**base)


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    return [f.astype(np.float32) / 255 if f.dtype == np.uint8 else f for f in moving_frames(n, SIDE, SIDE, seed)]


def windowed(engine, layers, canvases, length, overlap=2, weighting="flat", controls=None, seed=3):
    init = torch.cat([engine.encode([c]) for c in canvases])
    clip = W.ClipSampling(len(canvases), init.shape[1:], torch.tensor(engine.real_sigmas, dtype=torch.float32),
                          sampler_step(engine), seed, length, overlap, weighting)
    out = clip.run(W.LocalSpread(EngineWindows(engine, layers, controls)), lambda: init)
    return out, clip, init


def test_single_file_and_folder_load_the_same_weights(module_file, tmp_path):
    ref = build_tiny_motion_module()
    for spec in (module_file, make_tiny_motion_module(tmp_path / "folder")):
        got = load_adapter(str(spec))
        assert got.config["motion_max_seq_length"] == 32 and got.config["use_motion_mid_block"]
        for k, v in ref.state_dict().items():
            assert torch.equal(got.state_dict()[k], v), k


def test_diffusers_single_file_loader_reads_our_file_the_same(module_file, tmp_path):
    """diffusers' own from_single_file (its key conversion, config from our folder) gives the same weights."""
    from diffusers import MotionAdapter

    folder = make_tiny_motion_module(tmp_path / "cfg")
    theirs = MotionAdapter.from_single_file(str(module_file), config=str(folder), local_files_only=True)
    ours = load_adapter(str(module_file))
    for k, v in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k


def test_bad_files_are_one_line(tmp_path, tiny):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(BadInput, match="cannot read motion module"):
        load_adapter(str(bad))
    with pytest.raises(BadInput, match="not found"):
        load_adapter(str(tmp_path / "missing.ckpt"))
    sdxl = build_tiny_motion_module(channels=(32, 64, 64))
    with pytest.raises(BadInput, match=r"made for a UNet with levels 32/64/64 but the model .* is a UNet "
                                       r"with levels 32/64"):
        check_family(sdxl, tiny.unet)


def test_one_window_equals_diffusers_animatediff_video_to_video(tiny, module_file):
    from diffusers import AnimateDiffVideoToVideoPipeline, EulerDiscreteScheduler

    n = 6
    engine = Img2ImgEngine(tiny, settings())
    adapter = load_adapter(str(module_file))
    canvases = [engine.fit(f) for f in frames(n)]
    layers = MotionLayers(tiny.unet, adapter)
    try:
        ours, clip, init = windowed(engine, layers, canvases, length=n)
    finally:
        layers.remove()
    start = clip.start(init)
    cond, uncond = engine.embeddings[:2]
    pipe = AnimateDiffVideoToVideoPipeline(vae=tiny.vae, text_encoder=tiny.text_encoder, tokenizer=tiny.tokenizer,
                                           unet=tiny.unet, motion_adapter=adapter,
                                           scheduler=EulerDiscreteScheduler.from_config(tiny.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        ref = pipe(latents=start.permute(1, 0, 2, 3)[None], prompt_embeds=cond,
                   negative_prompt_embeds=uncond, sigmas=[float(v) for v in engine.real_sigmas], strength=1.0,
                   guidance_scale=7.0, output_type="latent", height=SIDE, width=SIDE).frames
    ref = ref[0].permute(1, 0, 2, 3)
    assert ref.shape == ours.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    plain, _, _ = windowed(engine, None, canvases, length=n)
    assert (plain - ours).abs().max() > 1e-2              # the motion module acts


def test_with_a_controlnet_equals_diffusers_animatediff_controlnet(tiny, module_file, tmp_path):
    from diffusers import AnimateDiffVideoToVideoControlNetPipeline, EulerDiscreteScheduler
    from PIL import Image

    from vid2vid.diffusion.controlnet import ControlUnit, load_controlnet
    from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet

    n = 5
    net = load_controlnet(str(make_tiny_controlnet(tmp_path / "cn")), tiny.device, tiny.dtype)
    engine = Img2ImgEngine(tiny, settings(sampler="euler"), controlnets=[ControlUnit(net, 0.8, 0.0, 1.0, "cn")])
    adapter = load_adapter(str(module_file))
    canvases = [engine.fit(f) for f in frames(n)]
    rng = np.random.default_rng(4)
    hints = [rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) for _ in range(n)]
    layers = MotionLayers(tiny.unet, adapter)
    try:
        ours, clip, init = windowed(engine, layers, canvases, length=n,
                                    controls=lambda fr: [[hints[f]] for f in fr])
    finally:
        layers.remove()
    cond, uncond = engine.embeddings[:2]
    pipe = AnimateDiffVideoToVideoControlNetPipeline(
        vae=tiny.vae, text_encoder=tiny.text_encoder, tokenizer=tiny.tokenizer, unet=tiny.unet,
        motion_adapter=adapter, controlnet=net, scheduler=EulerDiscreteScheduler.from_config(tiny.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        ref = pipe(latents=clip.start(init).permute(1, 0, 2, 3)[None], prompt_embeds=cond,
                   negative_prompt_embeds=uncond, sigmas=[float(v) for v in engine.real_sigmas], strength=1.0,
                   guidance_scale=7.0, output_type="latent", height=SIDE, width=SIDE,
                   conditioning_frames=[Image.fromarray(h) for h in hints],
                   controlnet_conditioning_scale=0.8).frames
    torch.testing.assert_close(ours, ref[0].permute(1, 0, 2, 3), rtol=1e-4, atol=1e-4)
    free, _, _ = windowed(Img2ImgEngine(tiny, settings(sampler="euler")), None, canvases, length=n)
    assert (free - ours).abs().max() > 1e-2


def test_motion_links_frames_and_scale_zero_removes_it(tiny, module_file):
    """Changing source frame 1 changes painted frame 2 with the motion module, not without; motion scale 0
    equals the run with the motion layers removed."""
    n = 6
    engine = Img2ImgEngine(tiny, settings(sampler="dpm++-2m"))
    adapter = load_adapter(str(module_file))
    canvases = [engine.fit(f) for f in frames(n)]
    changed = list(canvases)
    changed[0] = np.clip(canvases[0][::-1] * 0.5 + 0.3, 0, 1).astype(np.float32)
    results = {}
    for scale in (1.0, 0.0, None):
        layers = None if scale is None else MotionLayers(tiny.unet, adapter, scale)
        try:
            results[scale] = [windowed(engine, layers, c, length=4, overlap=2)[0] for c in (canvases, changed)]
        finally:
            if layers is not None:
                layers.remove()
    with_mm, zero, without = results[1.0], results[0.0], results[None]
    assert (with_mm[0][1] - with_mm[1][1]).abs().max() > 1e-3      # frame 2 follows frame 1's change
    assert torch.equal(without[0][1], without[1][1])                # frame by frame: it does not
    assert torch.equal(zero[0], without[0]) and torch.equal(zero[1], without[1])


def test_motion_scale_blends_each_layer_output(tiny, module_file):
    """Each hooked layer gives h + scale * (M(h) - h), M the temporal transformer on the layer's output h."""
    adapter = load_adapter(str(module_file))
    layer, module = tiny.unet.mid_block.attentions[0], adapter.mid_block.motion_modules[0]
    h_in = torch.randn(2 * 3, 64, 2, 2)
    emb = torch.randn(6, 77, 32)
    with torch.no_grad():
        h = layer(h_in, encoder_hidden_states=emb, return_dict=False)[0]
        moved = module(h, num_frames=3)
        layers = MotionLayers(tiny.unet, adapter, 0.5)
        try:
            with layers.frames(3):
                got = layer(h_in, encoder_hidden_states=emb, return_dict=False)[0]
            outside = layer(h_in, encoder_hidden_states=emb, return_dict=False)[0]
        finally:
            layers.remove()
    torch.testing.assert_close(got, h + 0.5 * (moved - h), rtol=1e-6, atol=1e-6)
    assert torch.equal(outside, h) and (moved - h).abs().max() > 1e-2


def test_context_longer_than_the_clip_is_one_window(tiny, module_file):
    engine = Img2ImgEngine(tiny, settings(sampler="euler-a"))
    canvases = [engine.fit(f) for f in frames(5)]
    layers = MotionLayers(tiny.unet, load_adapter(str(module_file)))
    try:
        long, clip, _ = windowed(engine, layers, canvases, length=16, overlap=4)
        exact, _, _ = windowed(engine, layers, canvases, length=5, overlap=4)
    finally:
        layers.remove()
    assert clip.windows == [range(0, 5)] and torch.equal(long, exact)


def test_an_sd15_module_is_refused_on_sd2_and_sdxl_layouts():
    """Real layouts from configs only (no weights): an SD 1.5-size module on SD 2.x and SDXL UNet configs."""
    from types import SimpleNamespace

    from vid2vid.diffusion.motion_loading import model_family, module_family

    sd15 = SimpleNamespace(config={"block_out_channels": (320, 640, 1280, 1280), "motion_layers_per_block": 2})
    unet = lambda **kw: SimpleNamespace(config={"block_out_channels": (320, 640, 1280, 1280),  # noqa: E731
                                                "layers_per_block": 2, "cross_attention_dim": 768, **kw})
    assert module_family(sd15) == "SD 1.x" and model_family(unet()) == "SD 1.x"
    check_family(sd15, unet())
    with pytest.raises(BadInput, match="made for SD 1.x but the model m is SD 2.x"):
        check_family(sd15, unet(cross_attention_dim=1024), "m")
    with pytest.raises(BadInput, match="made for SD 1.x but the model m is SDXL"):
        check_family(sd15, unet(block_out_channels=(320, 640, 1280), addition_embed_type="text_time"), "m")
