"""Few-step samplers (lcm, tcd) against diffusers' LCMScheduler / TCDScheduler on the tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vid2vid.config import Img2ImgSettings
from vid2vid.core.errors import BadInput
from vid2vid.diffusion import fewstep
from vid2vid.diffusion.engine import Img2ImgEngine

W = H = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tiny tensors: one thread is fastest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")), device="cpu",
                      dtype="float32")


def embed(model, text: str) -> torch.Tensor:
    ids = model.tokenizer(text, padding="max_length", max_length=model.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.text_encoder(ids)[0]


def engine(model, **kw) -> Img2ImgEngine:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=4, denoise=0.75, cfg=1.0,
                width=W, height=H, sampler="lcm")
    base.update(kw)
    return Img2ImgEngine(model, Img2ImgSettings(**base), embeddings=(embed(model, "a red fox"), embed(model, "blurry")))


def canvases(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 1, (H, W, 3)).astype(np.float32) for _ in range(n)]


def diffusers_scheduler(name: str, model, steps: int, denoise: float):
    from diffusers import LCMScheduler, TCDScheduler

    cls = LCMScheduler if name == "lcm" else TCDScheduler
    sched = cls.from_config(model.scheduler_config)
    sched.alphas_cumprod = model.alphas_cumprod.float()     # the same training schedule on both sides
    sched.set_timesteps(steps, strength=denoise)
    return sched


@pytest.mark.parametrize("name", ["lcm", "tcd"])
@pytest.mark.parametrize("steps,denoise", [(1, 1.0), (2, 0.5), (4, 0.75), (4, 0.3), (6, 0.9), (8, 1.0), (3, 0.08)])
def test_timestep_grid_is_the_schedulers_own(name, steps, denoise, tiny):
    ours = fewstep.timesteps(steps, denoise)
    theirs = diffusers_scheduler(name, tiny, steps, denoise).timesteps.numpy()
    assert ours.tolist() == theirs.tolist()
    # and the real sigmas shown are those timesteps' training sigmas, then 0
    ts, sig = fewstep.real_sigmas(steps, denoise, tiny.sigmas.numpy())
    np.testing.assert_allclose(sig[:-1], tiny.sigmas.numpy()[ts])
    assert sig[-1] == 0 and len(sig) == steps + 1


def test_grid_too_small_for_the_steps_is_a_clear_error():
    with pytest.raises(BadInput, match="raise the denoising strength to at least 0.16"):
        fewstep.timesteps(8, 0.1)
    with pytest.raises(BadInput, match="steps"):
        fewstep.timesteps(4, 0.0)


def reference_loop(name, model, init, cond, uncond, cfg, steps, denoise, seed, gamma=0.3):
    """diffusers' scheduler loop (as its LCM img2img pipeline runs it) on the same UNet and init latent."""
    sched = diffusers_scheduler(name, model, steps, denoise)
    g = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(init.shape, generator=g)
    z = sched.add_noise(init, noise, sched.timesteps[:1])
    out = None
    for t in sched.timesteps:
        with torch.no_grad():
            eps_c = model.unet(z, t, encoder_hidden_states=cond).sample
            if cfg != 1.0:
                eps_u = model.unet(z, t, encoder_hidden_states=uncond).sample
                eps = eps_u + cfg * (eps_c - eps_u)
            else:
                eps = eps_c
        kw = {"eta": gamma} if name == "tcd" else {}
        z, out = sched.step(eps, t, z, generator=g, return_dict=False, **kw)
    return out if name == "lcm" else z


@pytest.mark.parametrize("name,cfg,steps,denoise,gamma", [
    ("lcm", 1.0, 4, 0.75, 0.3), ("lcm", 1.5, 3, 0.5, 0.3), ("lcm", 1.0, 1, 1.0, 0.3),
    ("tcd", 1.0, 4, 0.75, 0.3), ("tcd", 1.0, 4, 0.6, 0.0), ("tcd", 2.0, 2, 1.0, 0.7)])
