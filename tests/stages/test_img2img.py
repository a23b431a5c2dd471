"""The img2img engine and stage on the tiny model (loaded through the real loading code)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from vid2vid.config import Img2ImgSettings
from vid2vid.core.errors import BadInput
from vid2vid.diffusion import schedules
from vid2vid.diffusion.denoiser import CFGDenoiser
from vid2vid.diffusion.engine import Img2ImgEngine
from vid2vid.diffusion.schedules import sigma_to_timestep

W = H = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tiny tensors: one thread is fastest


@pytest.fixture(scope="module")
def tiny_dir(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from vid2vid.diffusion.loading import load_model

    return load_model(str(tiny_dir), device="cpu", dtype="float32")


def embed(model, text: str) -> torch.Tensor:
    ids = model.tokenizer(text, padding="max_length", max_length=model.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.text_encoder(ids)[0]


def settings(**kw) -> Img2ImgSettings:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=8, denoise=0.75,
                width=W, height=H, sampler="euler", schedule="exponential")
    base.update(kw)
    return Img2ImgSettings(**base)


def engine(model, **kw) -> Img2ImgEngine:
    return Img2ImgEngine(model, settings(**kw), embeddings=(embed(model, "a red fox"), embed(model, "blurry")))


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:80].astype(np.float32)
    out = []
    for _ in range(n):
        base = np.stack([xx / 80, yy / 48, 0.5 + 0 * xx], axis=2)
        out.append(np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32))
    return out


def test_real_sigmas_are_the_truncated_schedule(tiny):
    e = engine(tiny, steps=20, denoise=0.75, schedule="karras")
    np.testing.assert_array_equal(e.real_sigmas, schedules.karras(20, 0.1, 1.2)[4:])
    d = engine(tiny, steps=10, denoise=0.5, schedule="default")
    train = tiny.sigmas.numpy()
    np.testing.assert_allclose(d.real_sigmas, schedules.model_default(10, train)[4:])
    assert d.describe()["real_sigmas"][0] == pytest.approx(d.real_sigmas[0], abs=1e-6)


def test_invalid_settings_are_rejected(tiny):
    with pytest.raises(BadInput, match="--steps"):
        engine(tiny, steps=0)
    with pytest.raises(BadInput, match="--denoise"):
        engine(tiny, denoise=1.2)
    with pytest.raises(BadInput, match="--sigma-max"):
        engine(tiny, sigma_min=2.0, sigma_max=1.0)


def test_sigma_to_timestep_interpolates_log_sigmas(tiny):
    train = tiny.sigmas.numpy()
    sig = np.array([train[0], train[10] * 1.01, 1.0, 7.5, train[-1]])
    want = np.interp(np.log(sig), np.log(train), np.arange(len(train)))
    got = sigma_to_timestep(torch.tensor(sig, dtype=torch.float32), torch.tensor(np.log(train), dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), want, atol=2e-3)


def test_guidance_combines_separate_uncond_and_cond_calls(tiny):
    cond, uncond = embed(tiny, "a red fox"), embed(tiny, "blurry")
    den = CFGDenoiser(tiny.unet, tiny.sigmas.numpy(), "epsilon", cond, uncond, cfg_scale=5.0)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.8, 0.8])
    t = sigma_to_timestep(sigma, den.log_sigmas)
    z = x / (0.8 ** 2 + 1) ** 0.5
    with torch.no_grad():
        eu = tiny.unet(z, t, encoder_hidden_states=uncond.expand(2, -1, -1)).sample
        ec = tiny.unet(z, t, encoder_hidden_states=cond.expand(2, -1, -1)).sample
        got = den(x, sigma)
    want = x - 0.8 * (eu + 5.0 * (ec - eu))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert den.calls == 1            # uncond and cond went through one batched UNet call
    vden = CFGDenoiser(tiny.unet, tiny.sigmas.numpy(), "v_prediction", cond, None, cfg_scale=1.0)
    with torch.no_grad():
        v = tiny.unet(z, t, encoder_hidden_states=cond.expand(2, -1, -1)).sample
        torch.testing.assert_close(vden(x, sigma), x / 1.64 - 0.8 / 1.64 ** 0.5 * v, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampler", ["euler", "euler-a"])
def test_deterministic_per_seed_and_independent_of_batch_size(tiny, sampler):
    e = engine(tiny, sampler=sampler, steps=6)
    imgs = images(3)
    batch = e.generate(imgs)
    alone = [e.generate([im])[0] for im in imgs]
    for a, b in zip(batch, alone):
        assert a.shape == (H, W, 3) and a.dtype == np.float32
        assert np.abs(a - b).max() < 1e-4
    again = e.generate(imgs[:1])[0]
    assert np.array_equal(again, alone[0])
    other = e.generate(imgs[:1], seeds=[1])[0]
    assert np.abs(other - alone[0]).mean() > 1e-3


def test_init_noise_zero_stays_on_the_vae_round_trip(tiny):
    # Hand-made case: a UNet whose last convolution is zero predicts zero noise, so D(x) = x and the
    # sampler leaves the latent where it starts; then only the init noise can move the image.
    import copy

    unet = copy.deepcopy(tiny.unet)
    torch.nn.init.zeros_(unet.conv_out.weight)
    torch.nn.init.zeros_(unet.conv_out.bias)
    still = dataclasses.replace(tiny, unet=unet)
    img = images(1)[0]
    e0 = engine(still, init_noise=0.0)
    roundtrip = e0.decode(e0.encode([e0.fit(img)]))[0]
    np.testing.assert_allclose(e0.generate([img])[0], roundtrip, atol=1e-5)
    noisy = engine(still, init_noise=1.0).generate([img])[0]
    half = engine(still, init_noise=0.5).generate([img])[0]
    err1, err_half = np.abs(noisy - roundtrip).mean(), np.abs(half - roundtrip).mean()
    assert err1 > err_half > 0.005, (err1, err_half)


def test_inpainting_mask_keeps_unmasked_content(tiny):
    e = engine(tiny, steps=6)
    img = images(1)[0]
    canvas = e.fit(img)
    mask = np.zeros((48, 80, 1), np.float32)
    mask[:, :40] = 1.0                     # left half may change (fits to the left half of the canvas)
    finals = []
    out = e.generate([img], masks=[mask], callback=lambda i, x, d: finals.append(x.clone()))[0]
    np.testing.assert_array_equal(out[:, W // 2:], canvas[:, W // 2:])
    assert np.abs(out[:, :W // 2 - 8] - canvas[:, :W // 2 - 8]).mean() > 0.01
    # in latent space the unmasked half ends exactly on the init latent (blended every step)
    init = e.encode([canvas])
    torch.testing.assert_close(finals[-1][..., 5:], init[..., 5:], atol=1e-5, rtol=0)
    # a batch with and without masks: the unmasked frame matches a plain run
    both = e.generate([img, img], masks=[mask, None])
    assert np.abs(both[1] - e.generate([img])[0]).max() < 1e-4


# ---------------------------------------------------------------- the stage

def stage_settings(model_dir, **kw):
    from vid2vid.config import Settings

    st = Settings()
    st.img2img = dataclasses.replace(settings(model=str(model_dir), steps=4, batch_size=2), **kw)
    return st


def _read_all(folder):
    from vid2vid.core.imageops import read_image
    from vid2vid.core.workspace import list_frames

    return [read_image(p) for p in list_frames(folder)]


def test_stage_resumes_after_an_interruption_with_identical_frames(workspace_factory, tiny_dir):
    from conftest import moving_frames
    from vid2vid.core.errors import Interrupted
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    src = moving_frames(5)
    full_ws, cut_ws = workspace_factory(src, "full"), workspace_factory(src, "cut")
    st = stage_settings(tiny_dir)
    messages = []
    info = stage.run(full_ws, st, Job(log=messages.append))
    assert info["frames"] == 5
    np.testing.assert_allclose(info["real_sigmas"], schedules.real_sigmas("exponential", 4, 0.75, 0.1, 1.2), atol=1e-6)
    assert any("real sigmas" in m for m in messages)
    assert full_ws.stage_record("img2img")["info"]["seed"] == st.img2img.seed
    assert len(list((full_ws.root / "motionmask").glob("*.png"))) == 4      # frames 2..5

    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.done >= 2 else None
    with pytest.raises(Interrupted):
        stage.run(cut_ws, st, job)
    written = len(list((cut_ws.root / "img2img").glob("*.png")))
    assert 2 <= written < 5
    stage.run(cut_ws, stage_settings(tiny_dir, batch_size=3), Job())
    a, b = _read_all(full_ws.root / "img2img"), _read_all(cut_ws.root / "img2img")
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        assert np.abs(x - y).max() <= 1 / 255 + 1e-6     # batch 2 vs 3 may flip a rounding, no more
    # the first frame is the raw generated frame; the others were corrected against o_(t-1)
    again = stage.run(cut_ws, st, Job())
    assert again["frames"] == 5
    # a missing model with new settings fails before anything finished is removed
    from vid2vid.core.errors import ModelNotFound
    with pytest.raises(ModelNotFound):
        stage.run(cut_ws, stage_settings(tmp_path_missing := cut_ws.root / "no-such-model", steps=5), Job())
    assert len(_read_all(cut_ws.root / "img2img")) == 5 and not tmp_path_missing.exists()
    # depth masks asked for but never made
    st_depth = stage_settings(tiny_dir)
    st_depth.correct.delta_mask = "depth"
    with pytest.raises(BadInput, match="vid2vid depth"):
        stage.run(cut_ws, st_depth, Job())


def test_stage_single_frame_debug_mode(workspace_factory, tiny_dir):
    from conftest import moving_frames
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    ws = workspace_factory(moving_frames(3), "single")
    st = stage_settings(tiny_dir, single=2)
    st.correct.spatial_mask = "motion"
    said = []
    info = stage.run(ws, st, Job(log=said.append))
    assert info["frame"] == 2 and info["real_sigmas"][-1] == 0.0
    assert (ws.root / "img2img.debug" / "00002.png").is_file()
    assert not (ws.root / "img2img").exists() and ws.stage_record("img2img") is None
    assert any(m.startswith("img2img: real sigmas [") for m in said)
    assert [m for m in said if m.startswith("img2img: device ")] == [
        f"img2img: device cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), float32"]
    with pytest.raises(BadInput, match="past the last frame"):
        stage.run(ws, stage_settings(tiny_dir, single=9), Job())


def test_flow_method_leaves_frames_uncorrected_for_its_own_stage(workspace_factory, tiny_dir):
    from conftest import moving_frames
    from vid2vid.core.imageops import read_image
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    ws = workspace_factory(moving_frames(3), "flow")
    st = stage_settings(tiny_dir, batch_size=3)
    st.correct.method = "flow"
    stage.run(ws, st, Job())
    seed_ws = workspace_factory(moving_frames(3), "seedfdc")
    stage.run(seed_ws, stage_settings(tiny_dir, batch_size=3), Job())
    debug = stage_settings(tiny_dir, single=3)
    stage.run(ws, debug, Job())                     # frame 3 alone, raw, into img2img.debug/
    raw = read_image(ws.root / "img2img.debug" / "00003.png")
    flow3 = read_image(ws.root / "img2img" / "00003.png")
    assert np.abs(flow3 - raw).max() <= 1 / 255 + 1e-6
    assert np.abs(read_image(seed_ws.root / "img2img" / "00003.png") - raw).mean() > 1e-3   # seed FDC changed it


def test_batches_are_aligned_to_absolute_blocks():
    from vid2vid.stages.img2img import batch_aligned

    assert batch_aligned([5, 6, 7], 7, 3) == [4, 5, 6, 7]          # frame 4 is redone to keep block 4..6 whole
    assert batch_aligned([1, 2, 3, 4, 5, 6, 7], 7, 3) == [1, 2, 3, 4, 5, 6, 7]
    assert batch_aligned([8], 8, 3) == [7, 8]
    assert batch_aligned([2, 9], 10, 4) == [1, 2, 3, 4, 9, 10]
    assert batch_aligned([3], 5, 1) == [3]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_with_batches_is_bit_identical(workspace_factory, tiny_dir, workers):
    from conftest import moving_frames
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    src = moving_frames(10)
    full_ws, cut_ws = workspace_factory(src, f"full4-{workers}"), workspace_factory(src, f"cut4-{workers}")
    st = stage_settings(tiny_dir, batch_size=4, workers=workers)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)       # with several threads a kernel's blocking can follow the batch size
    try:
        _resume_after_losing_frames_8_to_10(stage, full_ws, cut_ws, st, Job)
    finally:
        torch.set_num_threads(threads)


def _resume_after_losing_frames_8_to_10(stage, full_ws, cut_ws, st, Job):
    stage.run(full_ws, st, Job())
    stage.run(cut_ws, st, Job())
    # a crash after frame 7: frames 8..10 lost, frame 8 was in block 5..8
    for name in ("00008.png", "00009.png", "00010.png"):
        (cut_ws.root / "img2img" / name).unlink()
    cut_ws.manifest["stages"]["img2img"]["complete"] = False
    cut_ws.save_manifest()
    stage.run(cut_ws, st, Job())
    full, cut = sorted((full_ws.root / "img2img").glob("*.png")), sorted((cut_ws.root / "img2img").glob("*.png"))
    assert [p.name for p in full] == [p.name for p in cut] and len(full) == 10
    for a, b in zip(full, cut):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_model_workers_layout():
    from vid2vid.painting.loop import model_workers

    assert model_workers(0, "cpu", batches=10, threads=2) == (2, 1)
    assert model_workers(0, "cpu", batches=3, threads=2) == (1, 2)     # the last batch would run on half the cores
    assert model_workers(0, "cpu", batches=10, threads=1) == (1, 1)
    assert model_workers(0, "cpu", batches=10, threads=16) == (2, 8)
    assert model_workers(4, "cpu", batches=2, threads=16) == (4, 4)    # asked for: given, whatever the batches
    assert model_workers(3, "cpu", batches=9, threads=2) == (2, 1)     # never more workers than threads
    assert model_workers(0, "cuda", batches=10, threads=8) == (1, 8)
    assert model_workers(4, "cuda", batches=10, threads=8) == (1, 8)


def test_two_model_workers_write_what_one_writes(workspace_factory, tiny_dir):
    """Two workers with one thread each give the bytes one worker with one thread gives, in order."""
    from conftest import moving_frames
    from vid2vid.core.errors import Interrupted
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    src = moving_frames(7)
    one_ws, two_ws = workspace_factory(src, "one-worker"), workspace_factory(src, "two-workers")
    cut_ws = workspace_factory(src, "two-workers-cut")
    info_one = stage.run(one_ws, stage_settings(tiny_dir, batch_size=1), Job())   # 1 thread: 1 worker
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    said = []
    try:
        info_two = stage.run(two_ws, stage_settings(tiny_dir, batch_size=1), Job(log=said.append))
        assert torch.get_num_threads() == 2                   # the caller's thread count is given back
        job = Job()                   # interrupted (seen before one of the 6 later batches): finished ones are written
        job.on_progress = lambda ev: job.cancel.set() if ev.done >= 1 else None
        with pytest.raises(Interrupted):
            stage.run(cut_ws, stage_settings(tiny_dir, batch_size=1), job)
        assert 1 <= len(list((cut_ws.root / "img2img").glob("*.png"))) < 7
        stage.run(cut_ws, stage_settings(tiny_dir, batch_size=1), Job())
    finally:
        torch.set_num_threads(threads)
    for x, y in zip(sorted((two_ws.root / "img2img").glob("*.png")), sorted((cut_ws.root / "img2img").glob("*.png"))):
        assert x.read_bytes() == y.read_bytes(), x.name
    assert (info_one["model_workers"], info_two["model_workers"], info_two["threads_per_worker"]) == (1, 2, 1)
    assert any("2 model workers" in m for m in said)
    a, b = sorted((one_ws.root / "img2img").glob("*.png")), sorted((two_ws.root / "img2img").glob("*.png"))
    assert [p.name for p in a] == [p.name for p in b] and len(a) == 7
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes(), x.name


def test_prediction_option_reaches_the_model(workspace_factory, tiny_dir):
    from conftest import moving_frames
    from vid2vid.core.progress import Job
    from vid2vid.stages import img2img as stage

    src = moving_frames(2)
    auto_ws, v_ws = workspace_factory(src, "pred-auto"), workspace_factory(src, "pred-v")
    assert stage.run(auto_ws, stage_settings(tiny_dir), Job())["prediction_type"] == "epsilon"
    v_info = stage.run(v_ws, stage_settings(tiny_dir, prediction="v_prediction"), Job())
    assert v_info["prediction_type"] == "v_prediction"
    a, b = _read_all(auto_ws.root / "img2img"), _read_all(v_ws.root / "img2img")
    assert np.abs(a[0] - b[0]).mean() > 1e-3
    with pytest.raises(BadInput, match="--prediction 'v' is not known"):
        settings(prediction="v").validate()


# ---------------------------------------------------------------- SDXL

@pytest.fixture(scope="module")
def tiny_xl(tmp_path_factory):
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("xl") / "tiny-sdxl", config="tiny-sdxl")),
                      device="cpu", dtype="float32")


def test_sdxl_sampling_matches_diffusers_sdxl_img2img(tiny_xl):
    """Same init latents, sigmas, seed and CFG: our engine and diffusers' SDXL img2img pipeline agree."""
    from diffusers import EulerDiscreteScheduler

    eng = Img2ImgEngine(tiny_xl, settings(sampler="euler", steps=6, prompt="(a red fox:1.2)", negative="blurry"))
    init = eng.encode([eng.fit(images(1)[0])])
    ours = eng.sample(init)
    cond, uncond, pooled_c, pooled_u = eng.embeddings
    assert pooled_c.shape == (1, 64) and not torch.equal(pooled_c, pooled_u)
    pipe = tiny_xl.to_pipeline(EulerDiscreteScheduler.from_config(tiny_xl.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        ref = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, pooled_prompt_embeds=pooled_c,
                   negative_pooled_prompt_embeds=pooled_u, image=init, strength=1.0,
                   sigmas=[float(v) for v in eng.real_sigmas], guidance_scale=7.0,
                   generator=torch.Generator("cpu").manual_seed(eng.settings.seed), output_type="latent",
                   original_size=(H, W), target_size=(H, W)).images
    assert ref.shape == ours.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # the size conditioning matters: another canvas size changes the result
    other = Img2ImgEngine(tiny_xl, settings(sampler="euler", steps=6, prompt="(a red fox:1.2)", negative="blurry",
                                            width=W, height=H + 8))
    assert other.denoiser.time_ids.tolist() == [[H + 8, W, 0, 0, H + 8, W]]


def test_sdxl_stage_writes_frames(workspace_factory, tmp_path):
    from conftest import moving_frames
    from vid2vid.core.progress import Job
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.stages import img2img as stage

    model = make_tiny_model(tmp_path / "xl.safetensors", config="tiny-sdxl", single_file=True)
    ws = workspace_factory(moving_frames(3), "xl")
    info = stage.run(ws, stage_settings(model, batch_size=2), Job())
    assert info["frames"] == 3 and len(_read_all(ws.root / "img2img")) == 3
