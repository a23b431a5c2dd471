"""IP-Adapters in the AnimateDiff painter: tiny model, tiny motion module, tiny adapter, loaded through the real code.

The windowed run with one window against diffusers' `AnimateDiffVideoToVideoPipeline` with `load_ip_adapter` and
`ip_adapter_image_embeds`; scale 0, another reference, the embedding computed once, several adapters, painted
references, resume after a kill and Ray actors on whole img2img runs.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_references import counting, frames_of

from conftest import make_workspace, moving_frames
from vid2vid.config import Img2ImgSettings, IPAdapterSettings, Settings
from vid2vid.core.errors import Interrupted
from vid2vid.core.imageops import write_image
from vid2vid.core.progress import Job
from vid2vid.diffusion import image_encoder as ie
from vid2vid.diffusion import ip_adapter as ipa
from vid2vid.diffusion.engine import Img2ImgEngine
from vid2vid.diffusion.ip_attention import IPAttnProcessor, IPUnit
from vid2vid.diffusion.motion import MotionLayers
from vid2vid.diffusion.motion_loading import load_adapter
from vid2vid.diffusion.motion_windows import EngineWindows, sampler_step
from vid2vid.diffusion.tiny_motion import make_tiny_motion_module
from vid2vid.painting import references, windows
from vid2vid.pipeline.runner import run_stage

SIDE = 64
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory):
    return make_tiny_motion_module(tmp_path_factory.mktemp("mm"), single_file=True)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    from vid2vid.diffusion.tiny_ip_adapter import make_tiny_ip_adapter

    root = tmp_path_factory.mktemp("ipa")
    return {"ipa": make_tiny_ip_adapter(root / "ipa"), "plus": make_tiny_ip_adapter(root / "plus", plus=True)}


def picture(seed: int) -> np.ndarray:
    """A reference picture: a random field of colour blocks, 48x40."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.uniform(0, 1, (6, 5, 3)), np.ones((8, 8, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    out = []
    for seed in (9, 10):
        write_image(root / f"look{seed}.png", picture(seed))
        out.append(root / f"look{seed}.png")
    return out


# ---------------------------------------------------------------- against diffusers

def ip_unit(spec, seed: int = 1, scale: float = 1.0, **kw) -> IPUnit:
    adapter = ipa.read_adapter(str(spec))
    enc, proc = ie.load_image_encoder(ie.find_image_encoder(adapter))
    cond, uncond = ie.embed(enc, proc, adapter.kind, [picture(seed)])
    return IPUnit(adapter, cond, uncond, scale, name=str(spec), **kw)


def one_window(model, layers, canvases, units, **kw) -> tuple[torch.Tensor, torch.Tensor, Img2ImgEngine]:
    """(sampled latents, start latents, engine) of a windowed run with one window over all the frames."""
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=6, denoise=0.75, width=SIDE,
                height=SIDE, sampler="euler", schedule="exponential", cfg=7.0)
    engine = Img2ImgEngine(model, Img2ImgSettings(**{**base, **kw}), ip_adapters=units)
    try:
        init = torch.cat([engine.encode([engine.fit(c)]) for c in canvases])
        clip = windows.ClipSampling(len(canvases), init.shape[1:], torch.tensor(engine.real_sigmas,
                                    dtype=torch.float32), sampler_step(engine), 3, len(canvases), 2)
        out = clip.run(windows.LocalSpread(EngineWindows(engine, layers)), lambda: init)
    finally:
        engine.close()
    return out, clip.start(init), engine


def clip_frames(n: int) -> list[np.ndarray]:
    return [f.astype(np.float32) / 255 for f in moving_frames(n, SIDE, SIDE)]


@pytest.mark.parametrize("kind, weight", [("ipa", "ip-adapter_tiny-sd1.safetensors"),
                                          ("plus", "ip-adapter-plus_tiny-sd1.safetensors")])
