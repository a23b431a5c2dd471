"""Model loading: tiny model through folder and single file, LoRA, embeddings, errors, sigmas."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion import loading, tiny
from vid2vid.diffusion.loading import load_model, parse_weighted

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    folder = tiny.make_tiny_model(root / "folder", seed=3)
    single = tiny.make_tiny_model(root, single_file=True, seed=3)
    return folder, single


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VID2VID_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


@pytest.fixture(scope="module")
def base_model(tiny_paths):
    return load_model(str(tiny_paths[1]))


def _denoise_once(model, seed=0):
    """One UNet call on a fixed latent, timestep and prompt embedding."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(1, 4, 8, 8, generator=g)
    tok = model.tokenizer
    ids = torch.tensor([[tok.bos_token_id, 320, 330, tok.eos_token_id] + [tok.pad_token_id] * 73])
    with torch.no_grad():
        emb = model.text_encoder(ids).last_hidden_state
        return model.unet(latent, torch.tensor([500]), encoder_hidden_states=emb).sample


def test_folder_and_single_file_hold_identical_weights_and_outputs(tiny_paths, base_model):
    folder_model = load_model(str(tiny_paths[0]))
    assert folder_model.kind == "diffusers" and base_model.kind == "tiny-sd1"
    for part in ("unet", "vae", "text_encoder"):
        a, b = getattr(folder_model, part).state_dict(), getattr(base_model, part).state_dict()
        assert set(a) == set(b)
        for k in a:
            assert torch.equal(a[k], b[k]), (part, k)
    assert folder_model.tokenizer("a cat").input_ids == base_model.tokenizer("a cat").input_ids
    assert torch.equal(_denoise_once(folder_model), _denoise_once(base_model))
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64) * 2 - 1
        la = folder_model.vae.encode(x).latent_dist.mean
        lb = base_model.vae.encode(x).latent_dist.mean
    assert la.shape == (1, 4, 8, 8) and torch.equal(la, lb)      # scale factor 8 like real SD


FAMILY_KEYS = {
    "tiny-sd2": ["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
                 "cond_stage_model.model.positional_embedding"],
    "tiny-sdxl": ["conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
                  "conditioner.embedders.1.model.text_projection",
                  "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
                  "model.diffusion_model.label_emb.0.0.weight"],
}


@pytest.mark.parametrize("config", sorted(FAMILY_KEYS))
def test_sd2_and_sdxl_folder_and_single_file_match(tmp_path, config):
    """Tiny SD 2.x / SDXL: OpenCLIP text layout (fused q/k/v, transposed projection), SDXL's size
    embedding as label_emb; diffusers' own converter must read them back to the same weights."""
    folder = tiny.make_tiny_model(tmp_path / "folder", config=config)
    single = tiny.make_tiny_model(tmp_path, single_file=True, config=config)
    with safe_open(str(single), framework="pt") as f:
        keys = set(f.keys())
    assert all(k in keys for k in FAMILY_KEYS[config])
    a, b = load_model(str(folder)), load_model(str(single))
    assert b.kind == config and a.is_sdxl == b.is_sdxl == (config == "tiny-sdxl")
    if config == "tiny-sd2":
        assert a.prediction_type == b.prediction_type == "v_prediction"
    parts = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if a.is_sdxl else [])
    for part in parts:
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert set(sa) == set(sb)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), part


def test_single_file_has_original_layout_names(tiny_paths):
    with safe_open(str(tiny_paths[1]), framework="pt") as f:
        keys = set(f.keys())
        assert f.metadata()[tiny.METADATA_KEY] == "tiny-sd1"
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in keys
    assert "first_stage_model.decoder.up.0.block.0.conv1.weight" in keys
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in keys
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys
    assert not any(k.startswith(("unet.", "vae.", "down_blocks")) for k in keys)


def test_single_file_without_marker_is_detected_by_shapes(tiny_paths, tmp_path, base_model):
    from safetensors.torch import load_file

    bare = tmp_path / "renamed.safetensors"
    save_file(load_file(str(tiny_paths[1])), str(bare))           # no metadata
    model = load_model(str(bare))
    assert model.kind == "tiny-sd1"
    assert torch.equal(_denoise_once(model), _denoise_once(base_model))
    ckpt = tmp_path / "old-style.ckpt"                                # A1111's older format
    torch.save({"state_dict": load_file(str(tiny_paths[1])), "global_step": 1}, str(ckpt))
    model = load_model(str(ckpt))
    assert model.kind == "tiny-sd1"
    assert torch.equal(_denoise_once(model), _denoise_once(base_model))


def test_sigmas_follow_the_scaled_linear_betas(base_model):
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - betas)
    expected = np.sqrt((1 - ac) / ac)
    np.testing.assert_allclose(base_model.sigmas.numpy(), expected, rtol=1e-6)
    assert base_model.vae_scale_factor == 8 and base_model.vae_scaling_factor == pytest.approx(0.18215)
    t = base_model.sigma_to_timestep(torch.tensor(expected[[0, 250, 999]]))
    np.testing.assert_allclose(t.numpy(), [0, 250, 999], atol=1e-6)
    mid = np.exp((np.log(expected[10]) + np.log(expected[11])) / 2)
    assert float(base_model.sigma_to_timestep(torch.tensor([mid]))[0]) == pytest.approx(10.5, abs=1e-6)


