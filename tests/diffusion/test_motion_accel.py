"""The UNet accelerators on the AnimateDiff painter's windows: tiny model and motion module, exact bits and counts."""
from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
import torch
from test_accel import Count  # forward calls of modules, counted by hooks
from test_ip_adapter import unit

from conftest import moving_frames
from vid2vid.config import Img2ImgSettings
from vid2vid.diffusion import deepcache, samplers, tome
from vid2vid.diffusion.engine import Img2ImgEngine
from vid2vid.diffusion.motion import MotionLayers
from vid2vid.diffusion.motion_windows import EngineWindows, sampler_step
from vid2vid.diffusion.tiny_motion import build_tiny_motion_module
from vid2vid.painting import windows as W

SIDE = 64                       # latent 8 x 8: 64 tokens at the full-resolution self-attention
N, LENGTH, OVERLAP = 7, 4, 2    # three windows: frames 0-3, 2-5, 3-6

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def adapter():
    return build_tiny_motion_module()


@pytest.fixture
def layers(tiny, adapter):
    on = MotionLayers(tiny.unet, adapter)
    yield on
    on.remove()


def settings(**kw) -> Img2ImgSettings:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=6, denoise=0.75, width=SIDE,
                height=SIDE, sampler="euler", cfg=7.0)
    return Img2ImgSettings(**{**base, **kw})


def canvases(n: int = N) -> list[np.ndarray]:
    return [f.astype(np.float32) / 255 for f in moving_frames(n, SIDE, SIDE)]


