"""A1111 prompt syntax: emphasis parses, 75-token chunking, weighted encoding."""
from __future__ import annotations

import pytest
import torch

from vid2vid.diffusion.prompts import (
    BREAK,
    count_chunks,
    encode_pair,
    encode_prompt,
    make_chunks,
    parse_emphasis,
)

torch.set_num_threads(2)
R = 1.1

# Hand-made expected parses, following the A1111 web UI's rules.
PARSES = [
    ("a cat", [("a cat", 1.0)]),
    ("", [("", 1.0)]),
    ("(cat)", [("cat", R)]),
    ("[cat]", [("cat", 1 / R)]),
    ("((cat))", [("cat", R * R)]),
    ("[[cat]]", [("cat", 1 / R / R)]),
    ("([cat])", [("cat", 1.0)]),
    ("(cat:1.3)", [("cat", 1.3)]),
    ("(cat: 0.5 )", [("cat", 0.5)]),
    ("a (red:1.3) [cat]", [("a ", 1.0), ("red", 1.3), (" ", 1.0), ("cat", 1 / R)]),
    ("(a (b:1.5) c)", [("a ", R), ("b", 1.5 * R), (" c", R)]),
    ("((a:2) b:0.5)", [("a", 1.0), (" b", 0.5)]),
    ("(a:-1) b", [("a", -1.0), (" b", 1.0)]),
    (r"\(a\) \[b\]", [("(a) [b]", 1.0)]),
    (r"(\(a\):1.2)", [("(a)", 1.2)]),
    (r"a \\ b", [("a \\ b", 1.0)]),
    ("(a", [("a", R)]),                                # left open: applies to the end
    ("[a (b", [("a ", 1 / R), ("b", R / R)]),
    ("a) b]", [("a) b]", 1.0)]),                       # stray closers are text
    ("(a:1.2.3)", [("a:1.2.3", R)]),                   # not a number: ':' is text
    ("a: b", [("a: b", 1.0)]),
    ("(masterpiece:1.2), 1girl, [blurry]", [("masterpiece", 1.2), (", 1girl, ", 1.0), ("blurry", 1 / R)]),
    ("x BREAK y", [("x", 1.0), BREAK, ("y", 1.0)]),
    ("(x BREAK y)", [("x", R), BREAK, ("y", R)]),
    ("BREAKFAST", [("BREAKFAST", 1.0)]),
]


@pytest.mark.parametrize("text,expected", PARSES)
def test_parse_emphasis(text, expected):
    got = parse_emphasis(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], rel=1e-12)


@pytest.fixture(scope="module")
def clip_tokenizer(tmp_path_factory):
    """The real CLIP tokenizer, built offline from open_clip_torch's BPE file."""
    import os

    from transformers import CLIPTokenizer

    from vid2vid.core.errors import ModelNotFound
    from vid2vid.diffusion import loading, tokenizer

    os.environ["VID2VID_MODEL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        tokenizer.clip_merges()
    except ModelNotFound:
        pytest.skip("open_clip_torch (CLIP's BPE vocabulary) is not installed")
    return CLIPTokenizer.from_pretrained(str(loading.config_folder("sd1") / "tokenizer"))


def test_real_clip_token_ids(clip_tokenizer):
    # ids of CLIP ViT-L/14's tokenizer (as in every SD 1.x model)
    assert clip_tokenizer("a photo of a cat, masterpiece").input_ids == \
        [49406, 320, 1125, 539, 320, 2368, 267, 12066, 49407]


def test_chunk_counts(clip_tokenizer):
    assert count_chunks(clip_tokenizer, "") == 1
    assert count_chunks(clip_tokenizer, "a " * 75) == 1
    assert count_chunks(clip_tokenizer, "a " * 76) == 2
    assert count_chunks(clip_tokenizer, "a " * 150) == 2
    assert count_chunks(clip_tokenizer, "a " * 151) == 3
    assert count_chunks(clip_tokenizer, "a BREAK b") == 2
    assert count_chunks(clip_tokenizer, "(a:1.3) " * 80) == 2           # brackets are not tokens


def test_comma_backtrack_moves_the_last_phrase(clip_tokenizer):
    a, b, comma = 320, 321, 267                 # "a", "b", ","
    # comma at position 70, chunk full at 75: the 4 tokens after the comma move to the next chunk
    chunks = make_chunks(parse_emphasis("a " * 70 + ", " + "b " * 10), clip_tokenizer)
    assert [c.tokens for c in chunks] == [[a] * 70 + [comma], [b] * 10]
    # comma more than 20 tokens back: a hard cut at 75
    chunks = make_chunks(parse_emphasis("a " * 50 + ", " + "b " * 30), clip_tokenizer)
    assert [c.tokens for c in chunks] == [[a] * 50 + [comma] + [b] * 24, [b] * 6]
    chunks = make_chunks(parse_emphasis("(a:1.5) b"), clip_tokenizer)
    assert chunks[0].tokens == [a, b] and chunks[0].weights == [1.5, 1.0]


# ---------------------------------------------------------------- encoding with the tiny model

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("tiny"), single_file=True)))


