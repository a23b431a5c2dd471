"""Token merging and cached deep features on the tiny model: exact counts and exact bits."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from vid2vid.config import Img2ImgSettings
from vid2vid.config import accel as spec
from vid2vid.core.errors import BadInput
from vid2vid.diffusion import crossframe as xf
from vid2vid.diffusion import deepcache, tome

W = H = 64                      # latent 8 x 8: 64 tokens at the full-resolution self-attention

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from test_crossframe import make_loud_model

    from vid2vid.diffusion.loading import load_model

    return load_model(str(make_loud_model(tmp_path_factory.mktemp("tiny") / "model")), device="cpu",
                      dtype="float32")


def settings(**kw) -> Img2ImgSettings:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=8, denoise=1.0, width=W, height=H)
    return Img2ImgSettings(**{**base, **kw})


def canvas(shift: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) / W
    img = np.stack([xx, yy, 0.5 + 0 * xx], axis=2)
    img[16:40, 8 + shift:32 + shift] = (0.9, 0.3, 0.2)
    return img.astype(np.float32)


def latents(model, s: Img2ImgSettings, images: list[np.ndarray]) -> torch.Tensor:
    from vid2vid.diffusion.engine import Img2ImgEngine

    engine = Img2ImgEngine(model, s)
    return engine.sample(engine.encode([engine.fit(im) for im in images]))


class Count:
    """Forward calls of modules, by a hook on each (a module runs its hooks only when it really runs)."""

    def __init__(self, modules):
        self.n = 0
        self.handles = [m.register_forward_hook(self.hit) for m in modules]

    def hit(self, *_):
        self.n += 1

    def close(self):
        for h in self.handles:
            h.remove()


def deep_leaves(unet):
    """One inner module of every block a shallow call skips (the first ResNet of each)."""
    skipped, last_deep = deepcache.deep_modules(unet)
    return [m.resnets[0] for m in skipped + [last_deep]]


# ---------------------------------------------------------------- the settings syntax

def test_accel_specs_parse_from_a_list_or_one_string_and_refuse_bad_ones():
    a = spec.parse(["tome:0.5", "cache:2"])
    assert a == spec.Accel(0.5, 2, None) == spec.parse("tome:0.5,cache:2") == spec.parse("tome:0.5 cache:2")
    assert spec.parse("cache-frames").frames == spec.FRAMES_DEFAULT
    assert spec.parse(["cache-frames:0.05"]).frames == 0.05
    assert not spec.parse([]).any and not spec.parse("tome:0 cache:0").any and not spec.parse("none").any
    for a in (spec.Accel(0.25, 3, 0.01), spec.Accel(0.5), spec.Accel(cache=1)):
        assert spec.parse(",".join(a.specs())) == a          # what describe() records reads back the same
    for bad, words in (("blur:2", "not known"), ("tome:0.9", "out of range"), ("cache:x", "not a number"),
                       ("cache:1.5", "not a number"), ("tome", "needs its value"), ("cache:1,cache:2", "twice")):
        with pytest.raises(BadInput, match=words):
            spec.parse(bad)
    with pytest.raises(BadInput, match="compile"):
        Img2ImgSettings(accel=["cache:1"], compile=True).validate()


# ---------------------------------------------------------------- token merging (pure parts)

def brute_force_merge(x: torch.Tensor, h: int, w: int, ratio: float) -> torch.Tensor:
    """The ToMe formula token by token (one row): each source's best destination by cosine, the r
    best-matched sources averaged into their destinations; unmerged sources first, then destinations."""
    n = h * w
    dst = [i for i in range(n) if (i // w) % 2 == 0 and (i % w) % 2 == 0 and i // w + 1 < h and i % w + 1 < w]
    src = [i for i in range(n) if i not in dst]
    r = min(math.floor(n * ratio), len(src))
    unit = [v / max(float(v.norm()), 1e-12) for v in x.double()]
    best = []
    for s in src:
        sims = [float(unit[s] @ unit[d]) for d in dst]
        j = max(range(len(dst)), key=lambda k: (sims[k], -k))        # the first of equal maxima
        best.append((sims[j], s, j))
    order = sorted(range(len(src)), key=lambda k: -best[k][0])       # stable: equal scores keep their order
    merged = [best[k] for k in order[:r]]
    groups = {j: [x[dst[j]].double()] for j in range(len(dst))}
    for _, s, j in merged:
        groups[j].append(x[s].double())
    unm = [x[best[k][1]].double() for k in order[r:]]
    return torch.stack(unm + [torch.stack(groups[j]).mean(0) for j in range(len(dst))])


@pytest.mark.parametrize("h,w,ratio", [(8, 8, 0.5), (6, 10, 0.3), (7, 5, 0.75), (8, 8, 0.0)])
def test_token_merging_matches_the_formula_and_removes_floor_n_times_ratio_tokens(h, w, ratio):
    g = torch.Generator().manual_seed(h * w)
    x = torch.randn(3, h * w, 16, generator=g)
    m = tome.match(x, h, w, ratio)
    n_src = h * w - len(tome.destinations(h, w)[0])
    assert m.removed == min(math.floor(h * w * ratio), n_src) == tome.tokens_removed(h * w, h, w, ratio)
    merged = tome.merge(x, m)
    assert merged.shape == (3, h * w - m.removed, 16)
    for row in range(3):
        torch.testing.assert_close(merged[row].double(), brute_force_merge(x[row], h, w, ratio), rtol=1e-5,
                                   atol=1e-6)
    back = tome.unmerge(merged, m, h * w)
    keep = torch.ones(h * w, dtype=torch.bool)
    for row in range(3):                         # tokens never merged come back unchanged, to the bit
        keep[:] = True
        keep[m.src[row]] = False
        keep[m.dst] = False
        assert torch.equal(back[row, keep], x[row, keep])
        assert torch.equal(back[row, m.src[row]], merged[row, -len(m.dst):][m.dst_of_src[row]])


def test_unmerge_of_merge_is_the_identity_when_merged_tokens_are_equal():
    x = torch.randn(1, 16, 4).repeat_interleave(4, dim=1)     # 4 equal tokens in a row
    x = x.view(1, 8, 8, 4)[:, :4].reshape(1, 32, 4)            # a 4 x 8 grid: each 2x2 cell not all equal
    m = tome.match(x, 4, 8, 0.25)
    assert torch.allclose(tome.unmerge(tome.merge(x, m), m, 32), x, atol=1e-6)


# ---------------------------------------------------------------- on the tiny UNet

class Spy:
    """A processor that records the token count it sees and calls the stock processor."""

    def __init__(self, inner, seen):
        self.inner, self.seen = inner, seen

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.seen.append(hidden_states.shape[1])
        return self.inner(attn, hidden_states, *args, **kwargs)


def test_tome_in_the_unet_hands_attention_exactly_n_minus_r_tokens_at_full_resolution(tiny):
    unet = tiny.unet
    saved = dict(unet.attn_processors)
    seen: list[int] = []
    try:
        names = tome.self_attention_layers(unet)
        unet.set_attn_processor({n: Spy(p, seen) if n in names else p for n, p in saved.items()})
        tome.install(unet)
        x = torch.randn(2, 4, 8, 8)
        with torch.no_grad(), tome.merging(0.5, (8, 8)) as state:
            unet(x, torch.full((2,), 500.0), encoder_hidden_states=torch.randn(2, 77, 32))
        full_res = [n for n in seen if n in (64, 32)]
        assert full_res and set(full_res) == {64 - 32}            # 8 x 8 = 64 tokens, r = floor(64 * 0.5)
        assert state.removed == 32 * 2 * len(full_res)            # 32 tokens per row, 2 rows per call
        seen.clear()
        with torch.no_grad():                                     # outside `merging`: untouched
            unet(x, torch.full((2,), 500.0), encoder_hidden_states=torch.randn(2, 77, 32))
        assert 64 in seen and 32 not in seen
    finally:
        unet.set_attn_processor(saved)


def test_ratio_0_and_n_0_give_the_same_bits_as_no_accelerator_and_others_do_not(tiny):
    plain = latents(tiny, settings(), [canvas()])
    assert torch.equal(latents(tiny, settings(accel=["tome:0", "cache:0"]), [canvas()]), plain)
    assert torch.equal(latents(tiny, settings(accel=["tome:0.5"]), [canvas()]), plain) is False
    assert torch.equal(latents(tiny, settings(accel=["cache:1"]), [canvas()]), plain) is False
    # the installed hooks stay idle for an engine without accelerators
    assert torch.equal(latents(tiny, settings(), [canvas()]), plain)


@pytest.mark.parametrize("sampler,interval", [("euler", 1), ("euler", 2), ("euler", 3), ("heun", 2),
                                              ("euler", 7)])
def test_cache_n_runs_the_deep_blocks_exactly_ceil_k_over_n_plus_1_times(tiny, sampler, interval):
    s = settings(sampler=sampler, accel=[f"cache:{interval}"])
    from vid2vid.diffusion import samplers
    from vid2vid.diffusion.engine import real_sigmas_for

    evaluations = samplers.model_calls(sampler, len(real_sigmas_for(s)))
    deep, shallow = Count(deep_leaves(tiny.unet)), Count([tiny.unet.conv_in])
    try:
        latents(tiny, s, [canvas()])
    finally:
        deep.close()
        shallow.close()
    blocks = len(deep_leaves(tiny.unet))
    expected = -(-evaluations // (interval + 1))
    assert expected == deepcache.full_evaluations(evaluations, interval)
    assert deep.n == expected * blocks and shallow.n == evaluations    # one guided call per evaluation


def test_a_shallow_call_with_the_feature_of_the_same_input_gives_the_full_call_to_the_bit(tiny):
    unet = tiny.unet
    deepcache.install(unet)
    x, t, e = torch.randn(2, 4, 8, 8), torch.full((2,), 400.0), torch.randn(2, 77, 32)
    counts = deep_leaves(unet)
    deep = Count(counts)
    try:
        with torch.no_grad(), deepcache.caching(1) as wrap:
            step = wrap(lambda: unet(x, t, encoder_hidden_states=e, return_dict=False)[0])
            full, shallow = step(), step()
    finally:
        deep.close()
    assert deep.n == len(counts)                                # the deep blocks ran once
    assert torch.equal(full, shallow)


def test_cache_frames_reads_another_frames_features_for_every_row_of_a_batch(tiny):
    s = settings(accel=["cache-frames"])
    rec = deepcache.Recording()
    with deepcache.frame_features(record=rec):
        holder = latents(tiny, s, [canvas()])
    deep = Count(deep_leaves(tiny.unet))
    try:
        with deepcache.frame_features(read=rec):
            readers = latents(tiny, s, [canvas(), canvas(2)])
    finally:
        deep.close()
    assert deep.n == 0 and len(rec.features) == 8             # 8 evaluations, one guided call each
    # the same source reading its own features: the shallow path recomputes exactly what the full one did
    torch.testing.assert_close(readers[0], holder[0], rtol=0, atol=1e-5)
    assert not torch.allclose(readers[1], holder[0])


def test_tome_composes_with_cross_frame_attention_and_survives_its_close(tiny):
    unet = tiny.unet
    saved = dict(unet.attn_processors)
    try:
        tome.install(unet)
        s = settings(accel=["tome:0.5"], cross_frame="anchor")
        with xf.CrossFrame(unet, "anchor", "all") as cf:
            procs = unet.attn_processors
            wrapped = [p for p in procs.values() if isinstance(p, tome.TomeProcessor)]
            assert wrapped and all(isinstance(p.inner, xf.CrossFrameProcessor) for p in wrapped)
            a = cf.run(1, (), True, latents, tiny, s, [canvas()])
            b = cf.run(None, (1,), False, latents, tiny, s, [canvas(2)])
            alone = latents(tiny, s, [canvas(2)])
            assert not torch.allclose(b, alone)                 # frame 2 read frame 1's merged tokens
            assert a.shape == b.shape
        assert all(not isinstance(p.inner, xf.CrossFrameProcessor) for p in unet.attn_processors.values()
                   if isinstance(p, tome.TomeProcessor))
    finally:
        unet.set_attn_processor(saved)


def test_describe_records_the_accelerators(tiny):
    from vid2vid.diffusion.engine import Img2ImgEngine

    d = Img2ImgEngine(tiny, dataclasses.replace(settings(), accel=["cache:2", "tome:0.25"])).describe()
    assert d["accel"] == ["tome:0.25", "cache:2"]
    assert "accel" not in Img2ImgEngine(tiny, settings()).describe()


# ---------------------------------------------------------------- in the img2img stage

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from test_crossframe import make_loud_model

    return make_loud_model(tmp_path_factory.mktemp("tiny-stage") / "model")


@pytest.mark.parametrize("accel,batch", [(["cache-frames:0.5", "cache:1", "tome:0.5"], 2), (["cache-frames:0.5"], 1)])
def test_stage_with_accelerators_resumes_and_single_bit_identically(workspace_factory, tiny_dir, accel, batch):
    from test_crossframe import _lose_frames_and_resume, frame_bytes, run_stage, stage_settings

    from conftest import moving_frames
    from vid2vid.diffusion.loading import load_model

    model = load_model(str(tiny_dir), device="cpu", dtype="float32")
    src = moving_frames(5, W, H)
    full, cut, plain = (workspace_factory(src, f"{n}-{batch}") for n in ("full", "cut", "plain"))
    st = stage_settings(tiny_dir, accel=accel, batch_size=batch)
    info, said = run_stage(full, st, model)
    assert info["accel"] == spec.parse(accel).specs() and "deep_feature_cache_peak_mb" in info
    assert full.stage_record("img2img")["params"]["img2img"]["accel"] == spec.parse(accel).specs()
    run_stage(plain, stage_settings(tiny_dir, batch_size=batch), model)
    assert "accel" not in plain.stage_record("img2img")["params"]["img2img"]     # old keys stay valid
    fa, fp = frame_bytes(full), frame_bytes(plain)
    assert fa["00001.png"] != fp["00001.png"] if "cache:1" in accel else fa["00001.png"] == fp["00001.png"]
    assert all(fa[k] != fp[k] for k in sorted(fa)[1:])           # the readers changed
    run_stage(cut, st, model)
    _, said = _lose_frames_and_resume(cut, st, model, (4, 5))
    assert frame_bytes(cut) == fa
    assert any("again for the cross-frame references" in m for m in said)     # frame 1 rebuilt its features
    run_stage(full, dataclasses.replace(st, img2img=dataclasses.replace(st.img2img, single=4)), model)
    assert (full.root / "img2img.debug" / "00004.png").read_bytes() == fa["00004.png"]


def test_cache_frames_holders_follow_the_still_frame_rule():
    from vid2vid.stages.img2img import plan_anchors

    s = settings(accel=["cache-frames:0.05"])
    still = [np.full((8, 8, 3), v, np.float32) for v in (0.0, 0.01, 0.04, 0.2, 0.22, 0.3)]
    import tempfile
    from pathlib import Path

    from vid2vid.core import imageops

    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, im in enumerate(still, 1):
            paths.append(Path(d) / f"{i:05d}.png")
            imageops.write_image(paths[-1], im)
        assert plan_anchors(paths, [1, 2, 3, 4, 5, 6], [], s) == (1, 4, 6)    # 0.3 - 0.2 >= 0.05: a new holder
        assert plan_anchors(paths, [1, 2, 3, 4, 5, 6], [], settings()) == ()
        assert plan_anchors(paths, [1, 3, 5], [3], s) == (1, 3, 5)             # key frames: shots stay anchors
    with pytest.raises(BadInput, match="both decide which earlier frame"):
        settings(accel=["cache-frames"], cross_frame="anchor").validate()


def test_accelerators_are_per_thread_on_a_shared_unet(tiny):
    import threading

    plain = latents(tiny, settings(), [canvas()])
    fast = latents(tiny, settings(accel=["tome:0.5", "cache:2"]), [canvas()])
    got: dict[str, torch.Tensor] = {}
    go = threading.Barrier(2)

    def paint(name, s):
        go.wait()
        got[name] = latents(tiny, s, [canvas()])

    threads = [threading.Thread(target=paint, args=("plain", settings())),
               threading.Thread(target=paint, args=("fast", settings(accel=["tome:0.5", "cache:2"])))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.equal(got["plain"], plain) and torch.equal(got["fast"], fast)