def clip_of(engine, n: int = N) -> W.ClipSampling:
    return W.ClipSampling(n, (4, SIDE // 8, SIDE // 8), torch.tensor(engine.real_sigmas, dtype=torch.float32),
                          sampler_step(engine), 3, LENGTH, OVERLAP, "pyramid", cycle=engine.accel.cache + 1)


def painted(engine, layers, n: int = N, workers: int = 1, controls=None) -> torch.Tensor:
    init = torch.cat([engine.encode([engine.fit(c)]) for c in canvases(n)])
    spread = W.LocalSpread(EngineWindows(engine, layers, controls), workers)
    try:
        return clip_of(engine, n).run(spread, lambda: init)
    finally:
        spread.close()


def engine_for(tiny, units=None, nets=None, **kw) -> Img2ImgEngine:
    return Img2ImgEngine(tiny, settings(**kw), ip_adapters=units, controlnets=nets)


# ---------------------------------------------------------------- identity and effect

def test_identity_settings_give_the_painters_bits_and_the_accelerators_change_them(tiny, layers):
    plain = painted(engine_for(tiny), layers)                    # before any accelerator hook
    assert not hasattr(tiny.unet, deepcache.MARK)
    moved = {tuple(a): painted(engine_for(tiny, accel=a), layers) for a in (["tome:0.5"], ["cache:2"],
                                                                            ["tome:0.5", "cache:1"])}
    for identity in ([], ["tome:0"], ["cache:0"], ["tome:0", "cache:0"]):   # hooks installed, idle
        assert torch.equal(painted(engine_for(tiny, accel=identity), layers), plain), identity
    for a, out in moved.items():
        assert (out - plain).abs().max() > 1e-4, a


# ---------------------------------------------------------------- token merging: the spatial layers only

def test_tome_merges_the_spatial_self_attention_and_leaves_the_motion_modules_alone(tiny, adapter, layers):
    engine = engine_for(tiny, accel=["tome:0.5"])
    spatial = tome.self_attention_layers(tiny.unet)
    procs = tiny.unet.attn_processors
    assert spatial and sum(isinstance(p, tome.TomeProcessor) for p in procs.values()) == len(spatial)
    motion_attn = [m for m in adapter.modules() if hasattr(m, "processor")]
    assert motion_attn and not any(isinstance(m.processor, tome.TomeProcessor) for m in motion_attn)

    seen: dict[str, list[tuple[int, int]]] = {"spatial": [], "motion": []}

    def spy(inner, where):
        def call(attn, hidden_states, *args, **kwargs):
            seen[where].append(tuple(hidden_states.shape[:2]))
            return inner(attn, hidden_states, *args, **kwargs)
        return call

    wrapped = {n: p for n, p in procs.items() if isinstance(p, tome.TomeProcessor)}
    inner = {n: p.inner for n, p in wrapped.items()}
    motion_before = [m.processor for m in motion_attn]
    for p in wrapped.values():
        p.inner = spy(p.inner, "spatial")
    for m in motion_attn:
        m.processor = spy(m.processor, "motion")
    try:
        x = engine.encode([engine.fit(c) for c in canvases(LENGTH)])
        EngineWindows(engine, layers).predict(x, torch.full((LENGTH,), 2.0), range(LENGTH))
    finally:
        for n, p in wrapped.items():
            p.inner = inner[n]
        for m, p in zip(motion_attn, motion_before):
            m.processor = p
    # CFG: uncond frames, then cond frames (the first layer, before any cross-attention, runs once: shared_prefix)
    rows = (LENGTH, 2 * LENGTH)
    r = tome.tokens_removed(64, 8, 8, 0.5)
    full_res = [s for s in seen["spatial"] if s[1] in (64, 64 - r)]
    assert r == 32 and len(full_res) == 3 and all(s[0] in rows and s[1] == 64 - r for s in full_res)
    # temporal attention: one sequence of LENGTH frames per pixel, never merged, and every motion layer ran
    assert len(seen["motion"]) == len(motion_attn) and all(s[1] == LENGTH for s in seen["motion"])
    assert sum(s[0] for s in seen["motion"]) == sum(2 * h * w for h, w in _grids(tiny, adapter, motion_attn))


def _grids(tiny, adapter, motion_attn):
    """The latent grid (h, w) each motion attention layer sees (8x8 latents: block i at 8 / 2**i)."""
    out = []
    for i, block in enumerate(list(adapter.down_blocks) + list(adapter.up_blocks) + [adapter.mid_block]):
        n = sum(1 for m in block.modules() if hasattr(m, "processor"))
        if block in list(adapter.down_blocks):
            side = 8 >> i
        elif block is adapter.mid_block:
            side = 8 >> (len(adapter.down_blocks) - 1)
        else:
            side = 8 >> (len(adapter.up_blocks) - 1 - list(adapter.up_blocks).index(block))
        out += [(side, side)] * n
    assert len(out) == len(motion_attn)
    return out


def test_on_a_unet_motion_model_tome_picks_the_same_spatial_layers(tiny, adapter):
    """diffusers' UNetMotionModel holds the motion modules inside its blocks, with self-attention of their own:
    the layer pick leaves them out (by counting), so it wraps exactly the spatial layers of the image UNet."""
    from diffusers import UNetMotionModel

    motion_unet = UNetMotionModel.from_unet2d(tiny.unet, adapter)
    naive = [n for n in motion_unet.attn_processors if n.endswith("attn1.processor")
             and not motion_unet.get_submodule(n.rsplit(".", 1)[0]).is_cross_attention]
    temporal = [n for n in naive if "motion_modules" in n]
    picked = tome.self_attention_layers(motion_unet)
    assert temporal and len(picked) == len(naive) - len(temporal) == len(tome.self_attention_layers(tiny.unet))
    assert not any("motion_modules" in n for n in picked)
    # the deep/shallow cut of deepcache falls on the same blocks: the first down and last up block are shallow
    skipped, feature = deepcache.deep_modules(motion_unet)
    assert feature is motion_unet.up_blocks[-2] and motion_unet.down_blocks[0] not in skipped
    assert skipped == list(motion_unet.down_blocks[1:]) + [motion_unet.mid_block] + list(motion_unet.up_blocks[:-2])
    assert all(hasattr(b, "motion_modules") for b in skipped + [feature])    # the motion modules sit in the blocks


# ---------------------------------------------------------------- cache:N per window

@pytest.mark.parametrize("sampler,interval", [("euler", 1), ("euler", 2), ("heun", 2), ("dpm++-2m", 5)])
def test_cache_n_runs_the_deep_blocks_as_often_as_the_rule_says_per_window(tiny, adapter, layers, sampler,
                                                                          interval):
    engine = engine_for(tiny, sampler=sampler, accel=[f"cache:{interval}"])
    skipped, feature = deepcache.deep_modules(tiny.unet)
    deep = Count([m.resnets[0] for m in skipped + [feature]])
    calls = Count([tiny.unet.conv_in])
    # the first motion module of every block: those of the deep blocks run with them, the others every call
    motion_deep = Count([b.motion_modules[0] for b in list(adapter.down_blocks[1:]) + [adapter.mid_block]
                         + list(adapter.up_blocks[:-1])])
    motion_shallow = Count([adapter.down_blocks[0].motion_modules[0], adapter.up_blocks[-1].motion_modules[0]])
    try:
        painted(engine, layers)
    finally:
        for c in (deep, calls, motion_deep, motion_shallow):
            c.close()
    windows = len(W.plan_windows(N, LENGTH, OVERLAP))
    evaluations = samplers.model_calls(sampler, len(engine.real_sigmas))
    full = windows * deepcache.full_evaluations(evaluations, interval)
    assert windows == 3 and calls.n == windows * evaluations        # CFG halves in one UNet call
    assert deep.n == (len(skipped) + 1) * full < (len(skipped) + 1) * calls.n
    assert motion_deep.n == (len(adapter.down_blocks) - 1 + 1 + len(adapter.up_blocks) - 1) * full
    assert motion_shallow.n == 2 * calls.n                          # the shallow path's motion layers: every call


def test_a_shallow_window_call_with_its_own_feature_of_the_same_input_is_the_full_call(tiny, layers):
    """The cut is right with motion layers on: the shallow path reads the held feature where the full path reads
    the next-to-last up block, and the other window's feature is not read."""
    engine = engine_for(tiny, accel=["cache:1"])
    model = EngineWindows(engine, layers)
    x = engine.encode([engine.fit(c) for c in canvases(6)])
    sigma = torch.full((LENGTH,), 2.5)
    a, b = range(0, 4), range(2, 6)
    full_a = model.predict(x[0:4], sigma, a, 0)
    full_b = model.predict(x[2:6], sigma, b, 0)
    before = deepcache.counts(tiny.unet)
    assert torch.equal(model.predict(x[0:4], sigma, a, 1), full_a)     # shallow, own feature: the same bits
    assert torch.equal(model.predict(x[2:6], sigma, b, 1), full_b)
    after = deepcache.counts(tiny.unet)
    assert after["shallow"] - before["shallow"] == 2 and after["full"] == before["full"]
    other = model.predict(x[2:6] * 0.5, sigma, b, 1)                  # shallow on other latents: it differs
    assert (other - full_b).abs().max() > 1e-4


class WindowThread:
    """The reference: one window sampled as the image engine caches (`deepcache.caching` with its own evaluation
    count), in a thread of its own that lives for the whole clip, so each window has its own held features."""

    def __init__(self, engine, layers, frames: range, interval: int):
        self.jobs: queue.Queue = queue.Queue()
        self.answers: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self.serve, args=(engine, layers, frames, interval), daemon=True)
        self.thread.start()

    def serve(self, engine, layers, frames, interval):
        torch.set_num_threads(1)
        with deepcache.caching(interval) as wrap, layers.frames(len(frames)):
            denoise = wrap(lambda x, s: engine.denoiser(x, s, None))
            while (job := self.jobs.get()) is not None:
                self.answers.put(denoise(*job))

    def __call__(self, x, sigma):
        self.jobs.put((x, sigma))
        return self.answers.get()

    def close(self):
        self.jobs.put(None)
        self.thread.join()


