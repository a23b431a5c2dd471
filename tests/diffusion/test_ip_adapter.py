"""IP-Adapter on the tiny model: tiny adapters and image encoders written to disk and loaded through the real code."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vid2vid.config import Img2ImgSettings
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion import image_encoder as ie
from vid2vid.diffusion import ip_adapter as ipa
from vid2vid.diffusion.denoiser import sigma_to_timestep
from vid2vid.diffusion.engine import Img2ImgEngine
from vid2vid.diffusion.ip_attention import IPAttnProcessor, IPUnit

W = H = 64
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model):
    from vid2vid.diffusion.tiny_ip_adapter import make_tiny_ip_adapter

    root = tmp_path_factory.mktemp("ipa")
    return {"model": tiny_model, "ipa": make_tiny_ip_adapter(root / "ipa"),
            "plus": make_tiny_ip_adapter(root / "plus", plus=True),
            "bin": make_tiny_ip_adapter(root / "bin", as_bin=True),
            "xl": make_tiny_ip_adapter(root / "xl", config="tiny-sdxl"), "root": root}


@pytest.fixture(scope="module")
def tiny(files):
    from vid2vid.diffusion.loading import load_model

    return load_model(str(files["model"]), device="cpu", dtype="float32")


def settings(**kw) -> Img2ImgSettings:
    base = dict(model="tiny", prompt="a red fox", negative="blurry", steps=8, denoise=0.75, width=W, height=H)
    base.update(kw)
    return Img2ImgSettings(**base)


def frames(n: int = 2) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for i in range(n):
        img = np.stack([xx / W, yy / H, 0.5 + 0 * xx], axis=2)
        img[10 + 3 * i:30 + 3 * i, 20:40] = (0.8, 0.3, 0.2)
        out.append(img)
    return out


def picture(seed: int) -> np.ndarray:
    """A reference picture: smooth colours (a random field blurred), 48x40."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 1, (6, 5, 3)).astype(np.float32)
    return np.kron(small, np.ones((8, 8, 1), np.float32))


def unit(spec, seed: int = 1, scale: float = 1.0, **kw) -> IPUnit:
    adapter = ipa.read_adapter(str(spec))
    enc, proc = ie.load_image_encoder(ie.find_image_encoder(adapter))
    cond, uncond = ie.embed(enc, proc, adapter.kind, [picture(seed)])
    return IPUnit(adapter, cond, uncond, scale, name=str(spec), **kw)


def run(model, units=None, **kw) -> list[np.ndarray]:
    eng = Img2ImgEngine(model, settings(**kw), ip_adapters=units)
    try:
        return eng.generate(frames())
    finally:
        eng.close()


