"""The fast path on the tiny model: separate and tiny VAEs, still frames, the fast preset, CUDA tuning."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from vid2vid.core.errors import BadInput, ModelNotFound

W = H = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tiny tensors: one thread is fastest


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The tiny model, and one tiny VAE in every layout (folder, single file, TAESD's .pth pair)."""
    from vid2vid.diffusion import tiny

    root = tmp_path_factory.mktemp("fast")
    ref = tiny.build_tiny_vae(seed=3)
    vae_dir = root / "tiny-vae"
    ref.save_pretrained(str(vae_dir))
    single = root / "tiny-taesd.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(single))
    tiny.write_taesd_pth(ref, root / "pth")
    return {"model": tiny.make_tiny_model(root / "model"), "ref": ref, "folder": vae_dir, "single": single,
            "pth": root / "pth", "pth_file": root / "pth" / "taesd_decoder.pth", "root": root}


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (H, W, 3)).astype(np.float32)


# ---------------------------------------------------------------- VAEs

@pytest.mark.parametrize("layout", ["folder", "single", "pth", "pth_file"])
def test_tiny_vae_round_trips_a_frame_through_the_loader(files, layout):
    from vid2vid.diffusion import vae as vae_parts
    from vid2vid.diffusion.engine import images_to_tensor
    from vid2vid.diffusion.loading import load_model

    model = load_model(str(files["model"]), device="cpu", dtype="float32", vae=str(files[layout]))
    assert vae_parts.is_tiny(model.vae) and model.vae_scale_factor == 8 and model.vae_scaling_factor == 1.0
    x = images_to_tensor([frame()])
    with torch.no_grad():
        got = model.vae.decode(vae_parts.latents_of(model.vae, x)).sample
        want = files["ref"].decode(vae_parts.latents_of(files["ref"], x)).sample
    assert got.shape == (1, 3, H, W)
    assert torch.equal(got, want)                     # the very weights that were written


def test_engine_runs_with_the_tiny_vae_and_it_changes_the_frames(files):
    from vid2vid.config import Img2ImgSettings
    from vid2vid.diffusion.engine import Img2ImgEngine
    from vid2vid.diffusion.loading import load_model

    s = Img2ImgSettings(model=str(files["model"]), prompt="a fox", width=W, height=H, steps=2, denoise=0.5,
                        sampler="lcm", cfg=1.0)
    own = Img2ImgEngine(load_model(str(files["model"]), device="cpu", dtype="float32"), s)
    tiny = Img2ImgEngine(load_model(str(files["model"]), device="cpu", dtype="float32", vae=str(files["folder"])),
                         dataclasses.replace(s, vae=str(files["folder"])))
    a, b = own.generate([frame()])[0], tiny.generate([frame()])[0]
    assert a.shape == b.shape == (H, W, 3) and np.isfinite(b).all()
    assert np.abs(a - b).max() > 0.05
    assert tiny.encode([frame()]).shape == (1, 4, H // 8, W // 8)


def test_full_vae_single_file_in_the_original_layout(files, tmp_path):
    from safetensors.torch import save_file

    from vid2vid.diffusion import tiny
    from vid2vid.diffusion.loading import load_model

    kl = tiny.build_tiny_components(seed=5)["vae"]
    levels = len(kl.config.block_out_channels)
    sd = {}
    for k, v in kl.state_dict().items():
        name = tiny.vae_key_to_original(k, levels).removeprefix("first_stage_model.")
        sd[name] = v[:, :, None, None].contiguous() if ".mid.attn_1." in name and v.ndim == 2 else v.contiguous()
    path = tmp_path / "vae-ft-tiny.safetensors"
    save_file(sd, str(path))
    model = load_model(str(files["model"]), device="cpu", dtype="float32", vae=str(path))
    for a, b in zip(model.vae.state_dict().values(), kl.state_dict().values()):
        assert torch.equal(a, b)


def test_vae_errors(files, tmp_path):
    from diffusers import AutoencoderKL, AutoencoderTiny

    from vid2vid.diffusion import tiny
    from vid2vid.diffusion.loading import load_model

    def load(spec):
        return load_model(str(files["model"]), device="cpu", dtype="float32", vae=str(spec))

    wide = tmp_path / "taesd3"
    AutoencoderTiny.from_config({**tiny.TINY_VAE_CONFIG, "latent_channels": 16}).save_pretrained(str(wide))
    with pytest.raises(BadInput, match="16 latent channels, the model's UNet takes 4"):
        load(wide)
    xl = tmp_path / "sdxl-vae"
    cfg = dict(files["ref"].config)
    kl = tiny.build_tiny_components()["vae"]
    AutoencoderKL.from_config({**{k: v for k, v in dict(kl.config).items() if not k.startswith("_")},
                               "scaling_factor": 0.13025}).save_pretrained(str(xl))
    with pytest.raises(BadInput, match="SDXL VAE but the model is SD 1.x/2.x"):
        load(xl)
    tiny.write_taesd_pth(files["ref"], tmp_path / "xl", prefix="taesdxl")
    with pytest.raises(BadInput, match="SDXL VAE"):
        load(tmp_path / "xl")
    assert cfg["latent_channels"] == 4
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "taesd_decoder.pth").write_bytes((files["pth"] / "taesd_decoder.pth").read_bytes())
    with pytest.raises(ModelNotFound, match="taesd_encoder.pth is missing"):
        load(tmp_path / "lonely" / "taesd_decoder.pth")
    with pytest.raises(ModelNotFound, match="not found"):
        load(tmp_path / "nothing.safetensors")
    with pytest.raises(ModelNotFound, match="offline"):
        load("madebyollin/taesd-not-cached-here")
    junk = tmp_path / "junk.safetensors"
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(junk))
    with pytest.raises(BadInput, match="not a VAE this loader knows"):
        load(junk)