@pytest.mark.parametrize("sampler,interval", [("euler", 2), ("dpm++-2m", 1), ("heun", 1)])
def test_windowed_cache_equals_each_window_caching_on_its_own(tiny, layers, sampler, interval):
    engine = engine_for(tiny, sampler=sampler, accel=[f"cache:{interval}"])
    got = painted(engine, layers)
    run = clip_of(engine)
    init = torch.cat([engine.encode([engine.fit(c)]) for c in canvases()])
    refs = [WindowThread(engine, layers, w, interval) for w in run.windows]
    try:
        def blend(x, sigma):
            total = torch.zeros_like(x)
            for w, wt, ref in zip(run.windows, run.weights, refs):
                total[w.start:w.stop] += ref(x[w.start:w.stop], sigma[:len(w)]) * wt.view(-1, 1, 1, 1)
            return total

        want = samplers.SAMPLERS[sampler](blend, run.start(init), run.sigmas, W.step_noise(3, N, run.shape))
    finally:
        for ref in refs:
            ref.close()
    assert torch.equal(got, want)


def test_threads_give_the_inline_bits_with_cache_and_tome(tiny, layers):
    engine = engine_for(tiny, accel=["tome:0.5", "cache:2"])
    assert torch.equal(painted(engine, layers, workers=3), painted(engine, layers, workers=1))


