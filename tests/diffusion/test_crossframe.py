"""Cross-frame attention and flow-guided init (issue 15) on tiny models, exact where possible."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from vid2vid.config import Img2ImgSettings, Settings
from vid2vid.core.errors import BadInput
from vid2vid.diffusion import crossframe as xf
from vid2vid.painting import frameplan

W = H = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tiny tensors: one thread is fastest


def make_loud_model(dest):
    """The tiny model with louder self-attention, as a diffusers folder: its random attention barely
    reaches the 8-bit pixels (a mean change of 3e-5 from cross-frame attention), so its self-attention
    output projections are scaled up 30x and its queries 4x, which makes what the references do
    visible in the frames (Ray's actors load it from the folder too)."""
    from safetensors.torch import load_file, save_file

    from vid2vid.diffusion.tiny import make_tiny_model

    folder = make_tiny_model(dest)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(weights))
    for k in sd:
        if k.endswith("attn1.to_out.0.weight"):
            sd[k] = sd[k] * 30.0
        elif k.endswith("attn1.to_q.weight"):
            sd[k] = sd[k] * 4.0
    save_file(sd, str(weights), metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_loud_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    """The loud tiny model (make_loud_model), loaded once for the module."""
    from vid2vid.diffusion.loading import load_model

    return load_model(str(tiny_dir), device="cpu", dtype="float32")


def stage_settings(model_dir, **kw) -> Settings:
    st = Settings()
    base = dict(model=str(model_dir), prompt="a red fox", negative="blurry", steps=4, width=W, height=H,
                batch_size=2)
    st.img2img = Img2ImgSettings(**{**base, **kw})
    st.correct.method = "flow"          # img2img/ then holds the raw generated frames
    return st


def run_stage(ws, st, model):
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    said = []
    info = stage.run(ws, st, Job(log=said.append), model=model)
    return info, said


def frame_bytes(ws, folder="img2img"):
    return {p.name: p.read_bytes() for p in sorted((ws.root / folder).glob("*.png"))}


def unet_inputs(unet, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=g)
    t = torch.full((batch,), 500.0)
    e = torch.randn(batch, 77, unet.config.cross_attention_dim, generator=g)
    return x, t, e


# ---------------------------------------------------------------- which frames read which

def test_references_never_read_the_frame_itself_or_a_later_frame():
    for mode in xf.MODES:
        for t in range(1, 12):
            refs = xf.references(mode, t, bank=3)
            assert all(1 <= r < t for r in refs) and list(refs) == sorted(set(refs))
    assert xf.references("anchor", 1) == () and xf.references("anchor", 7) == (1,)
    assert xf.references("anchor-prev", 2) == (1,) and xf.references("anchor-prev", 7) == (1, 6)
    assert xf.references("bank", 7, bank=3) == (4, 5, 6) and xf.references("bank", 2, bank=3) == (1,)
    assert xf.references("anchor", 9, keyframes=(1, 5, 10)) == (5,)
    assert xf.needed_before("anchor", 7) == {1}
    assert xf.needed_before("anchor-prev", 5) == {1, 2, 3, 4}
    assert xf.needed_before("bank", 5, bank=2) == {1, 2, 3, 4}
    assert xf.needed_before("none", 5) == set()


def test_plan_keeps_blocks_for_independent_modes_and_one_frame_at_a_time_for_sequential_ones():
    s = Img2ImgSettings(batch_size=3)
    assert [u.frames for u in frameplan.plan(s, list(range(1, 8)), [5, 6, 7])] == [(4, 5, 6), (7,)]
    # with key frames the plan counts positions among the painted frames: the first key is the anchor
    keyed = Img2ImgSettings(batch_size=2, cross_frame="anchor-prev")
    assert [(u.frames, u.refs) for u in frameplan.plan(keyed, [1, 4, 9], [9])] == [((1,), ()), ((4,), (1,)),
                                                                                     ((9,), (1, 4))]
    s.cross_frame = "anchor"
    units = frameplan.plan(s, list(range(1, 8)), list(range(1, 8)))
    assert [u.frames for u in units] == [(1,), (2, 3), (4, 5, 6), (7,)]
    assert units[0].keep and not any(u.keep for u in units[1:]) and units[-1].release == (1,)
    # a resume or --single computes the anchor again and keeps the block layout of the full run
    assert [u.frames for u in frameplan.plan(s, list(range(1, 8)), [3])] == [(1,), (2, 3)]
    assert [(u.frames, u.keep) for u in frameplan.plan(s, list(range(1, 8)), [1])] == [((1,), False)]
    s.cross_frame = "anchor-prev"
    assert frameplan.sequential(s)
    units = frameplan.plan(s, list(range(1, 8)), [5, 6])
    assert [u.frames for u in units] == [(1,), (2,), (3,), (4,), (5,), (6,)]
    assert [u.keep for u in units] == [True] * 5 + [False]
    assert [u.release for u in units] == [(), (), (2,), (3,), (4,), (1, 5)]
    s.cross_frame, s.flow_init = "none", 0.5
    assert frameplan.sequential(s)
    assert [u.frames for u in frameplan.plan(s, list(range(1, 8)), [5, 6])] == [(5,), (6,)]
    assert "flow init" in frameplan.why_sequential(s)
    s.cross_frame, s.flow_init = "anchor", 0.0
    assert not frameplan.sequential(s) and frameplan.why_sequential(s) == ""


def test_settings_are_checked():
    for kw, word in (({"cross_frame": "prev"}, "cross-frame"), ({"cross_frame_blocks": "mid"}, "blocks"),
                     ({"cross_frame_bank": 0}, "bank"), ({"flow_init": 1.5}, "flow-init")):
        with pytest.raises(BadInput, match=word):
            Img2ImgSettings(**kw).validate()


# ---------------------------------------------------------------- the processor

def test_installed_processor_is_the_stock_one_until_there_is_something_to_join(tiny):
    unet = tiny.unet
    x, t, e = unet_inputs(unet)
    before = dict(unet.attn_processors)
    with torch.no_grad():
        stock = unet(x, t, encoder_hidden_states=e).sample
        with xf.CrossFrame(unet, "anchor", "all") as cf:
            assert len(cf.layers) == 4 and all(".attn1." in n for n in cf.layers)
            idle = unet(x, t, encoder_hidden_states=e).sample
            rec = xf.Recording()
            with xf.attending([], rec):           # the frame is its only reference: the anchor's case
                alone = unet(x, t, encoder_hidden_states=e).sample
    assert torch.equal(idle, stock) and torch.equal(alone, stock)
    assert len(rec.inputs) == 4 and rec.nbytes() > 0
    after = unet.attn_processors
    assert all(after[k] is before[k] for k in before)          # removed cleanly


def test_joining_a_copy_of_the_current_kv_changes_nothing():
    """softmax over [K; K] equals softmax over K: checked in float64 on one attention layer."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).double().eval()
    h = torch.randn(2, 10, 16, dtype=torch.float64)
    proc = xf.CrossFrameProcessor("layer", attn.processor)
    with torch.no_grad():
        stock = attn(h)
        rec = xf.Recording({("layer", 0): h.clone()})
        with xf.attending([rec]):
            joined = proc(attn, h)
        twice = xf.Recording({("layer", 0): h.clone()})
        with xf.attending([rec, twice]):
            joined3 = proc(attn, h)
        other = xf.Recording({("layer", 0): torch.randn(2, 10, 16, dtype=torch.float64)})
        with xf.attending([other]):
            changed = proc(attn, h)
    torch.testing.assert_close(joined, stock, rtol=0, atol=1e-13)
    torch.testing.assert_close(joined3, stock, rtol=0, atol=1e-13)
    assert (changed - stock).abs().max() > 1e-3


def test_reference_rows_follow_the_guidance_halves():
    """Row r of a batch of G*B rows reads reference row r // B: each CFG half reads its own half."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(1)
    attn = Attention(query_dim=8, heads=1, dim_head=8).double().eval()
    proc = xf.CrossFrameProcessor("layer", attn.processor)
    ref = torch.randn(2, 5, 8, dtype=torch.float64)          # [uncond, cond] of the reference
    cur = torch.randn(6, 5, 8, dtype=torch.float64)          # [u1 u2 u3, c1 c2 c3]
    with torch.no_grad(), xf.attending([xf.Recording({("layer", 0): ref})]):
        batch = proc(attn, cur)
    for r in range(6):
        one = xf.Recording({("layer", 0): ref[r // 3:r // 3 + 1]})
        with torch.no_grad(), xf.attending([one]):
            alone = proc(attn, cur[r:r + 1])
        torch.testing.assert_close(batch[r:r + 1], alone, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="rows"), torch.no_grad(), \
            xf.attending([xf.Recording({("layer", 0): torch.randn(4, 5, 8, dtype=torch.float64)})]):
        proc(attn, cur)


def test_state_is_per_thread(tiny):
    """Two threads sampling through one UNet, one with references, one without, at the same time."""
    unet = tiny.unet
    x, t, e = unet_inputs(unet)
    x2, _, _ = unet_inputs(unet, seed=1)
    results = {}
    with torch.no_grad(), xf.CrossFrame(unet, "anchor", "up"):
        rec = xf.Recording()
        with xf.attending([], rec):
            unet(x2, t, encoder_hidden_states=e)
        with xf.attending([rec]):
            want_ref = unet(x, t, encoder_hidden_states=e).sample
        want_plain = unet(x, t, encoder_hidden_states=e).sample
        barrier = threading.Barrier(2)

        def work(name, refs):
            barrier.wait()
            for _ in range(3):
                if refs is None:
                    results.setdefault(name, []).append(unet(x, t, encoder_hidden_states=e).sample)
                else:
                    with xf.attending(refs):
                        results.setdefault(name, []).append(unet(x, t, encoder_hidden_states=e).sample)

        threads = [threading.Thread(target=work, args=("ref", [rec])),
                   threading.Thread(target=work, args=("plain", None))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not torch.equal(want_ref, want_plain)
    assert all(torch.equal(r, want_ref) for r in results["ref"])
    assert all(torch.equal(r, want_plain) for r in results["plain"])


def test_heun_keeps_every_unet_call_and_sdxl_works(tmp_path_factory):
    from vid2vid.diffusion import samplers
    from vid2vid.diffusion.engine import Img2ImgEngine
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model

    model = load_model(str(make_tiny_model(tmp_path_factory.mktemp("xl") / "xl", config="tiny-sdxl")),
                       device="cpu", dtype="float32")
    s = Img2ImgSettings(model="xl", prompt="a red fox", negative="blurry", steps=5, width=W, height=H,
                        sampler="heun")
    eng = Img2ImgEngine(model, s)
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(0, 1, (H, W, 3)).astype(np.float32) for _ in range(2))
    plain_b = eng.generate([b])[0]
    with xf.CrossFrame(model.unet, "anchor", "all") as cf:
        plain_a = eng.generate([a])[0]
        out_a = cf.run(1, (), True, eng.generate, [a])[0]
        out_b = cf.run(None, (1,), False, eng.generate, [b])[0]
        calls = samplers.model_calls("heun", len(eng.real_sigmas))
        assert calls > len(eng.real_sigmas) - 1                          # Heun: two calls a step
        assert len(cf.recorded[1].inputs) == calls * len(cf.layers)      # every call of every layer kept
    assert np.array_equal(out_a, plain_a)                               # the anchor is unchanged
    assert np.abs(out_b - plain_b).mean() > 1e-4                        # the other frame reads it (noise: 1e-7)
    assert np.array_equal(eng.generate([b])[0], plain_b)                # removed cleanly


# ---------------------------------------------------------------- the stage

@pytest.mark.parametrize("mode", ["anchor", "anchor-prev", "bank"])
def test_stage_modes_anchor_unchanged_later_frames_change_removed_cleanly(workspace_factory, tiny_dir, tiny, mode):
    from conftest import moving_frames

    src = moving_frames(4, W, H)
    plain1 = workspace_factory(src, f"plain1-{mode}")
    run_stage(plain1, stage_settings(tiny_dir, batch_size=1), tiny)
    ws = workspace_factory(src, f"{mode}")
    info, said = run_stage(ws, stage_settings(tiny_dir, cross_frame=mode, cross_frame_bank=2), tiny)
    assert info["cross_frame_peak_mb"] > 0
    if mode != "anchor":
        assert any("one at a time" in m for m in said)
    a, b = frame_bytes(plain1), frame_bytes(ws)
    assert a["00001.png"] == b["00001.png"]                         # the anchor's own output
    from vid2vid.core.imageops import read_image
    for name in ("00002.png", "00003.png", "00004.png"):
        diff = np.abs(read_image(plain1.root / "img2img" / name) - read_image(ws.root / "img2img" / name))
        assert diff.mean() > 5e-4, name                             # the references change the others
    # a later plain run on the same model object is the run that never used cross-frame attention
    again = workspace_factory(src, f"again-{mode}")
    run_stage(again, stage_settings(tiny_dir, batch_size=1), tiny)
    assert frame_bytes(again) == a


def test_no_frame_reads_a_later_frame(workspace_factory, tiny_dir, tiny):
    from conftest import moving_frames

    src = moving_frames(4, W, H)
    other = [f.copy() for f in src]
    other[3] = 1.0 - other[3]                       # a very different last frame
    for mode in ("anchor", "anchor-prev"):
        a, b = workspace_factory(src, f"later-a-{mode}"), workspace_factory(other, f"later-b-{mode}")
        run_stage(a, stage_settings(tiny_dir, cross_frame=mode, batch_size=1), tiny)
        run_stage(b, stage_settings(tiny_dir, cross_frame=mode, batch_size=1), tiny)
        fa, fb = frame_bytes(a), frame_bytes(b)
        assert [fa[k] == fb[k] for k in sorted(fa)] == [True, True, True, False], mode


def _lose_frames_and_resume(ws, st, model, lost):
    for i in lost:
        (ws.root / "img2img" / f"{i:05d}.png").unlink()
    ws.manifest["stages"]["img2img"]["complete"] = False
    ws.save_manifest()
    return run_stage(ws, st, model)


@pytest.mark.parametrize("kw", [dict(cross_frame="anchor", batch_size=2),
                                dict(cross_frame="anchor-prev"),
                                dict(cross_frame="bank", cross_frame_bank=2, cross_frame_blocks="all"),
                                dict(flow_init=0.7)])
def test_resume_and_single_equal_the_uninterrupted_run(workspace_factory, tiny_dir, tiny, kw):
    from conftest import moving_frames

    src = moving_frames(5, W, H)
    name = "-".join(f"{v}" for v in kw.values())
    full, cut = workspace_factory(src, f"full-{name}"), workspace_factory(src, f"cut-{name}")
    st = stage_settings(tiny_dir, **kw)
    st.correct.method = "stats"                     # corrected against o_(t-1): the stage's full chain
    run_stage(full, st, tiny)
    run_stage(cut, st, tiny)
    _, said = _lose_frames_and_resume(cut, st, tiny, (4, 5))
    assert frame_bytes(full) == frame_bytes(cut)
    if kw.get("cross_frame", "none") != "none":
        assert any("again for the cross-frame references" in m for m in said)
    # --single N is frame N of the run (raw generated frames: the flow method leaves them as made)
    raw = workspace_factory(src, f"raw-{name}")
    st_raw = stage_settings(tiny_dir, **kw)
    run_stage(raw, st_raw, tiny)
    run_stage(raw, dataclasses.replace(st_raw, img2img=dataclasses.replace(st_raw.img2img, single=4)), tiny)
    assert (raw.root / "img2img.debug" / "00004.png").read_bytes() == (raw.root / "img2img" / "00004.png").read_bytes()


def test_single_equals_the_batch_run_frame_without_cross_frame(workspace_factory, tiny_dir, tiny):
    from conftest import moving_frames

    ws = workspace_factory(moving_frames(5, W, H), "single-none")
    st = stage_settings(tiny_dir, batch_size=3)
    run_stage(ws, st, tiny)
    st.img2img.single = 2
    info, said = run_stage(ws, st, tiny)
    assert (ws.root / "img2img.debug" / "00002.png").read_bytes() == (ws.root / "img2img" / "00002.png").read_bytes()
    assert any("as a full run samples it" in m for m in said)


def test_single_with_flow_init_needs_the_previous_output(workspace_factory, tiny_dir, tiny):
    from conftest import moving_frames

    ws = workspace_factory(moving_frames(3, W, H), "single-flow")
    with pytest.raises(BadInput, match="previous output"):
        run_stage(ws, stage_settings(tiny_dir, flow_init=0.5, single=2), tiny)


# ---------------------------------------------------------------- flow-guided init

def _texture(h, w, seed):
    import cv2

    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 2.0)


def test_flow_init_strength_zero_is_the_plain_init():
    from vid2vid.temporal.flowinit import mix, source_motion

    a, b, out = _texture(48, 64, 0), _texture(48, 64, 1), _texture(48, 64, 2)
    assert mix(b, out, source_motion(a, b), 0.0) is b
    with pytest.raises(BadInput, match="strength"):
        mix(b, out, source_motion(a, b), 1.5)


def test_flow_init_on_a_translating_clip_reproduces_the_shifted_previous_output():
    from vid2vid.temporal.flowinit import mix, source_motion

    dx, dy = 3, 2
    big = _texture(120, 140, 0)
    prev_src, cur_src = big[20:100, 20:120], big[20 - dy:100 - dy, 20 - dx:120 - dx]   # content moves by (dx, dy)
    big_out = _texture(120, 140, 5)                     # the "painting" of the previous frame
    prev_out = big_out[20:100, 20:120]
    want = big_out[20 - dy:100 - dy, 20 - dx:120 - dx]  # the previous output moved like the content
    motion = source_motion(prev_src, cur_src)
    trusted = motion.trust > 0.9
    assert trusted.mean() > 0.7
    assert not trusted[:, :dx].any()                    # what came in at the left border is not trusted
    init = mix(cur_src, prev_out, motion, 1.0)
    err = np.abs(init - want)[trusted]
    assert err.mean() < 0.002 and np.abs(cur_src - want)[trusted].mean() > 20 * err.mean()
    untrusted = motion.trust == 0
    assert np.array_equal(init[untrusted], cur_src[untrusted])   # the source frame elsewhere
    half = mix(cur_src, prev_out, motion, 0.5)
    np.testing.assert_allclose(half[trusted], (0.5 * cur_src + 0.5 * init)[trusted], atol=0.02)


def test_anchor_mode_keeps_model_workers(workspace_factory, tiny_dir, tiny):
    """Anchor-only attention keeps frames independent: two workers write what one writes."""
    from conftest import moving_frames

    src = moving_frames(6, W, H)
    one, two = workspace_factory(src, "anchor-one"), workspace_factory(src, "anchor-two")
    info_one, _ = run_stage(one, stage_settings(tiny_dir, cross_frame="anchor", batch_size=1), tiny)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        info_two, _ = run_stage(two, stage_settings(tiny_dir, cross_frame="anchor", batch_size=1, workers=2), tiny)
        seq, said = run_stage(workspace_factory(src, "prev-two"),
                              stage_settings(tiny_dir, cross_frame="anchor-prev", workers=2), tiny)
    finally:
        torch.set_num_threads(threads)
    assert (info_one["model_workers"], info_two["model_workers"], info_two["threads_per_worker"]) == (1, 2, 1)
    assert frame_bytes(one) == frame_bytes(two)
    assert seq["model_workers"] == 1 and any("batch 1, one model worker" in m for m in said)


# ---------------------------------------------------------------- key frames: one anchor a shot, the fill reads its key

def two_shots(n_a=4, n_b=4):
    """Frames of two shots: the moving square, then a different (blurred random) texture panning."""
    from conftest import moving_frames

    big = _texture(H, W + 2 * n_b, 3)
    return moving_frames(n_a, W, H) + [np.ascontiguousarray(big[:, 2 * t:2 * t + W]) for t in range(n_b)]


def keyed(model_dir, **kw):
    st = stage_settings(model_dir, **kw)
    st.propagate.keyframes = "every:2"
    return st


def test_plan_with_shots_splits_blocks_and_reads_nothing_across_a_cut():
    s = Img2ImgSettings(batch_size=4, cross_frame="anchor")
    units = frameplan.plan(s, list(range(1, 9)), list(range(1, 9)), anchors=(1, 3))
    assert [(u.frames, u.refs) for u in units] == [((1,), ()), ((3,), ()), ((2,), (1,)), ((4,), (3,)),
                                                   ((5, 6, 7, 8), (3,))]
    assert [u.frames for u in frameplan.plan(s, list(range(1, 9)), [4], anchors=(1, 3))] == [(3,), (4,)]
    # positions among painted frames: keys 1 3 4 | 5 7 8 (a cut before 5)
    prev = Img2ImgSettings(cross_frame="anchor-prev")
    units = frameplan.plan(prev, [1, 3, 4, 5, 7, 8], [8], anchors=(1, 5))
    assert [(u.frames, u.refs) for u in units] == [((5,), ()), ((7,), (5,)), ((8,), (5, 7))]
    bank = Img2ImgSettings(cross_frame="bank", cross_frame_bank=3)
    assert [u.refs for u in frameplan.plan(bank, [1, 3, 4, 5, 7, 8], [5, 7], anchors=(1, 5))] == [(), (5,)]
    assert xf.nearest_key(2, [0, 4]) == 0 and xf.nearest_key(3, [0, 4]) == 4 and xf.nearest_key(9, [0, 4]) == 4


@pytest.mark.parametrize("mode", ["anchor", "anchor-prev"])
def test_keys_read_the_anchor_of_their_own_shot_only(workspace_factory, tiny_dir, tiny, mode):
    src = two_shots()
    changed = [f.copy() for f in src]
    changed[0][10:26, 4:20] = (0.1, 0.9, 0.2)              # frame 1 (shot 1's anchor): another square colour
    st = keyed(tiny_dir, cross_frame=mode)
    a, b = workspace_factory(src, f"shots-a-{mode}"), workspace_factory(changed, f"shots-b-{mode}")
    info_a, _ = run_stage(a, st, tiny)
    info_b, _ = run_stage(b, st, tiny)
    assert info_a["keys"] == info_b["keys"] == [1, 3, 4, 5, 7, 8]
    assert info_a["shots"] == info_b["shots"] == [1, 5]            # the cut before frame 5 starts a shot
    fa, fb = frame_bytes(a), frame_bytes(b)
    same = {name: fa[name] == fb[name] for name in fa}
    assert same == {"00001.png": False, "00003.png": False, "00004.png": False,   # shot 1 reads frame 1
                    "00005.png": True, "00007.png": True, "00008.png": True}, same
    if mode != "anchor":
        return
    # resume after losing a key of each shot, and --single of a key of shot 2, are the same bytes
    _lose_frames_and_resume(a, st, tiny, (4, 7))
    assert frame_bytes(a) == fa
    run_stage(a, dataclasses.replace(st, img2img=dataclasses.replace(st.img2img, single=7)), tiny)
    assert (a.root / "img2img.debug" / "00007.png").read_bytes() == fa["00007.png"]


def _fill_workspace(workspace_factory, name):
    from vid2vid.core.imageops import write_image

    ws = workspace_factory(None, name)
    for k, seed in ((1, 10), (5, 11)):                      # key paintings of frames 1 and 5 (0-based 0, 4)
        write_image(ws.path("img2img", f"{k:05d}.png"), _texture(H, W, seed))
    return ws


def test_key_fill_reads_its_nearest_key(workspace_factory, tiny_dir, tiny):
    from vid2vid.core.imageops import read_image
    from vid2vid.core.progress import Job
    from vid2vid.stages.propagate import _image_fill

    ws = _fill_workspace(workspace_factory, "fill")
    frame = _texture(H, W, 20)
    hole = np.zeros((H, W), np.float32)
    hole[16:48, 16:48] = 1.0
    plain_st, xf_st = stage_settings(tiny_dir), stage_settings(tiny_dir, cross_frame="anchor")
    plain = _image_fill(plain_st, Job(), tiny, ws, [0, 4])
    before = plain(1, frame, hole)
    fill = _image_fill(xf_st, Job(), tiny, ws, [0, 4])
    try:
        out1, out2, out3 = (fill(t, frame, hole) for t in (1, 2, 3))
        engine = fill.engine
        assert fill.read == [(1, 0), (2, 0), (3, 4)] and fill.key_samplings == 2
        assert fill.record()["fill_key_samplings"] == 2
    finally:
        fill.close()
    assert np.array_equal(plain(1, frame, hole), before)                   # removed cleanly
    inside = hole > 0
    assert np.abs(out1 - before)[inside].mean() > 5e-3                     # the key's attention changes the fill
    assert np.array_equal(out1, out2) and np.abs(out1 - out3)[inside].mean() > 5e-3   # t=2: a tie, the earlier key
    # frame 3 read key 5 (0-based 4): its painting sampled at the fill's schedule, the whole frame, alone
    with xf.CrossFrame(tiny.unet, "anchor") as cf:
        cf.run(4, (), True, engine.generate, [read_image(ws.path("img2img", "00005.png"))])
        want3 = cf.run(None, (4,), False, engine.generate, [frame], masks=[hole[..., None]])[0]
    assert np.array_equal(out3, want3)


def test_propagate_stage_with_the_cross_frame_fill_resumes_bit_identically(workspace_factory, tiny_dir, tiny):
    from conftest import moving_frames
    from vid2vid.core.progress import Job
    from vid2vid.stages import propagate as pstage

    ws = workspace_factory(moving_frames(5, W, H), "fill-stage")
    st = stage_settings(tiny_dir, cross_frame="anchor")
    st.propagate.keyframes, st.propagate.fill = "every:4", "img2img"
    st.propagate.fill_budget = 1.0                          # no budget: every frame with a hole is filled
    run_stage(ws, st, tiny)
    info = pstage.run(ws, st, Job(), model=tiny)
    assert info["filled"] >= 2 and info["fill_key_samplings"] == 2 and info["fill_key_seconds"] > 0
    done = frame_bytes(ws, "propagate")
    (ws.root / "propagate" / "00004.png").unlink()          # nearest to key 5 (frame 3 is a tie: key 1)
    ws.manifest["stages"]["propagate"]["complete"] = False
    ws.save_manifest()
    again = pstage.run(ws, st, Job(), model=tiny)
    assert frame_bytes(ws, "propagate") == done and again["fill_key_samplings"] == 1   # only key 5 is read


def test_propagate_stage_spends_the_fill_budget_on_the_largest_hole_and_resumes_with_it(workspace_factory, tiny_dir,
                                                                                        tiny):
    from functools import partial

    from conftest import moving_frames
    from vid2vid.core.imageops import write_image
    from vid2vid.core.progress import Job
    from vid2vid.stages import propagate as pstage
    from vid2vid.temporal import fillbudget
    from vid2vid.temporal.flowpass import FlowOptions

    ws = workspace_factory(moving_frames(5, W, H), "fill-budget")
    st = stage_settings(tiny_dir)
    st.propagate.keyframes, st.propagate.fill, st.propagate.fill_budget = "every:4", "img2img", 0.6  # 3 of 5 frames
    run_stage(ws, st, tiny)
    said: list[str] = []
    info = pstage.run(ws, st, Job(log=said.append), model=tiny)
    assert info["filled"] == 1 and "painted by the model: 2 keys + 1 filled = 3 of 5 frames" in said
    assert ws.stage_record("propagate")["params"]["fill_budget"] == 0.6
    source = pstage.canvas_reader(ws.frames(), W, H, st.img2img.resize)
    shares = fillbudget.hole_shares(5, (W, H), source, [0, 4], FlowOptions(), pstage.prop.fill_opening((W, H)))
    largest = max(shares, key=lambda t: shares[t])
    assert shares[largest] > fillbudget.FILL_MIN and sorted(shares.values())[-2] < shares[largest]
    # the frames the fill left alone are the warp-only frames, byte for byte; the largest hole's is not
    warp_dir = ws.root / "warp-only"
    pstage.prop.propagate_frames(5, (W, H), source, [0, 4], partial(pstage.painted_key, ws),
                                 lambda t, f, h: write_image(warp_dir / f"{t + 1:05d}.png", f))
    done, warp_only = frame_bytes(ws, "propagate"), frame_bytes(ws, "warp-only")
    assert [name for name in done if done[name] != warp_only[name]] == [f"{largest + 1:05d}.png"]
    # resume after losing the filled frame and another: the same choice, the same bytes
    for t in (largest, next(t for t in (1, 2, 3) if t != largest)):
        (ws.root / "propagate" / f"{t + 1:05d}.png").unlink()
    ws.manifest["stages"]["propagate"]["complete"] = False
    ws.save_manifest()
    again = pstage.run(ws, st, Job(), model=tiny)
    assert frame_bytes(ws, "propagate") == done and again["filled"] == 1


@pytest.mark.parametrize("kw", [dict(cross_frame="anchor-prev"), dict(cross_frame="bank"), dict(flow_init=0.5)])
def test_ray_refuses_sequential_modes_and_says_why(tiny_dir, kw):
    from vid2vid.core.progress import Job
    from vid2vid.painting import raypool

    st = stage_settings(tiny_dir, **kw)
    st.ray.enabled = True
    with pytest.raises(BadInput, match="one at a time in order") as e:
        raypool.ray_engine(st, Job(), 4)
    assert frameplan.why_sequential(st.img2img) in str(e.value) and "--ray" in str(e.value)