def test_one_window_equals_diffusers_animatediff_with_load_ip_adapter(tiny_model, motion_file, adapters, kind,
                                                                      weight):
    from diffusers import AnimateDiffVideoToVideoPipeline, EulerDiscreteScheduler

    from vid2vid.diffusion.loading import load_model

    model = load_model(str(tiny_model), device="cpu", dtype="float32")
    motion = load_adapter(str(motion_file))
    u = ip_unit(adapters[kind], scale=0.8)
    canvases = clip_frames(5)
    layers = MotionLayers(model.unet, motion)
    try:
        ours, start, engine = one_window(model, layers, canvases, [u])
        free, _, _ = one_window(model, layers, canvases, None)
    finally:
        layers.remove()
    assert not any(isinstance(p, IPAttnProcessor) for p in model.unet.attn_processors.values())
    cond, uncond = engine.embeddings[:2]
    pipe = AnimateDiffVideoToVideoPipeline(vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer,
                                           unet=model.unet, motion_adapter=motion,
                                           scheduler=EulerDiscreteScheduler.from_config(model.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(str(adapters[kind]), subfolder="", weight_name=weight, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(0.8)
    # diffusers leaves the motion modules' attention alone and replaces the UNet's cross-attention processors
    procs = pipe.unet.attn_processors
    assert all("IPAdapter" not in type(p).__name__ for k, p in procs.items() if "motion_modules" in k)
    assert any("IPAdapter" in type(p).__name__ for k, p in procs.items() if k.endswith("attn2.processor"))
    embeds = [torch.cat([u.uncond, u.cond])[:, None]]          # [negative, positive] x 1 image
    with torch.no_grad():
        ref = pipe(latents=start.permute(1, 0, 2, 3)[None], prompt_embeds=cond, negative_prompt_embeds=uncond,
                   sigmas=[float(v) for v in engine.real_sigmas], strength=1.0, guidance_scale=7.0,
                   output_type="latent", height=SIDE, width=SIDE, ip_adapter_image_embeds=embeds).frames
    ref = ref[0].permute(1, 0, 2, 3)
    assert ref.shape == ours.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert (free - ours).abs().max() > 1e-2              # the adapter acts inside the windows


def test_scale_zero_is_the_run_without_adapter_and_another_reference_differs(tiny_model, motion_file, adapters):
    from diffusers.models.attention_processor import Attention

    from vid2vid.diffusion.loading import load_model

    model = load_model(str(tiny_model), device="cpu", dtype="float32")
    motion = load_adapter(str(motion_file))
    layers = MotionLayers(model.unet, motion)
    canvases = clip_frames(4)
    engine = Img2ImgEngine(model, Img2ImgSettings(model="tiny", width=SIDE, height=SIDE),
                           ip_adapters=[ip_unit(adapters["ipa"])])
    try:                    # the adapter's processors: every cross-attention layer of the UNet, no motion module
        temporal = [m for m in motion.modules() if isinstance(m, Attention)]
        assert temporal and not any(isinstance(m.processor, IPAttnProcessor) for m in temporal)
        procs = model.unet.attn_processors
        assert [k for k, v in procs.items() if isinstance(v, IPAttnProcessor)] == \
            [k for k in procs if k.endswith("attn2.processor")]
    finally:
        engine.close()
    try:
        free = one_window(model, layers, canvases, None)[0]
        zero = one_window(model, layers, canvases, [ip_unit(adapters["ipa"], scale=0.0)])[0]
        a = one_window(model, layers, canvases, [ip_unit(adapters["ipa"], seed=1)])[0]
        b = one_window(model, layers, canvases, [ip_unit(adapters["ipa"], seed=2)])[0]
        both = one_window(model, layers, canvases, [ip_unit(adapters["ipa"], seed=1),
                                                    ip_unit(adapters["plus"], seed=2, scale=0.7)])[0]
    finally:
        layers.remove()
    assert torch.equal(zero, free)
    assert (a - b).abs().max() > 1e-2 and (both - a).abs().max() > 1e-2


# ---------------------------------------------------------------- whole runs

def settings_for(model, motion, adapter=None, reference="", scale: float = 1.0, **kw) -> Settings:
    st = Settings()
    base = dict(model=str(model), motion_module=str(motion), prompt="a red fox", negative="blurry", steps=4,
                denoise=0.75, width=64, height=48, sampler="dpm++-2m", context_length=4, context_overlap=2)
    st.img2img = Img2ImgSettings(**{**base, **kw})
    if adapter is not None:
        st.img2img.ip_adapter = [IPAdapterSettings(model=str(adapter), reference=str(reference), scale=scale)]
    return st


@pytest.mark.parametrize("workers", [1, 2])
def test_windows_read_one_embedding_and_resume_after_a_kill_gives_the_same_bits(tmp_path, tiny_model, motion_file,
                                                                                adapters, pictures, monkeypatch,
                                                                                workers):
    src = moving_frames(7)
    st = settings_for(tiny_model, motion_file, adapters["ipa"], pictures[0], workers=workers)
    calls = counting(monkeypatch)
    full = make_workspace(tmp_path / "full", src)
    info = run_stage("img2img", full, st)
    assert info["painter"] == "animatediff" and len(info["ip_adapters"]) == 1 and len(calls) == 1
    state = json.loads((full.root / "img2img" / windows.STATE_JSON).read_text())
    assert state["windows"] == [[1, 4], [3, 6], [4, 7]]            # three windows read the one embedding
    assert len(sorted((full.root / references.FOLDER).glob("ip-1-*.safetensors"))) == 1
    # killed after two of the four steps, then resumed: the stored embedding is read, the bits are the same
    cut = make_workspace(tmp_path / "cut", src)
    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.stage == "img2img steps" and ev.done >= 2 else None
    with pytest.raises(Interrupted):
        run_stage("img2img", cut, st, job)
    assert json.loads((cut.root / "img2img" / windows.STATE_JSON).read_text())["steps_done"] == 2
    run_stage("img2img", cut, st)
    assert len(calls) == 2 and frames_of(cut) == frames_of(full)
    if workers == 1:                  # scale 0: the frames of the run without an adapter
        plain = make_workspace(tmp_path / "plain", src)
        run_stage("img2img", plain, settings_for(tiny_model, motion_file))
        zero = make_workspace(tmp_path / "zero", src)
        run_stage("img2img", zero, settings_for(tiny_model, motion_file, adapters["ipa"], pictures[0], scale=0.0))
        assert frames_of(zero) == frames_of(plain) != frames_of(full)
        other = make_workspace(tmp_path / "other", src)
        run_stage("img2img", other, settings_for(tiny_model, motion_file, adapters["ipa"], pictures[1]))
        assert frames_of(other) != frames_of(full)


def test_first_painted_is_frame_one_of_the_image_painter_and_equals_that_file(tmp_path, tiny_model, motion_file,
                                                                              adapters, pictures, monkeypatch):
    import shutil

    src = moving_frames(5)
    calls = counting(monkeypatch)
    first = make_workspace(tmp_path / "first", src)
    run_stage("img2img", first, settings_for(tiny_model, motion_file, adapters["ipa"], "first-painted"))
    assert len(calls) == 1
    painted = sorted((first.root / references.FOLDER).glob("painted-*.png"))
    assert [p.name[:13] for p in painted] == ["painted-00001"]
    # the painting is frame 1 as the image painter paints it (the same settings without the motion module)
    image = make_workspace(tmp_path / "image", src)
    run_stage("img2img", image, settings_for(tiny_model, "", single=1))
    assert painted[0].read_bytes() == (image.root / "img2img.debug" / "00001.png").read_bytes()
    by_file = make_workspace(tmp_path / "file", src)
    run_stage("img2img", by_file, settings_for(tiny_model, motion_file, adapters["ipa"],
                                               shutil.copy(painted[0], tmp_path / "frame1.png")))
    assert frames_of(by_file) == frames_of(first)
    external = make_workspace(tmp_path / "external", src)
    run_stage("img2img", external, settings_for(tiny_model, motion_file, adapters["ipa"], pictures[0]))
    assert frames_of(external) != frames_of(first)
    # key:3 paints frame 3 first, as --single 3 of the image painter
    key = make_workspace(tmp_path / "key", src)
    run_stage("img2img", key, settings_for(tiny_model, motion_file, adapters["ipa"], "key:3"))
    run_stage("img2img", image, settings_for(tiny_model, "", single=3))
    painted = sorted((key.root / references.FOLDER).glob("painted-*.png"))
    assert [p.name[:13] for p in painted] == ["painted-00003"]
    assert painted[0].read_bytes() == (image.root / "img2img.debug" / "00003.png").read_bytes()
    assert frames_of(key) != frames_of(first)


def test_two_adapters_each_with_its_window(tmp_path, tiny_model, motion_file, adapters, pictures, monkeypatch):
    src = moving_frames(5)
    calls = counting(monkeypatch)
    st = settings_for(tiny_model, motion_file, adapters["ipa"], pictures[0])
    st.img2img.ip_adapter.append(IPAdapterSettings(model=str(adapters["plus"]), reference=str(pictures[1]),
                                                   scale=0.7, start=0.5, end=1.0))
    two = make_workspace(tmp_path / "two", src)
    info = run_stage("img2img", two, st)
    assert len(calls) == 2 and [a["steps"] for a in info["ip_adapters"]] == [[0, 1, 2, 3], [2, 3]]
    one = make_workspace(tmp_path / "one", src)
    run_stage("img2img", one, settings_for(tiny_model, motion_file, adapters["ipa"], pictures[0]))
    assert frames_of(two) != frames_of(one)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_actors_read_the_stored_embedding_and_write_the_local_bits(tmp_path, tiny_model, motion_file, adapters,
                                                                      pictures, monkeypatch):
    ray = pytest.importorskip("ray")

    src = moving_frames(6)
    local = make_workspace(tmp_path / "local", src)
    st = settings_for(tiny_model, motion_file, adapters["ipa"], "first-painted", sampler="euler-a")
    run_stage("img2img", local, st)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)               # the local side's threads = each actor's
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        calls = counting(monkeypatch)
        remote = make_workspace(tmp_path / "ray", src)
        st.ray.enabled, st.ray.actors, st.ray.threads = True, 2, 1
        said: list[str] = []
        run_stage("img2img", remote, st, Job(log=said.append))
        assert any("2 Ray actor(s)" in line for line in said) and len(calls) == 1     # embedded once, here
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)
    assert len(frames_of(local)) == 6 and frames_of(remote) == frames_of(local)