def test_resume_points_fall_where_a_cycle_starts_and_give_the_same_bits(tiny, layers, tmp_path):
    engine = engine_for(tiny, sampler="dpm++-2m", accel=["cache:2"])
    whole = painted(engine, layers)
    init = torch.cat([engine.encode([engine.fit(c)]) for c in canvases()])
    run = clip_of(engine)
    store = W.StepStore(tmp_path, "k", run.steps_total)
    saved: list[int] = []
    model = EngineWindows(engine, layers)

    class Kill(Exception):
        pass

    def stop_after(i):
        if store.path.is_file():
            saved.append(int(torch.load(store.path, weights_only=True)["steps_done"]))
        if i == run.steps_total - 1:
            raise Kill

    with pytest.raises(Kill):
        run.run(W.LocalSpread(model), lambda: init, store, stop_after)
    assert run.steps_total == 5 and sorted(set(saved)) == [3]    # a cycle of 3 evaluations starts after step 3
    state = store.load((N, *run.shape))
    assert state["steps_done"] == 3 and state["evaluations"] == 3
    resumed = clip_of(engine).run(W.LocalSpread(EngineWindows(engine, layers)),
                                  lambda: pytest.fail("a resumed run does not encode"), store)
    assert torch.equal(resumed, whole)


# ---------------------------------------------------------------- IP-Adapters: their window edges force full calls

def test_an_adapters_window_edge_forces_a_full_call_in_every_window(tiny, layers, tiny_ip_adapter):
    ipa = tiny_ip_adapter
    engine = engine_for(tiny, [unit(ipa, start=0.5, end=1.0)], accel=["cache:16"])
    try:
        feature = deepcache.deep_modules(tiny.unet)[1].resnets[0]
        deep = Count([feature])
        try:
            got = painted(engine, layers)
        finally:
            deep.close()
        on = engine.ip.windows[0]
        segments = 1 + sum(on[i] != on[i - 1] for i in range(1, len(on)))
        windows = len(W.plan_windows(N, LENGTH, OVERLAP))
        assert segments == 2 and deep.n == windows * segments           # the edge: one more full call a window
        plain = painted(engine_for(tiny, [unit(ipa, start=0.5, end=1.0)]), layers)
        assert (got - plain).abs().max() > 1e-4
    finally:
        engine.close()


def test_a_controlnets_window_edge_forces_a_full_call_in_every_window(tiny, layers, tmp_path):
    from vid2vid.diffusion.controlnet import ControlUnit, load_controlnet
    from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet

    net = load_controlnet(str(make_tiny_controlnet(tmp_path / "cn")), tiny.device, tiny.dtype)
    rng = np.random.default_rng(4)
    hints = [rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) for _ in range(N)]
    controls = lambda frames: [[hints[f]] for f in frames]       # noqa: E731
    nets = [ControlUnit(net, 0.8, 0.0, 0.5, "cn")]
    engine = engine_for(tiny, nets=nets, accel=["cache:16"])
    deep = Count([deepcache.deep_modules(tiny.unet)[1].resnets[0]])
    try:
        got = painted(engine, layers, controls=controls)
    finally:
        deep.close()
    on = engine.control.windows[0]
    segments = 1 + sum(on[i] != on[i - 1] for i in range(1, len(on)))
    assert segments == 2 and deep.n == len(W.plan_windows(N, LENGTH, OVERLAP)) * segments
    plain = painted(engine_for(tiny, nets=nets), layers, controls=controls)
    assert (got - plain).abs().max() > 1e-4