def test_sampler_matches_diffusers_scheduler(tiny, name, cfg, steps, denoise, gamma):
    eng = engine(tiny, sampler=name, cfg=cfg, steps=steps, denoise=denoise, tcd_gamma=gamma, seed=7)
    init = eng.encode(canvases(1))
    ours = eng.sample(init, seeds=[7])
    cond, uncond = embed(tiny, "a red fox"), embed(tiny, "blurry")
    theirs = reference_loop(name, tiny, init, cond, uncond, cfg, steps, denoise, 7, gamma)
    assert ours.shape == theirs.shape
    # the tiny random UNet makes latents up to ~50 at high noise, where float32 rounding alone is
    # ~1e-5 absolute (diffusers' float32 loop is 1.3e-5 off its float64 run): compare relative to it
    scale = max(1.0, theirs.abs().max().item())
    err = (ours - theirs).abs().max().item() / scale
    assert err <= 1e-5, err
    assert theirs.abs().max().item() > 0.1          # not a vacuous comparison


def test_gamma_changes_tcd_and_lcm_differs_from_tcd(tiny):
    init = engine(tiny).encode(canvases(1))
    a = engine(tiny, sampler="tcd", tcd_gamma=0.3).sample(init)
    b = engine(tiny, sampler="tcd", tcd_gamma=0.0).sample(init)
    c = engine(tiny, sampler="lcm").sample(init)
    assert (a - b).abs().max() > 1e-3 and (a - c).abs().max() > 1e-3


def unet_batches(model, eng, images):
    """The batch size of every UNet call while `eng` repaints `images`."""
    sizes = []
    handle = model.unet.register_forward_pre_hook(lambda m, args, kw: sizes.append(int(args[0].shape[0])),
                                                  with_kwargs=True)
    try:
        eng.generate(images)
    finally:
        handle.remove()
    return sizes


@pytest.mark.parametrize("sampler", ["lcm", "euler"])
def test_cfg_1_makes_one_unet_half_batch_per_step(tiny, sampler):
    frames = canvases(3)
    one = engine(tiny, sampler=sampler, cfg=1.0, steps=4, denoise=1.0 if sampler == "lcm" else 0.75)
    guided = engine(tiny, sampler=sampler, cfg=7.0, steps=4, denoise=1.0 if sampler == "lcm" else 0.75)
    steps = len(one.real_sigmas) - 1
    assert unet_batches(tiny, one, frames) == [3] * steps          # one call of B per step
    assert unet_batches(tiny, guided, frames) == [6] * steps       # uncond + cond: 2B per step
    assert one.describe()["unet_batch_halves"] == 1 and guided.describe()["unet_batch_halves"] == 2


def test_describe_shows_the_real_timesteps_and_sigmas(tiny):
    d = engine(tiny, steps=4, denoise=0.5).describe()
    assert d["real_timesteps"] == [499, 379, 259, 139]
    assert d["model_calls_per_frame"] == 4 and d["sampler_steps"] == 4
    np.testing.assert_allclose(d["real_sigmas"][:-1], tiny.sigmas.numpy()[[499, 379, 259, 139]], atol=1e-6)


def test_warnings_for_high_cfg_and_a_model_that_is_not_few_step(tiny):
    s = Img2ImgSettings(sampler="lcm", cfg=7.0)
    ws = fewstep.warnings_for(s, tiny)
    assert len(ws) == 2 and "CFG 7" in ws[0] and "does not look few-step" in ws[1]
    assert fewstep.warnings_for(Img2ImgSettings(sampler="lcm", cfg=1.5), tiny)[0].startswith("sampler lcm with a model")
    assert fewstep.warnings_for(Img2ImgSettings(sampler="euler", cfg=7.0), tiny) == []

    class LcmLora:
        scheduler_config = {"_class_name": "EulerDiscreteScheduler"}
        spec = "sd15.safetensors"
        loras = [("/loras/lcm-lora-sdv1-5.safetensors", 1.0)]

    assert fewstep.warnings_for(Img2ImgSettings(sampler="tcd", cfg=1.0), LcmLora()) == []
