"""ControlNet guidance (issue 14) on the tiny model and tiny ControlNets, loaded through the real loading code."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vid2vid.config import Img2ImgSettings
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion.controlnet import ControlUnit, load_controlnet, step_index, window
from vid2vid.diffusion.denoiser import sigma_to_timestep
from vid2vid.diffusion.engine import Img2ImgEngine

W = H = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tiny tensors: one thread is fastest


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model):
    """The tiny SD model (folder) and tiny ControlNets: folder, single .safetensors, .pth, another seed, SDXL."""
    from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet

    root = tmp_path_factory.mktemp("cn")
    return {"model": tiny_model,
            "cn": make_tiny_controlnet(root / "cn"),
            "cn_file": make_tiny_controlnet(root, single_file=True),
            "cn_pth": make_tiny_controlnet(root, single_file=True, suffix=".pth"),
            "cn2": make_tiny_controlnet(root / "cn2", seed=7),
            "cn_xl": make_tiny_controlnet(root / "cn-xl", config="tiny-sdxl"),
            "root": root}


@pytest.fixture(scope="module")
def tiny(files):
    from vid2vid.diffusion.loading import load_model

    return load_model(str(files["model"]), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def nets(files):
    return {k: load_controlnet(str(files[k])) for k in ("cn", "cn_file", "cn_pth", "cn2")}


def settings(**kw) -> Img2ImgSettings:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=8, denoise=0.75,
                width=W, height=H, sampler="euler", schedule="exponential")
    base.update(kw)
    return Img2ImgSettings(**base)


def frames(n: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for i in range(n):
        img = np.stack([xx / W, yy / H, 0.5 + 0 * xx], axis=2)
        img[10 + 3 * i:30 + 3 * i, 20:40] = rng.uniform(0.2, 0.9, 3)
        out.append(img.astype(np.float32))
    return out


def control(n: int = 2, kind: str = "square") -> list[np.ndarray]:
    """Control images (uint8): white outlines of a square, or of a circle."""
    out = []
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(n):
        if kind == "square":
            dy, dx = np.abs(yy - 24 - i), np.abs(xx - 30)
            m = (dy < 12) & (dx < 12) & ~((dy < 10) & (dx < 10))
        else:
            r = np.hypot(yy - 40, xx - 20)
            m = (r > 10) & (r < 13)
        out.append(np.repeat((m * 255).astype(np.uint8)[..., None], 3, axis=2))
    return out


def run(model, units=None, controls=None, **kw) -> list[np.ndarray]:
    eng = Img2ImgEngine(model, settings(**kw), controlnets=units)
    per_frame = None if controls is None else [list(c) for c in zip(*controls)]
    return eng.generate(frames(len(controls[0]) if controls else 2), controls=per_frame)


def diff(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


# ---------------------------------------------------------------- the window over the real schedule

def test_window_follows_diffusers_rule_on_hand_made_cases():
    # N = 6 steps, start 0.25, end 0.75: i/6 >= 0.25 -> i >= 2; (i+1)/6 <= 0.75 -> i <= 3
    assert window(6, 0.25, 0.75) == [False, False, True, True, False, False]
    assert window(4, 0.0, 1.0) == [True] * 4
    assert window(4, 0.0, 0.5) == [True, True, False, False]
    assert window(5, 0.5, 1.0) == [False, False, False, True, True]        # 2/5 < 0.5, 3/5 >= 0.5
    real = np.array([1.2, 0.8, 0.5, 0.3, 0.0])
    assert [step_index(s, real) for s in (1.2, 0.8, 0.5, 0.3, 0.79999)] == [0, 1, 2, 3, 1]


# ---------------------------------------------------------------- engine

def test_scale_zero_gives_exactly_the_frames_without_controlnet(tiny, nets):
    plain = run(tiny)
    zero = run(tiny, [ControlUnit(nets["cn"], scale=0.0)], [control()])
    assert all(np.array_equal(a, b) for a, b in zip(plain, zero))
    full = run(tiny, [ControlUnit(nets["cn"], scale=1.0)], [control()])
    assert diff(plain, full) > 0.02                    # the tiny ControlNet really steers


def test_another_control_image_gives_other_frames(tiny, nets):
    unit = [ControlUnit(nets["cn"], scale=1.0)]
    a = run(tiny, unit, [control(kind="square")])
    b = run(tiny, unit, [control(kind="circle")])
    assert diff(a, b) > 0.02
    again = run(tiny, unit, [control(kind="square")])
    assert all(np.array_equal(x, y) for x, y in zip(a, again))


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_outside_the_window_the_controlnet_is_not_called(tiny, nets, sampler):
    net = nets["cn"]
    seen: list[float] = []
    handle = net.register_forward_hook(lambda m, args, out: seen.append(float(args[1].reshape(-1)[0])))
    try:
        eng = Img2ImgEngine(tiny, settings(steps=8, sampler=sampler),
                            controlnets=[ControlUnit(net, scale=1.0, start=0.25, end=0.75)])
        eng.generate(frames(1), controls=[control(1)])
    finally:
        handle.remove()
    real = eng.real_sigmas
    assert len(real) - 1 == 7                          # 8 steps at denoise 0.75
    # N = 7, start 0.25, end 0.75: i/7 >= 0.25 -> i >= 2; (i+1)/7 <= 0.75 -> i <= 4: steps 2, 3, 4.
    # Heun calls the model at sigma_i (predictor of step i) and at sigma_(i+1) (corrector of step i)
    want_sigmas = [real[2], real[3], real[4]] * (1 if sampler == "euler" else 2)
    want = sorted(float(sigma_to_timestep(torch.tensor([s]), eng.denoiser.log_sigmas)[0]) for s in want_sigmas)
    assert sorted(seen) == pytest.approx(want, abs=1e-4)
    assert eng.describe()["controlnets"][0]["steps"] == [2, 3, 4]


def test_two_controlnets_equal_diffusers_multicontrolnet(tiny, nets):
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    units = [ControlUnit(nets["cn"], scale=0.7), ControlUnit(nets["cn2"], scale=1.3)]
    eng = Img2ImgEngine(tiny, settings(), controlnets=units)
    imgs = [control(2, "square"), control(2, "circle")]
    cond = eng.control.bind([list(c) for c in zip(*imgs)])
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, 4, H // 8, W // 8, generator=g)
    t = torch.tensor([600.0] * 4)
    emb = torch.randn(4, 77, 32, generator=g)
    sigma = torch.tensor([float(eng.real_sigmas[0])] * 2)
    ours = cond.residuals(z, t, emb, None, sigma)
    ref_imgs = [torch.from_numpy(np.stack(c).astype(np.float32) / 255).permute(0, 3, 1, 2).repeat(2, 1, 1, 1)
                for c in imgs]
    multi = MultiControlNetModel([nets["cn"], nets["cn2"]])
    with torch.no_grad():
        down, mid = multi(z, t, emb, controlnet_cond=ref_imgs, conditioning_scale=[0.7, 1.3], return_dict=False)
    assert len(ours["down_block_additional_residuals"]) == len(down)
    for a, b in zip(ours["down_block_additional_residuals"], down):
        assert (a - b).abs().max() <= 1e-5
    assert (ours["mid_block_additional_residual"] - mid).abs().max() <= 1e-5
    # and the guided model output is the UNet's with those residuals, uncond and cond batched
    x = torch.randn(2, 4, H // 8, W // 8, generator=g)
    with torch.no_grad():
        got = eng.denoiser.model_output(x, sigma, cond)
        d = eng.denoiser
        c_in = (sigma ** 2 + 1).rsqrt().view(-1, 1, 1, 1)
        zz = torch.cat([x * c_in] * 2)
        tt = torch.cat([sigma_to_timestep(sigma, d.log_sigmas)] * 2)
        ee = torch.cat([d.uncond.expand(2, -1, -1), d.cond.expand(2, -1, -1)])
        down, mid = multi(zz, tt, ee, controlnet_cond=ref_imgs, conditioning_scale=[0.7, 1.3], return_dict=False)
        out = tiny.unet(zz, tt, encoder_hidden_states=ee, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid, return_dict=False)[0]
        want = out[:2] + (out[2:] - out[:2]) * d.cfg_scale
    # guidance multiplies the halves' float32 differences by up to 2 * cfg - 1 = 13
    assert (got - want).abs().max() <= 1e-5 * (2 * d.cfg_scale - 1)


def test_single_file_controlnet_gives_the_frames_of_its_folder(tiny, nets):
    imgs = [control()]
    folder = run(tiny, [ControlUnit(nets["cn"])], imgs)
    for key in ("cn_file", "cn_pth"):
        single = run(tiny, [ControlUnit(nets[key])], imgs)
        assert all(np.array_equal(a, b) for a, b in zip(folder, single)), key


def test_engine_needs_canvas_sized_control_images_per_frame(tiny, nets):
    eng = Img2ImgEngine(tiny, settings(), controlnets=[ControlUnit(nets["cn"])])
    with pytest.raises(ValueError, match="one control image"):
        eng.repaint(frames(1))
    with pytest.raises(ValueError, match="not the canvas"):
        eng.repaint(frames(1), controls=[[np.zeros((32, 32, 3), np.uint8)]])


# ---------------------------------------------------------------- loading and families

def test_family_mismatch_is_one_clear_error(tiny, files):
    xl = load_controlnet(str(files["cn_xl"]))
    with pytest.raises(BadInput, match=r"made for SDXL \(tiny test model\), but the model is SD 1.x"):
        Img2ImgEngine(tiny, settings(), controlnets=[ControlUnit(xl, name="xl")])


def test_foreign_and_missing_controlnet_files_are_refused(files, tmp_path):
    with pytest.raises(ModelNotFound, match="not found"):
        load_controlnet(str(tmp_path / "nope.safetensors"))
    from vid2vid.diffusion.tiny import make_tiny_model

    sd = make_tiny_model(tmp_path, single_file=True)
    with pytest.raises(BadInput, match="Stable Diffusion checkpoint, not a ControlNet"):
        load_controlnet(str(sd))
    with pytest.raises(BadInput, match="Stable Diffusion model folder, not a ControlNet"):
        load_controlnet(str(files["model"]))
    odd = tmp_path / "odd.safetensors"
    from safetensors.torch import save_file

    save_file({"something.weight": torch.zeros(2)}, str(odd))
    with pytest.raises(BadInput, match="is not a ControlNet"):
        load_controlnet(str(odd))
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    with pytest.raises(BadInput, match="unknown file type"):
        load_controlnet(str(txt))
    with pytest.raises(ModelNotFound, match="offline"):
        load_controlnet("someone/controlnet-that-is-not-cached")


def test_sdxl_controlnet_steers_the_sdxl_model_and_sums_like_diffusers(files, tmp_path):
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet

    xl_model = load_model(str(make_tiny_model(tmp_path / "xl", config="tiny-sdxl")), device="cpu", dtype="float32")
    folder = load_controlnet(str(files["cn_xl"]))
    single = load_controlnet(str(make_tiny_controlnet(tmp_path, single_file=True, config="tiny-sdxl")))
    plain = run(xl_model)
    steered = run(xl_model, [ControlUnit(folder)], [control()])
    assert diff(plain, steered) > 0.02
    assert all(np.array_equal(a, b) for a, b in zip(steered, run(xl_model, [ControlUnit(single)], [control()])))
    eng = Img2ImgEngine(xl_model, settings(), controlnets=[ControlUnit(folder, 0.5), ControlUnit(single, 1.5)])
    cond = eng.control.bind([list(c) for c in zip(control(1), control(1, "circle"))])
    g = torch.Generator().manual_seed(5)
    z, t = torch.randn(2, 4, H // 8, W // 8, generator=g), torch.tensor([400.0, 400.0])
    emb = torch.randn(2, 77, 96, generator=g)
    added = {"text_embeds": torch.randn(2, 64, generator=g),
             "time_ids": torch.tensor([[H, W, 0, 0, H, W]] * 2, dtype=torch.float32)}
    ours = cond.residuals(z, t, emb, added, torch.tensor([float(eng.real_sigmas[0])]))
    imgs = [torch.from_numpy(np.stack(c).astype(np.float32) / 255).permute(0, 3, 1, 2).repeat(2, 1, 1, 1)
            for c in (control(1), control(1, "circle"))]
    with torch.no_grad():
        down, mid = MultiControlNetModel([folder, single])(z, t, emb, controlnet_cond=imgs,
                                                           conditioning_scale=[0.5, 1.5], added_cond_kwargs=added,
                                                           return_dict=False)
    for a, b in zip(ours["down_block_additional_residuals"], down):
        assert (a - b).abs().max() <= 1e-5
    assert (ours["mid_block_additional_residual"] - mid).abs().max() <= 1e-5


# ---------------------------------------------------------------- with cached deep features

@pytest.mark.parametrize("windows", [[(0.5, 1.0)], [(0.0, 0.5), (0.0, 1.0)], [(0.25, 0.75), (0.5, 1.0)]])
def test_cached_deep_features_do_not_cross_a_controlnets_window(tiny, nets, windows):
    """cache:16 reuses a full call's deep features for every later evaluation; where the nets in force change
    (one net's window opening or shutting, even while another stays on) a full call must run, or the deep
    blocks would carry the old nets' residuals on. Reference: the sampler cut at those steps into separate
    cached samplings (each starts with a full call), which cache:16 must equal."""
    from vid2vid.diffusion import deepcache, samplers

    s = settings(accel=["cache:16"], denoise=1.0)
    units = [ControlUnit(nets[k], scale=1.0, start=a, end=b) for k, (a, b) in zip(("cn", "cn2"), windows)]
    engine = Img2ImgEngine(tiny, s, controlnets=units)
    try:
        images = [[engine.fit(c.astype(np.float32) / 255) for c in cs] for cs in zip(control(), control())]
        cond = engine.bind_control([f[:len(units)] for f in images], 2)
        init = engine.encode([engine.fit(f) for f in frames()])
        got = engine.sample(init, control=cond)
        active = [tuple(engine.control.active(float(sg))) for sg in engine.real_sigmas[:-1]]
        cuts = [0] + [i for i in range(1, len(active)) if active[i] != active[i - 1]] + [len(active)]
        assert len(cuts) > 2
        noise = samplers.BatchNoise([s.seed] * 2, tuple(init.shape[1:]), engine.device, torch.float32)
        sigmas = torch.tensor(engine.real_sigmas, dtype=torch.float32)
        x = init + noise() * (s.init_noise * float(engine.real_sigmas[0]))
        denoise = engine.denoiser.masked(None, init, cond)
        with torch.no_grad():
            for a, b in zip(cuts, cuts[1:]):
                with deepcache.caching(16) as wrap:
                    x = engine.sampler(wrap(denoise), x, sigmas[a:b + 1], noise)
    finally:
        engine.close()
    assert torch.equal(got, x)
