"""ComfyUI's split single files of Wan 2.1 VACE, read offline: the same parts as the diffusers folder, bit for bit."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion import wan_single, wan_split

PROMPTS = ("a cat", "A Watercolor painting, of 3 dogs!", "")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(diffusers folder, the transformer file of the same weights in ComfyUI's layout under ComfyUI/models/)."""
    from vid2vid.diffusion.wan_tiny import make_tiny_wan_vace, write_comfy_layout

    root = tmp_path_factory.mktemp("wan")
    return make_tiny_wan_vace(root / "diffusers"), write_comfy_layout(root / "ComfyUI")


def tensors(path):
    with safe_open(str(path), "pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()


def rewrite(path, change):
    found, meta = tensors(path)
    save_file(change(found), str(path), metadata=meta)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    for (na, ba), (nb, bb) in zip(a.named_buffers(), b.named_buffers()):
        assert na == nb and ba.dtype == bb.dtype and torch.equal(ba, bb), na


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_split_files_give_the_diffusers_folders_parts_bit_for_bit(tiny, dtype):
    """Also the dtypes: diffusers keeps some transformer modules in float32, transformers the UMT5 `wo` in float16."""
    from vid2vid.diffusion.wan_loading import load_pipeline

    folder, transformer = tiny
    a, b = load_pipeline(str(folder), dtype), load_pipeline(str(transformer), dtype)
    for part in ("transformer", "vae", "text_encoder"):
        same_state(getattr(a, part), getattr(b, part))
    assert b.vae.dtype == torch.float32
    for text in PROMPTS:
        assert a.tokenizer(text).input_ids == b.tokenizer(text).input_ids
    assert b.tokenizer("a cat").input_ids[-1] == 1                   # </s> closes the prompt, as UMT5's does


def test_every_spelling_of_the_layout_finds_the_same_files(tiny, tmp_path):
    _, transformer = tiny
    models = transformer.parent.parent
    found = wan_split.locate(str(transformer))
    assert (found.text_encoder.parent.name, found.vae.parent.name) == ("text_encoders", "vae")
    assert wan_split.locate(str(models)) == wan_split.locate(str(models.parent)) == found
    flat = tmp_path / "flat"                                          # the three files in one folder
    flat.mkdir()
    for f in (found.transformer, found.text_encoder, found.vae):
        shutil.copy(f, flat / f.name)
    assert wan_split.locate(str(flat)) == wan_split.SplitParts(*(flat / f.name for f in
                                                                 (found.transformer, found.text_encoder, found.vae)))
    tree = tmp_path / "ComfyUI"                                       # the transformer sorted into a sub-folder
    shutil.copytree(models.parent, tree)
    deep = tree / "models" / "diffusion_models" / "wan" / transformer.name
    deep.parent.mkdir()
    shutil.move(tree / "models" / "diffusion_models" / transformer.name, deep)
    assert wan_split.locate(str(deep)).vae == tree / "models" / "vae" / found.vae.name


def test_a_missing_part_is_named_with_where_it_was_looked_for(tiny, tmp_path):
    from vid2vid.diffusion.wan_loading import check_video_model_spec

    tree = shutil.copytree(tiny[1].parent.parent.parent, tmp_path / "ComfyUI")
    shutil.rmtree(tree / "models" / "vae")
    missing = r"the Wan 2.1 VAE is missing .*put wan_2.1_vae.safetensors in \S*models/vae"
    with pytest.raises(ModelNotFound, match=missing):
        check_video_model_spec(str(tree))
    shutil.rmtree(tree / "models" / "text_encoders")
    with pytest.raises(ModelNotFound, match="the UMT5 text encoder is missing") as err:
        check_video_model_spec(str(tree / "models" / "diffusion_models" / tiny[1].name))
    assert len(str(err.value).splitlines()) == 1
    shutil.rmtree(tree / "models" / "diffusion_models")
    (tree / "models" / "diffusion_models").mkdir()
    with pytest.raises(ModelNotFound, match="no Wan 2.1 VACE transformer file found"):
        check_video_model_spec(str(tree))
    second = tmp_path / "two" / "diffusion_models"
    second.mkdir(parents=True)
    for name in ("a.safetensors", "b.safetensors"):
        shutil.copy(tiny[1], second / name)
    with pytest.raises(BadInput, match=r"several VACE transformers \(a.safetensors, b.safetensors\)"):
        check_video_model_spec(str(second.parent))


def quantised(found: dict) -> dict:
    """ComfyUI's "scaled fp8" form of the 2-d weights: q = w / s in float8_e4m3fn, s = max |w| / 448."""
    out = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for k, w in found.items():
        if w.ndim == 2 and k.endswith(".weight") and w.is_floating_point():
            s = w.abs().max().float() / 448.0
            out[k], out[k.removesuffix("weight") + "scale_weight"] = (w / s).to(torch.float8_e4m3fn), s
        else:
            out[k] = w
    return out


def test_scaled_fp8_weights_are_dequantised_as_weight_times_scale(tiny, tmp_path):
    te = tmp_path / "umt5_fp8_e4m3fn_scaled.safetensors"
    shutil.copy(wan_split.locate(str(tiny[1])).text_encoder, te)
    plain, _ = tensors(te)
    rewrite(te, quantised)
    stored, _ = tensors(te)
    model, spiece = wan_single.load_text_encoder(te, torch.float32)
    state = model.state_dict()
    scaled = [k for k in stored if k.endswith(".scale_weight")]
    assert len(scaled) >= 10 and spiece is not None
    for k in scaled:
        w = k.removesuffix("scale_weight") + "weight"
        direct = stored[w].to(torch.float32) * stored[k]
        assert torch.equal(state[w], direct), w
        assert torch.allclose(direct, plain[w], rtol=0.07, atol=1e-3 * plain[w].abs().max())   # fp8: 3 mantissa bits
    assert torch.equal(state["encoder.final_layer_norm.weight"], plain["encoder.final_layer_norm.weight"])


def test_full_precision_comes_before_fp8_and_t5_is_not_umt5(tiny, tmp_path):
    tree = shutil.copytree(tiny[1].parent.parent.parent, tmp_path / "ComfyUI")
    texts = tree / "models" / "text_encoders"
    fp16 = next(texts.glob("*.safetensors"))
    shutil.copy(fp16, texts / "a_umt5_fp8_e4m3fn_scaled.safetensors")
    rewrite(texts / "a_umt5_fp8_e4m3fn_scaled.safetensors", quantised)
    t5 = {k: v for k, v in tensors(fp16)[0].items() if "relative_attention_bias" not in k or ".block.0." in k}
    save_file(t5, str(texts / "0_t5xxl_fp16.safetensors"))          # plain T5: the bias in block 0 only
    transformer = tree / "models" / "diffusion_models" / tiny[1].name
    assert wan_split.locate(str(transformer)).text_encoder == fp16
    fp16.unlink()
    assert wan_split.locate(str(transformer)).text_encoder.name == "a_umt5_fp8_e4m3fn_scaled.safetensors"


def test_tokenizer_from_a_folder_beside_the_file_or_one_line(tiny, tmp_path):
    tree = shutil.copytree(tiny[1].parent.parent.parent, tmp_path / "ComfyUI")
    parts = wan_split.locate(str(tree))
    rewrite(parts.text_encoder, lambda found: {k: v for k, v in found.items() if k != "spiece_model"})
    _, spiece = wan_single.load_text_encoder(parts.text_encoder, torch.float32)
    assert spiece is None
    with pytest.raises(ModelNotFound, match=r"no UMT5 tokenizer: .*copy the tokenizer/ folder of a Wan diffusers model "
                                            r"to \S*text_encoders/tokenizer") as err:
        wan_single.find_tokenizer(parts, None)
    assert len(str(err.value).splitlines()) == 1
    shutil.copytree(tiny[0] / "tokenizer", parts.text_encoder.parent / "tokenizer")
    tok = wan_single.find_tokenizer(parts, None)
    own = wan_single.find_tokenizer(wan_split.locate(str(tiny[1])), tensors(wan_split.locate(
        str(tiny[1])).text_encoder)[0]["spiece_model"].numpy().tobytes())
    assert all(tok(t).input_ids == own(t).input_ids for t in PROMPTS)


def test_files_of_another_layout_or_size_are_refused(tiny, tmp_path):
    parts = wan_split.locate(str(tiny[1]))
    vae = tmp_path / "vae.safetensors"
    shutil.copy(parts.vae, vae)
    rewrite(vae, lambda found: {k: v for k, v in found.items() if k != "decoder.head.2.bias"})
    with pytest.raises(BadInput, match=r"does not fit the Wan 2.1 VAE \(lacks decoder.head.2.bias; 1 missing"):
        wan_single.load_vae(vae)
    bare = tmp_path / "bare.safetensors"                              # no config in its metadata: bundled sizes only
    save_file(tensors(parts.transformer)[0], str(bare))
    with pytest.raises(BadInput, match="neither bundled size"):
        wan_single.load_transformer(bare, torch.float32)


@pytest.mark.parametrize("size", ["transformer-1.3B", "transformer-14B"])
def test_a_bundled_size_is_told_by_its_shapes(size):
    from accelerate import init_empty_weights
    from diffusers import WanVACETransformer3DModel

    from vid2vid.diffusion.wan_keys import transformer_key_to_original

    config = wan_single.bundled_config(size)
    with init_empty_weights():
        model = WanVACETransformer3DModel.from_config(config)
    shapes = {transformer_key_to_original(k): tuple(v.shape) for k, v in model.state_dict().items()}
    assert wan_single.bundled_size(shapes) == config
    shapes.pop("vace_blocks.1.after_proj.bias")
    assert wan_single.bundled_size(shapes) is None