def test_parse_weighted():
    assert parse_weighted("a/b.safetensors:0.8") == ("a/b.safetensors", 0.8)
    assert parse_weighted("a/b.safetensors") == ("a/b.safetensors", 1.0)
    assert parse_weighted("C:\\loras\\x.safetensors") == ("C:\\loras\\x.safetensors", 1.0)
    assert parse_weighted("C:\\loras\\x.safetensors:-0.5") == ("C:\\loras\\x.safetensors", -0.5)


def _text_model(model):
    """CLIP's transformer (transformers 4 nests it as .text_model; 5 does not)."""
    return getattr(model.text_encoder, "text_model", model.text_encoder)


def _kohya_lora(path, rank=4, alpha=2.0, seed=0):
    """A kohya-format LoRA on one UNet attention projection and two text-encoder projections."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, dim in (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 32),
                     ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 32),
                     ("lora_te_text_model_encoder_layers_0_self_attn_out_proj", 32)):
        tensors[f"{key}.lora_down.weight"] = torch.randn(rank, dim, generator=g)
        tensors[f"{key}.lora_up.weight"] = torch.randn(dim, rank, generator=g)
        tensors[f"{key}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return tensors


def test_lora_changes_output_by_its_weight(tiny_paths, tmp_path, base_model):
    lora = tmp_path / "style.safetensors"
    t = _kohya_lora(lora)
    zero = load_model(str(tiny_paths[1]), loras=[f"{lora}:0"])
    assert torch.equal(_denoise_once(zero), _denoise_once(base_model))
    half = load_model(str(tiny_paths[1]), loras=[f"{lora}:0.5"])
    assert not torch.allclose(_denoise_once(half), _denoise_once(base_model), atol=1e-4)
    # the fused weight is W + weight * alpha / rank * up @ down (the LoRA formula, computed here)
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    w0 = base_model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    w = half.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    expected = w0 + 0.5 * (2.0 / 4) * t[f"{key}.lora_up.weight"] @ t[f"{key}.lora_down.weight"]
    torch.testing.assert_close(w, expected, rtol=1e-5, atol=1e-5)
    key = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    q0 = _text_model(base_model).encoder.layers[0].self_attn.q_proj.weight
    q = _text_model(half).encoder.layers[0].self_attn.q_proj.weight
    expected = q0 + 0.5 * (2.0 / 4) * t[f"{key}.lora_up.weight"] @ t[f"{key}.lora_down.weight"]
    torch.testing.assert_close(q, expected, rtol=1e-5, atol=1e-5)
    assert half.loras == [(str(lora), 0.5)]
    ident = half.identity()
    assert ident["loras"][0][1] == 0.5 and ident["loras"][0][0].startswith(str(lora.resolve()))
    assert ident != zero.identity()                                   # a stage notices the changed weight


def test_textual_inversion_embedding(tiny_paths, tmp_path):
    vecs = torch.randn(2, 32, generator=torch.Generator().manual_seed(5))
    emb = tmp_path / "mystyle.safetensors"
    save_file({"emb_params": vecs}, str(emb))
    model = load_model(str(tiny_paths[1]), embeddings=[str(emb)])
    from vid2vid.diffusion.prompts import make_chunks, parse_emphasis

    chunk = make_chunks(parse_emphasis("a mystyle cat"), model.tokenizer)[0]
    table = model.text_encoder.get_input_embeddings().weight
    new_ids = [t for t in chunk.tokens if t >= 1030]                 # beyond the tiny vocabulary
    assert len(new_ids) == 2
    torch.testing.assert_close(table[new_ids], vecs)


# ---------------------------------------------------------------- bad input

def test_missing_paths_and_unknown_types(tmp_path, tiny_paths):
    with pytest.raises(ModelNotFound, match="no such file"):
        load_model(str(tmp_path / "nope.safetensors"))
    with pytest.raises(ModelNotFound, match="no such file"):
        load_model("./models/nope")
    txt = tmp_path / "model.txt"
    txt.write_text("hello")
    with pytest.raises(BadInput, match="unknown model file type"):
        load_model(str(txt))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(BadInput, match="cannot read"):
        load_model(str(broken))
    lora = tmp_path / "lora.safetensors"
    _kohya_lora(lora)
    with pytest.raises(BadInput, match="is a LoRA"):
        load_model(str(lora))
    with pytest.raises(ModelNotFound, match="LoRA file"):
        load_model(str(tiny_paths[1]), loras=[str(tmp_path / "missing.safetensors:0.5")])
    with pytest.raises(ModelNotFound, match="embedding file"):
        load_model(str(tiny_paths[1]), embeddings=[str(tmp_path / "missing.pt")])
    with pytest.raises(BadInput, match="no Stable Diffusion model given"):
        load_model("")


def test_folder_errors_name_the_missing_part(tmp_path, tiny_paths):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFound, match="model_index.json"):
        load_model(str(empty))
    shutil.copy(tiny_paths[1], empty / "x.safetensors")
    with pytest.raises(ModelNotFound, match="x.safetensors"):              # points at the checkpoint inside
        load_model(str(empty))
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        broken = tmp_path / f"no-{part}"
        shutil.copytree(tiny_paths[0], broken)
        shutil.rmtree(broken / part)
        with pytest.raises(ModelNotFound, match=f"'{part}'"):
            load_model(str(broken))
    noweights = tmp_path / "no-weights"
    shutil.copytree(tiny_paths[0], noweights)
    for f in (noweights / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelNotFound, match="'unet'.*weights"):
        load_model(str(noweights))


def test_hub_id_offline_says_how_to_get_it():
    with pytest.raises(ModelNotFound, match="offline.*download"):
        load_model("someone/not-cached-model-xyz")


HUB_IDS = ["Intel/dpt-large", "runwayml/stable-diffusion-v1-5", "a/b", "owner_1/model.v2-x", "A9/x_"]
NOT_HUB_IDS = ["", "model", "a/b/c", "/a/b", "./a", "~/a", "a/../b", "a/b..c", "owner/.hidden", "owner/-x",
               ".owner/x", "a/", "/b", "a b/c", "a\\b"]


@pytest.mark.parametrize("text", HUB_IDS + NOT_HUB_IDS)
def test_one_hub_id_check_for_models_depth_and_the_page(text, tmp_path, monkeypatch):
    from vid2vid.models.depth import resolve_depth_model
    from vid2vid.models.hub import looks_like_hub_id
    from vid2vid.ui.paths import model_spec

    hub = text in HUB_IDS
    assert looks_like_hub_id(text) is hub
    monkeypatch.chdir(tmp_path)                   # no local path by any of these names
    root = tmp_path / "cache"
    root.mkdir()
    # the three places that read a hub id agree (they kept three patterns, two of them different)
    if hub:
        assert loading.check_model_spec(text) == text
        assert resolve_depth_model(text) == ("hub", text, text)
        assert model_spec(root, text) == text
    elif text.strip():
        with pytest.raises((BadInput, ModelNotFound)):
            loading.check_model_spec(text)
        with pytest.raises((BadInput, ModelNotFound)):
            resolve_depth_model(text)
        try:
            got = model_spec(root, text)          # refused, or read as a path inside the cache
        except BadInput:
            got = None
        assert got != text


def test_config_folder_has_the_tiny_tokenizer(tmp_path):
    folder = loading.config_folder("tiny-sd1")
    vocab = json.loads((folder / "tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 1030 and vocab["<|endoftext|>"] == 1029
    assert loading.config_folder("tiny-sd1") == folder                 # built once


def test_to_pipeline_runs_img2img(base_model):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = base_model.to_pipeline()
    assert isinstance(pipe, StableDiffusionImg2ImgPipeline)
    pipe.set_progress_bar_config(disable=True)
    img = torch.rand(1, 3, 64, 64)
    out = pipe(prompt="a cat", image=img, num_inference_steps=2, strength=0.5, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 64, 64, 3) and np.isfinite(out).all()


def test_cli_make_tiny_model(tmp_path):
    from vid2vid.cli.main import main

    assert main(["make-tiny-model", str(tmp_path / "m"), "--single-file"]) == 0
    assert (tmp_path / "m" / tiny.SINGLE_FILE_NAME).is_file()


def test_detect_config_from_real_key_names(tmp_path):
    """Which bundled config a checkpoint gets, from the key names and shapes real SD files have."""
    from vid2vid.diffusion.checkpoints import detect_config, prediction_type_for

    unet = {"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)}
    sd1 = {**unet, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768)}
    sd2 = {**unet, "cond_stage_model.model.token_embedding.weight": (49408, 1024)}
    sdxl = {**unet, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
            "conditioner.embedders.1.model.token_embedding.weight": (49408, 1280)}
    p = tmp_path / "m.safetensors"
    assert detect_config(sd1, {}, p) == "sd1"
    assert detect_config(sd2, {}, p) == "sd2"
    assert detect_config(sdxl, {}, p) == "sdxl"
    assert detect_config(sd1, {"vid2vid_config": "tiny-sd1"}, p) == "tiny-sd1"
    assert prediction_type_for("sd1", sd1, {}) is None
    assert prediction_type_for("sdxl", {**sdxl, "v_pred": ()}, {}) == "v_prediction"
    inpaint = {**sd1, "model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)}
    with pytest.raises(BadInput, match="inpainting"):
        detect_config(inpaint, {}, p)
    with pytest.raises(BadInput, match="no UNet"):
        detect_config({"encoder.conv_in.weight": (128, 3, 3, 3)}, {}, p)
    with pytest.raises(BadInput, match="does not ship"):
        detect_config(sd1, {"vid2vid_config": "future-model"}, p)
    with pytest.raises(BadInput, match="width 1024"):
        detect_config({**unet, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight":
                       (49408, 1024)}, {}, p)