def diff(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def test_scale_zero_gives_exactly_the_frames_without_adapter(tiny, files):
    plain = run(tiny)
    assert all(np.array_equal(a, b) for a, b in zip(plain, run(tiny, [unit(files["ipa"], scale=0.0)])))
    assert diff(plain, run(tiny, [unit(files["ipa"])])) > 0.05          # the tiny adapter really steers
    # closing the engine takes the processors off: the model paints as before
    assert all(np.array_equal(a, b) for a, b in zip(plain, run(tiny)))


@pytest.mark.parametrize("kind", ["ipa", "plus"])
def test_another_reference_gives_other_frames(tiny, files, kind):
    a = run(tiny, [unit(files[kind], seed=1)])
    b = run(tiny, [unit(files[kind], seed=2)])
    assert diff(a, b) > 0.02
    assert all(np.array_equal(x, y) for x, y in zip(a, run(tiny, [unit(files[kind], seed=1)])))


def test_bin_file_gives_the_frames_of_the_safetensors_file(tiny, files):
    adapter = ipa.read_adapter(str(files["bin"]))
    assert adapter.path.suffix == ".bin" and adapter.kind == "embeds"
    assert all(np.array_equal(x, y) for x, y in zip(run(tiny, [unit(files["ipa"])]), run(tiny, [unit(files["bin"])])))


@pytest.mark.parametrize("kind, weight", [("ipa", "ip-adapter_tiny-sd1.safetensors"),
                                          ("plus", "ip-adapter-plus_tiny-sd1.safetensors")])
def test_engine_equals_diffusers_ip_adapter_pipeline(files, kind, weight):
    """Our processors and tokens against diffusers' `load_ip_adapter` + `ip_adapter_image_embeds`, same sigmas."""
    from diffusers import EulerDiscreteScheduler

    from vid2vid.diffusion.loading import load_model

    ours_model = load_model(str(files["model"]), device="cpu", dtype="float32")
    u = unit(files[kind], scale=0.8)
    eng = Img2ImgEngine(ours_model, settings(), ip_adapters=[u])
    init = eng.encode([eng.fit(frames(1)[0])])
    ours = eng.sample(init)
    x = torch.randn(1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor([float(eng.real_sigmas[1])])
    with torch.no_grad():
        ours_out = eng.denoiser.model_output(x, sigma)
    eng.close()
    theirs_model = load_model(str(files["model"]), device="cpu", dtype="float32")
    pipe = theirs_model.to_pipeline(EulerDiscreteScheduler.from_config(theirs_model.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(str(files[kind]), subfolder="", weight_name=weight, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(0.8)
    cond, uncond = eng.embeddings[:2]
    embeds = [torch.cat([u.uncond, u.cond])[:, None]]          # [negative, positive] x 1 image
    with torch.no_grad():
        ref = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, image=init, strength=1.0,
                   sigmas=[float(v) for v in eng.real_sigmas], guidance_scale=7.0, output_type="latent",
                   generator=torch.Generator("cpu").manual_seed(eng.settings.seed),
                   ip_adapter_image_embeds=embeds).images
        # one guided model call, the way the pipeline makes it
        d = eng.denoiser
        c_in = (sigma ** 2 + 1).rsqrt().view(-1, 1, 1, 1)
        tt = torch.cat([sigma_to_timestep(sigma, d.log_sigmas)] * 2)
        image_tokens = pipe.unet.encoder_hid_proj(embeds)
        out = pipe.unet(torch.cat([x * c_in] * 2), tt, encoder_hidden_states=torch.cat([d.uncond, d.cond]),
                        added_cond_kwargs={"image_embeds": embeds}, return_dict=False)[0]
        want = out[:1] + (out[1:] - out[:1]) * d.cfg_scale
    assert image_tokens[0].shape[-2] == 4
    assert (ours_out - want).abs().max() <= 1e-5 * (2 * d.cfg_scale - 1)   # guidance multiplies float32 noise
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()                # 8 steps: relative to the latents


@pytest.mark.parametrize("kind", ["ipa", "plus"])
def test_embedding_equals_diffusers_prepare_ip_adapter_image_embeds(files, kind):
    from PIL import Image

    from vid2vid.core.imageops import to_uint8
    from vid2vid.diffusion.loading import load_model

    model = load_model(str(files["model"]), device="cpu", dtype="float32")
    pipe = model.to_pipeline()
    weight = next(p.name for p in files[kind].iterdir() if p.suffix == ".safetensors")
    pipe.load_ip_adapter(str(files[kind]), subfolder="", weight_name=weight, image_encoder_folder=None)
    u = unit(files[kind], seed=3)
    pipe.image_encoder, pipe.feature_extractor = ie.load_image_encoder(str(files[kind] / "image_encoder"))
    with torch.no_grad():
        got = pipe.prepare_ip_adapter_image_embeds(Image.fromarray(to_uint8(picture(3))), None, "cpu", 1, True)[0]
    assert torch.equal(got[1:, 0], u.cond) and torch.equal(got[:1, 0], u.uncond)


def test_folder_of_pictures_averages_their_embeddings(files):
    adapter = ipa.read_adapter(str(files["ipa"]))
    enc, proc = ie.load_image_encoder(ie.find_image_encoder(adapter))
    one, _ = ie.embed(enc, proc, adapter.kind, [picture(1)])
    two, _ = ie.embed(enc, proc, adapter.kind, [picture(2)])
    both, uncond = ie.embed(enc, proc, adapter.kind, [picture(1), picture(2)])
    torch.testing.assert_close(both, (one + two) / 2, rtol=0, atol=1e-6)
    assert not uncond.any()


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_outside_the_window_the_adapter_is_not_computed(tiny, files, sampler):
    eng = Img2ImgEngine(tiny, settings(sampler=sampler), ip_adapters=[unit(files["ipa"], start=0.25, end=0.75)])
    seen: list[int] = []
    proc = next(p for p in tiny.unet.attn_processors.values() if isinstance(p, IPAttnProcessor))
    handle = proc.to_k_ip[0].register_forward_hook(lambda m, a, o: seen.append(1))
    calls: list[float] = []
    inner = eng.denoiser._unet

    def counting(z, t, emb, pooled=None, control=None, sigma=None, rows=()):
        calls.append(float(sigma.reshape(-1)[0]))
        return inner(z, t, emb, pooled, control, sigma, rows)

    eng.denoiser._unet = counting
    try:
        eng.generate(frames(1))
    finally:
        handle.remove()
        eng.close()
    from vid2vid.diffusion.controlnet import step_index

    active = [s for s in calls if step_index(s, eng.real_sigmas) in (2, 3, 4)]     # N = 7: steps 2..4
    assert 0 < len(active) < len(calls) and len(seen) == len(active)


def test_cross_frame_attention_and_ip_adapter_coexist(tiny, files):
    from vid2vid.diffusion.crossframe import CrossFrame, CrossFrameProcessor

    stock = {k: type(v) for k, v in tiny.unet.attn_processors.items()}
    eng = Img2ImgEngine(tiny, settings(), ip_adapters=[unit(files["ipa"])])
    xf = CrossFrame(tiny.unet, "anchor", "all")
    procs = tiny.unet.attn_processors
    assert all(isinstance(p, IPAttnProcessor) for k, p in procs.items() if k.endswith("attn2.processor"))
    assert all(isinstance(p, CrossFrameProcessor) for k, p in procs.items() if k.endswith("attn1.processor"))
    canvases = [eng.fit(f) for f in frames(2)]
    a = xf.run(1, (), True, eng.repaint, canvases[:1])
    b = xf.run(None, (1,), False, eng.repaint, canvases[1:])
    eng.close()                       # the adapter leaves; cross-frame attention stays
    assert all(isinstance(p, CrossFrameProcessor) for k, p in tiny.unet.attn_processors.items()
               if k.endswith("attn1.processor"))
    plain = Img2ImgEngine(tiny, settings())
    b0 = xf.run(None, (1,), False, plain.repaint, canvases[1:])       # reads frame 1 as painted with the adapter
    xf.close()
    assert {k: type(v) for k, v in tiny.unet.attn_processors.items()} == stock
    assert diff(b, b0) > 0.02 and diff(a, run(tiny)[:1]) > 0.02


# ---------------------------------------------------------------- bad input

def test_adapter_for_another_family_is_refused(tiny, files):
    with pytest.raises(BadInput, match=r"made for SDXL \(tiny test model\), but the model is SD 1.x"):
        Img2ImgEngine(tiny, settings(), ip_adapters=[unit(files["xl"])])
    assert not any(isinstance(p, IPAttnProcessor) for p in tiny.unet.attn_processors.values())


def test_missing_image_encoder_says_where_it_looked(files, tmp_path):
    import shutil

    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(files["ipa"] / "ip-adapter_tiny-sd1.safetensors", lone)
    adapter = ipa.read_adapter(str(lone))
    with pytest.raises(ModelNotFound, match=r"no CLIP image encoder found .*looked in .*lone/image_encoder.*"
                                            r"clip_vision.*image_encoder in \[\[img2img.ip_adapter\]\]"):
        ie.find_image_encoder(adapter)


def test_comfyui_layout_finds_a_single_file_encoder(files, tmp_path):
    import shutil

    models = tmp_path / "ComfyUI" / "models"
    (models / "ipadapter").mkdir(parents=True)
    (models / "clip_vision").mkdir()
    shutil.copy(files["ipa"] / "ip-adapter_tiny-sd1.safetensors", models / "ipadapter")
    from safetensors.torch import load_file, save_file

    state = load_file(str(files["ipa"] / "image_encoder" / "model.safetensors"))
    # a single file has no config: it is read off the shapes; the tiny encoder's activation and heads are not ViT-H's
    save_file(state, str(models / "clip_vision" / "tiny-vit.safetensors"),
              metadata={"hidden_act": "quick_gelu", "num_attention_heads": "4"})
    adapter = ipa.read_adapter(str(models / "ipadapter" / "ip-adapter_tiny-sd1.safetensors"))
    found = ie.find_image_encoder(adapter)
    assert found.endswith("tiny-vit.safetensors")
    enc, proc = ie.load_image_encoder(found)
    ref_enc, _ = ie.load_image_encoder(str(files["ipa"] / "image_encoder"))
    assert enc.config.num_hidden_layers == 2 and enc.config.image_size == 32
    got = ie.embed(enc, proc, "embeds", [picture(4)])[0]
    assert torch.equal(got, ie.embed(ref_enc, proc, "embeds", [picture(4)])[0])


def test_foreign_files_are_refused(files, tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "ip-adapter_x.safetensors"
    save_file({"foo.weight": torch.zeros(2)}, str(other))
    with pytest.raises(BadInput, match="is not an IP-Adapter"):
        ipa.read_adapter(str(other))
    with pytest.raises(ModelNotFound, match="no such file or folder"):
        ipa.read_adapter(str(tmp_path / "nothing.safetensors"))
    (tmp_path / "two").mkdir()
    for n in ("ip-adapter_a.bin", "ip-adapter_b.bin"):
        (tmp_path / "two" / n).write_bytes(b"")
    with pytest.raises(BadInput, match="must hold one IP-Adapter file"):
        ipa.read_adapter(str(tmp_path / "two"))
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a file")
    with pytest.raises(BadInput, match="cannot read IP-Adapter"):
        ipa.read_adapter(str(bad))


def test_encoder_of_another_width_is_refused(files):
    adapter = ipa.read_adapter(str(files["plus"]))
    enc, _ = ie.load_image_encoder(str(files["ipa"] / "image_encoder"))
    ie.check_encoder_fits(adapter, enc, "x")           # same tiny encoder: fits
    adapter.embed_width = 1280
    with pytest.raises(BadInput, match="gives 32-wide embeddings but IP-Adapter .* takes 1280"):
        ie.check_encoder_fits(adapter, enc, "{img2img.ip_adapter}")


def test_sdxl_adapter_equals_diffusers_on_the_tiny_sdxl_model(files, tmp_path):
    """SDXL: the image tokens join the pooled text and size conditioning; one guided call as diffusers makes it."""
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model

    folder = make_tiny_model(tmp_path / "xl", config="tiny-sdxl")
    ours, theirs = (load_model(str(folder), device="cpu", dtype="float32") for _ in range(2))
    u = unit(files["xl"], scale=0.9)
    eng = Img2ImgEngine(ours, settings(), ip_adapters=[u])
    plain = Img2ImgEngine(theirs, settings())
    x = torch.randn(1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(6))
    sigma = torch.tensor([float(eng.real_sigmas[0])])
    with torch.no_grad():
        got = eng.denoiser.model_output(x, sigma)
        assert (got - plain.denoiser.model_output(x, sigma)).abs().max() > 1e-3      # the adapter steers SDXL
        pipe = theirs.to_pipeline()
        pipe.load_ip_adapter(str(files["xl"]), subfolder="", weight_name="ip-adapter_tiny-sdxl.safetensors",
                             image_encoder_folder=None)
        pipe.set_ip_adapter_scale(0.9)
        d = plain.denoiser
        zz = torch.cat([x * (sigma ** 2 + 1).rsqrt().view(-1, 1, 1, 1)] * 2)
        tt = torch.cat([sigma_to_timestep(sigma, d.log_sigmas)] * 2)
        added = {"text_embeds": torch.cat([d.pooled_uncond, d.pooled_cond]), "time_ids": d.time_ids.expand(2, -1),
                 "image_embeds": [torch.cat([u.uncond, u.cond])[:, None]]}
        out = pipe.unet(zz, tt, encoder_hidden_states=torch.cat([d.uncond, d.cond]), added_cond_kwargs=added,
                        return_dict=False)[0]
        want = out[:1] + (out[1:] - out[:1]) * d.cfg_scale
    eng.close()
    assert (got - want).abs().max() <= 1e-5 * (2 * d.cfg_scale - 1)
