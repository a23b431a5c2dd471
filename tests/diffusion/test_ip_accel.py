"""IP-Adapters with the UNet accelerators (`--accel tome:R | cache:N | cache-frames[:T]`) on the tiny model.

At their identity settings the accelerators leave an adapter run's bits alone; switched on, the adapter still
steers (scale 0 and scale 1 differ, scale 0 is the accelerated run without adapter); cached deep features are
never reused by a call whose adapters in force differ from those of the call that computed them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_ip_adapter import picture, unit

from conftest import make_workspace, moving_frames
from vid2vid.config import Img2ImgSettings, IPAdapterSettings, Settings
from vid2vid.core.imageops import write_image
from vid2vid.diffusion import deepcache, samplers
from vid2vid.diffusion.engine import Img2ImgEngine
from vid2vid.pipeline.runner import run_stage

W = H = 64
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(**kw) -> Img2ImgSettings:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=8, denoise=1.0, width=W, height=H,
                sampler="euler")
    return Img2ImgSettings(**{**base, **kw})


def canvases(n: int = 2) -> list[np.ndarray]:
    return [f.astype(np.float32) / 255 for f in moving_frames(n, W, H)]


def sample(model, units=None, **kw) -> torch.Tensor:
    engine = Img2ImgEngine(model, settings(**kw), ip_adapters=units)
    try:
        return engine.sample(engine.encode([engine.fit(c) for c in canvases()]))
    finally:
        engine.close()


def test_identity_settings_leave_the_adapter_run_alone(tiny, tiny_ip_adapter):
    u = unit(tiny_ip_adapter)
    before = sample(tiny, [u])                      # no accelerator hook on the UNet yet
    assert not hasattr(tiny.unet, deepcache.MARK)
    for on in (["tome:0.5"], ["cache:2"]):          # hooks installed, then idle
        sample(tiny, [u], accel=on)
    for identity in ([], ["tome:0"], ["cache:0"], ["tome:0", "cache:0"], ["none"]):
        assert torch.equal(sample(tiny, [u], accel=identity), before), identity


@pytest.mark.parametrize("accel", [["tome:0.5"], ["cache:2"], ["tome:0.5", "cache:1"]])
def test_with_an_accelerator_the_adapter_still_steers(tiny, tiny_ip_adapter, accel):
    free = sample(tiny, accel=accel)
    zero = sample(tiny, [unit(tiny_ip_adapter, scale=0.0)], accel=accel)
    one = sample(tiny, [unit(tiny_ip_adapter, scale=1.0)], accel=accel)
    assert torch.equal(zero, free)                  # scale 0: the accelerated run without adapter, to the bit
    assert (one - zero).abs().max() > 1e-2
    assert (one - sample(tiny, [unit(tiny_ip_adapter, scale=1.0)])).abs().max() > 0      # and the accelerator acts


@pytest.mark.parametrize("start,end", [(0.5, 1.0), (0.0, 0.5), (0.25, 0.75)])
def test_cached_deep_features_do_not_cross_the_adapters_window(tiny, tiny_ip_adapter, start, end):
    """cache:16 reuses the deep features of a full call for every later evaluation; where the adapters in force
    change, a full call must run. Reference: the same sampler cut at those steps into separate cached samplings
    (each starts with a full call), which is what `cache:16` must equal."""
    s = settings(accel=["cache:16"])
    engine = Img2ImgEngine(tiny, s, ip_adapters=[unit(tiny_ip_adapter, start=start, end=end)])
    try:
        init = engine.encode([engine.fit(c) for c in canvases()])
        deep: list[int] = []                        # the first ResNet of the deep feature's block runs: a full call
        handle = deepcache.deep_modules(tiny.unet)[1].resnets[0].register_forward_hook(lambda *a: deep.append(1))
        try:
            got = engine.sample(init)
        finally:
            handle.remove()
        on = engine.ip.windows[0]
        cuts = [0] + [i for i in range(1, len(on)) if on[i] != on[i - 1]] + [len(on)]
        assert len(cuts) > 2 and len(deep) == len(cuts) - 1         # a full call where the window opens or shuts
        noise = samplers.BatchNoise([s.seed] * init.shape[0], tuple(init.shape[1:]), engine.device, torch.float32)
        sigmas = torch.tensor(engine.real_sigmas, dtype=torch.float32)
        x = init + noise() * (s.init_noise * float(engine.real_sigmas[0]))
        for a, b in zip(cuts, cuts[1:]):
            with deepcache.caching(16) as wrap:
                x = engine.sampler(wrap(engine.denoiser), x, sigmas[a:b + 1], noise)
    finally:
        engine.close()
    assert torch.equal(got, x)


# ---------------------------------------------------------------- cache-frames in whole runs

def run_settings(model, adapter, reference, scale: float = 1.0, accel=()) -> Settings:
    st = Settings()
    st.img2img = Img2ImgSettings(model=str(model), prompt="a red fox", negative="blurry", steps=4, denoise=0.75,
                                 width=64, height=48, accel=list(accel))
    if adapter is not None:
        st.img2img.ip_adapter = [IPAdapterSettings(model=str(adapter), reference=str(reference), scale=scale)]
    return st


def test_cache_frames_with_an_adapter(tmp_path, tiny_model, tiny_ip_adapter):
    """cache-frames:0 (every frame holds its own features) = no accelerator; cache-frames:0.5 (frames read frame
    1's) keeps the adapter steering, and at scale 0 is the accelerated run without adapter."""
    write_image(tmp_path / "look.png", picture(1))
    ref, src = tmp_path / "look.png", moving_frames(4)

    def frames(name, *args, **kw) -> list[bytes]:
        ws = make_workspace(tmp_path / name, src)
        run_stage("img2img", ws, run_settings(tiny_model, *args, **kw))
        return [p.read_bytes() for p in ws.frames("img2img")]

    plain = frames("plain", tiny_ip_adapter, ref)
    assert frames("identity", tiny_ip_adapter, ref, accel=["cache-frames:0"]) == plain
    one = frames("one", tiny_ip_adapter, ref, accel=["cache-frames:0.5"])
    zero = frames("zero", tiny_ip_adapter, ref, 0.0, accel=["cache-frames:0.5"])
    assert frames("free", None, "", accel=["cache-frames:0.5"]) == zero
    assert one[1:] != plain[1:] and all(a != b for a, b in zip(one, zero))


def test_a_painted_reference_is_painted_as_single_paints_it_with_cache_frames(tmp_path, tiny_model, tiny_ip_adapter):
    """key:3 with cache-frames: frame 3 is painted first without the adapter exactly as `--single 3` paints it,
    reading the deep features of the frame that holds them (frame 2: frame 1 is another picture)."""
    from vid2vid.painting import references

    src = moving_frames(4)
    src[0] = 255 - src[0]
    ws, single = make_workspace(tmp_path / "ws", src), make_workspace(tmp_path / "single", src)
    run_stage("img2img", ws, run_settings(tiny_model, tiny_ip_adapter, "key:3", accel=["cache-frames:0.5"]))
    one = run_settings(tiny_model, None, "", accel=["cache-frames:0.5"])
    one.img2img.single = 3
    run_stage("img2img", single, one)
    painted = sorted((ws.root / references.FOLDER).glob("painted-00003-*.png"))
    assert len(painted) == 1
    assert painted[0].read_bytes() == (single.root / "img2img.debug" / "00003.png").read_bytes()
    one.img2img.accel = []
    run_stage("img2img", single, one)               # without the accelerator frame 3 is another picture
    assert painted[0].read_bytes() != (single.root / "img2img.debug" / "00003.png").read_bytes()