# ---------------------------------------------------------------- still frames

def still_clip() -> list[np.ndarray]:
    """Frames 1-3 alike (tiny noise), 4 a new picture, 5 like 4, 6 like 4 with slow drift, 7 new."""
    base, other, third = frame(1), frame(2), frame(3)
    rng = np.random.default_rng(9)
    jitter = lambda im: np.clip(im + rng.normal(0, 0.002, im.shape).astype(np.float32), 0, 1)  # noqa: E731
    return [base, jitter(base), jitter(base), other, jitter(other), np.clip(other + 0.03, 0, 1), third]


def test_still_plan_compares_with_the_last_painted_frame():
    from vid2vid.painting import still

    frames = still_clip()
    plan = still.plan(frames, 0.01)
    assert sorted(plan) == [2, 3, 5]
    assert plan[3][0] == 1 and plan[5][0] == 4
    assert still.plan(frames, 0.0) == {}
    assert still.painted_before(plan, 7) == {1: [2, 3], 4: [5]}


def stage_settings(model, **kw):
    from vid2vid.config import Img2ImgSettings, Settings

    st = Settings()
    st.img2img = Img2ImgSettings(model=str(model), prompt="a fox", width=W, height=H, steps=2, denoise=0.5,
                                 sampler="lcm", cfg=1.0, batch_size=2, skip_still=0.01, **kw)
    return st


def test_still_frames_are_byte_copies_listed_in_the_manifest_and_resume_bit_identically(files, workspace_factory):
    from vid2vid.core.progress import Job
    from vid2vid.painting import still
    from vid2vid.stages import img2img as stage

    src = still_clip()
    full, cut = workspace_factory(src, "still-full"), workspace_factory(src, "still-cut")
    st = stage_settings(files["model"])
    calls = []
    from vid2vid.diffusion.loading import load_model

    model = load_model(str(files["model"]), device="cpu", dtype="float32")
    hook = model.unet.register_forward_pre_hook(lambda m, a: calls.append(int(a[0].shape[0])))
    try:
        info = stage.run(full, st, Job(), model=model)
    finally:
        hook.remove()
    assert info["still_frames"] == [2, 3, 5]
    assert sum(calls) == 4 * 2                 # 4 painted frames x 2 steps, one CFG half each
    out = sorted((full.root / "img2img").glob("*.png"))
    assert len(out) == 7
    for t, prev in ((2, 1), (3, 2), (5, 4)):
        assert out[t - 1].read_bytes() == out[prev - 1].read_bytes()
    assert out[3].read_bytes() != out[2].read_bytes() and out[5].read_bytes() != out[4].read_bytes()
    lines = still.recorded(full.root / "img2img")
    assert [x["frame"] for x in lines] == [2, 3, 5] and lines[1]["reference"] == 1

    # a run that lost frames 3..7 (a still frame, a painted one, ...) resumes to the same bytes
    stage.run(cut, st, Job(), model=model)
    for name in ("00003.png", "00004.png", "00005.png", "00006.png", "00007.png"):
        (cut.root / "img2img" / name).unlink()
    cut.manifest["stages"]["img2img"]["complete"] = False
    cut.save_manifest()
    again = stage.run(cut, st, Job(), model=model)
    assert again["still_frames"] == [2, 3, 5]
    for a, b in zip(out, sorted((cut.root / "img2img").glob("*.png"))):
        assert a.read_bytes() == b.read_bytes(), a.name

    # the threshold is part of the stage key; off, every frame is painted
    st_off = stage_settings(files["model"])
    st_off.img2img.skip_still = 0.0
    info_off = stage.run(full, st_off, Job(), model=model)
    assert "still_frames" not in info_off and not (full.root / "img2img" / still.RECORD).exists()