def _by_hand(model, tokens, weights):
    """One chunk encoded directly: [BOS] tokens [EOS] pad..., weighted, mean restored."""
    tok = model.tokenizer
    ids = [tok.bos_token_id] + tokens + [tok.eos_token_id]
    w = [1.0] + weights + [1.0]
    ids += [tok.pad_token_id] * (77 - len(ids))
    w += [1.0] * (77 - len(w))
    with torch.no_grad():
        z = model.text_encoder(torch.tensor([ids])).last_hidden_state[0].double()
    zw = z * torch.tensor(w, dtype=torch.float64)[:, None]
    return (zw * (z.mean() / zw.mean())).float()


def test_plain_prompt_matches_diffusers(model):
    ours = encode_prompt(model, "a photo of a cat")
    ref, _ = model.to_pipeline().encode_prompt("a photo of a cat", model.device, 1, False)
    assert ours.shape == (1, 77, 32)
    assert torch.equal(ours, ref)


def test_emphasis_and_chunks_match_a_direct_computation(model):
    tok = model.tokenizer

    def ids(s):
        return tok(s, add_special_tokens=False).input_ids

    first = ids("a photo")
    words = ids("a ") * 80                                      # one token each: forces a second chunk
    assert len(words) == 80
    text = "a photo (" + "a " * 80 + ":1.4)"
    emb = encode_prompt(model, text)
    tokens = first + words
    assert emb.shape == (1, 154, 32)
    expected0 = _by_hand(model, tokens[:75], [1.0] * len(first) + [1.4] * (75 - len(first)))
    expected1 = _by_hand(model, tokens[75:], [1.4] * (len(tokens) - 75))
    torch.testing.assert_close(emb[0, :77], expected0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(emb[0, 77:], expected1, rtol=1e-5, atol=1e-5)
    # the weighting moved the embedding, and kept each chunk's mean
    plain = encode_prompt(model, "a photo " + "a " * 80)
    assert (emb - plain).abs().max() > 1e-2
    assert emb[0, :77].mean().item() == pytest.approx(plain[0, :77].mean().item(), rel=1e-4)


def test_encode_pair_pads_with_empty_prompt_chunks(model):
    cond, uncond = encode_pair(model, "a " * 100, "ugly")
    assert cond.shape == uncond.shape == (1, 154, 32)
    torch.testing.assert_close(uncond[:, :77], encode_prompt(model, "ugly"))
    torch.testing.assert_close(uncond[:, 77:], encode_prompt(model, ""))
    c2, u2 = encode_pair(model, "cat", "")
    assert c2.shape == u2.shape == (1, 77, 32)


# ---------------------------------------------------------------- SDXL: two text encoders, pooled output

@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    """A tiny SDXL-architecture model (two CLIP text encoders, text_time embedding), loaded from a folder."""
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl", config="tiny-sdxl")))


def test_sdxl_prompt_matches_diffusers(tiny_sdxl):
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from vid2vid.diffusion.prompts import encode_prompt_pooled

    assert tiny_sdxl.is_sdxl
    hidden, pooled = encode_prompt_pooled(tiny_sdxl, "a photo of a cat")
    pipe = tiny_sdxl.to_pipeline()
    assert isinstance(pipe, StableDiffusionXLImg2ImgPipeline)
    ref, _, ref_pooled, _ = pipe.encode_prompt("a photo of a cat", device=tiny_sdxl.device,
                                               do_classifier_free_guidance=False)
    assert hidden.shape == (1, 77, 96) and pooled.shape == (1, 64)       # 32 + 64 wide; pooled from encoder 2
    assert torch.equal(hidden, ref) and torch.equal(pooled, ref_pooled)
    long, long_pooled = encode_prompt_pooled(tiny_sdxl, "(a photo:1.2) " + "a " * 80)
    assert long.shape == (1, 154, 96) and long_pooled.shape == (1, 64)


def test_sdxl_textual_inversion_goes_into_both_encoders(tiny_sdxl, tmp_path):
    from safetensors.torch import save_file

    from vid2vid.core.errors import BadInput
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.prompts import encode_prompt_pooled, make_chunks, parse_emphasis

    g = torch.Generator().manual_seed(3)
    clip_l, clip_g = torch.randn(2, 32, generator=g), torch.randn(2, 64, generator=g)
    emb = tmp_path / "xlstyle.safetensors"
    save_file({"clip_l": clip_l, "clip_g": clip_g}, str(emb))
    model = load_model(tiny_sdxl.spec, embeddings=[str(emb)])
    ids = [t for t in make_chunks(parse_emphasis("a xlstyle cat"), model.tokenizer)[0].tokens if t >= 1030]
    ids2 = [t for t in make_chunks(parse_emphasis("a xlstyle cat"), model.tokenizer_2)[0].tokens if t >= 1030]
    assert len(ids) == 2 and ids == ids2                         # the same ids index both tables
    torch.testing.assert_close(model.text_encoder.get_input_embeddings().weight[ids], clip_l)
    torch.testing.assert_close(model.text_encoder_2.get_input_embeddings().weight[ids], clip_g)
    with_token, _ = encode_prompt_pooled(model, "a xlstyle cat")
    without, _ = encode_prompt_pooled(tiny_sdxl, "a xlstyle cat")
    assert not torch.equal(with_token, without)
    sd1_style = tmp_path / "sd1style.safetensors"
    save_file({"emb_params": clip_l}, str(sd1_style))
    with pytest.raises(BadInput, match="not an SDXL embedding"):
        load_model(tiny_sdxl.spec, embeddings=[str(sd1_style)])