def test_older_workspaces_keep_their_stage_key():
    from vid2vid.config import Settings
    from vid2vid.stages.img2img import stage_params

    gen = stage_params(Settings())["img2img"]
    assert not {"vae", "skip_still", "tcd_gamma", "compile"} & set(gen)


# ---------------------------------------------------------------- CLI: preset, make-tiny-model, errors

def test_config_dump_with_the_fast_preset_and_options_over_it(capsys):
    import tomllib

    from vid2vid.cli import main as cli_mod

    assert cli_mod.main(["config", "--dump", "--preset", "fast"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["img2img"]["sampler"] == "lcm" and data["img2img"]["steps"] == 4 and data["img2img"]["cfg"] == 1.0
    parser = cli_mod.build_parser()
    args = parser.parse_args(["img2img", "-w", "x", "--preset", "fast", "--steps", "6"])
    s = cli_mod.apply_options(cli_mod.base_settings(args), args, args.subparser)
    assert (s.img2img.sampler, s.img2img.steps, s.img2img.cfg) == ("lcm", 6, 1.0)
    with pytest.raises(SystemExit) as exc:
        cli_mod.main(["config", "--dump", "--preset", "slow"])
    assert exc.value.code == 2 and "'slow' is not one of: fast" in capsys.readouterr().err


def test_make_tiny_model_tiny_vae_and_a_bad_vae_on_the_cli(tmp_path, files, workspace_factory, capsys):
    from vid2vid.cli import main as cli_mod

    assert cli_mod.main(["make-tiny-model", str(tmp_path / "tv"), "--tiny-vae"]) == 0
    cfg = json.loads((tmp_path / "tv" / "config.json").read_text())
    assert cfg["_class_name"] == "AutoencoderTiny"
    assert cli_mod.main(["make-tiny-model", str(tmp_path / "one"), "--tiny-vae", "--single-file"]) == 0
    assert (tmp_path / "one" / "tiny-taesd.safetensors").is_file()
    ws = workspace_factory(name="cli-ws")
    capsys.readouterr()
    code = cli_mod.main(["img2img", "-w", str(ws.root), "--model", str(files["model"]), "--prompt", "x",
                         "--vae", str(tmp_path / "nope.pt"), "--width", str(W), "--height", str(H)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 2 and len(errors) == 1 and "nope.pt" in errors[0] and "not found" in errors[0], err
    assert ws.is_complete("extract") and len(ws.frames()) == 6 and not (ws.root / "img2img").exists()


# ---------------------------------------------------------------- GPU

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fast_path_fp16_channels_last_batched(files):
    from vid2vid.config import Img2ImgSettings
    from vid2vid.diffusion import tuning
    from vid2vid.diffusion.engine import Img2ImgEngine
    from vid2vid.diffusion.loading import load_model

    s = Img2ImgSettings(model=str(files["model"]), prompt="a fox", width=W, height=H, steps=4, denoise=0.75,
                        sampler="lcm", cfg=1.0, batch_size=4, device="cuda", dtype="float16", vae=str(files["folder"]))
    model = load_model(s.model, device="cuda", dtype="float16", vae=s.vae)
    eng = Img2ImgEngine(model, s)
    info = tuning.prepare(model)
    assert info["channels_last"] and info["sdpa_attention"] == info["attention_processors"] > 0
    out = eng.generate([frame(i) for i in range(4)])
    assert len(out) == 4 and all(np.isfinite(o).all() for o in out)
    ref = Img2ImgEngine(load_model(s.model, device="cpu", dtype="float32", vae=s.vae),
                        dataclasses.replace(s, device="cpu", dtype="float32")).generate([frame(0)])[0]
    assert np.abs(out[0] - ref).mean() < 0.02          # fp16 on the GPU follows the CPU's float32 run
