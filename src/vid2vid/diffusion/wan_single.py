"""The parts of a Wan 2.1 VACE model read from ComfyUI's split single files, offline.

Each file is read tensor by tensor into the dtype asked for, its keys renamed to diffusers' layout
(`diffusion/wan_keys.py`), and loaded into a model built without weights from its config:

- the config: the one in the file's safetensors metadata under `vid2vid_config` when it carries
  one (the tiny test model's files do), else a bundled one (`vid2vid/data/configs/wan/`:
  the 1.3B and 14B VACE transformers, told apart by the shapes of the file's tensors; the Wan 2.1 VAE;
  UMT5-XXL), so nothing is fetched from the hub;
- fp8 files: ComfyUI's "scaled" ones (a `scaled_fp8` marker and one `*.scale_weight` per weight)
  are dequantised, weight = fp8 value * scale, then cast; plain fp8 weights are cast (exactly);
- the tokenizer: built from the sentencepiece model that Comfy-Org's UMT5 files carry as a
  `spiece_model` tensor (`diffusion/spm_proto.py`), else read from a `tokenizer/` folder beside the
  UMT5 file or the transformer file, else from the hub cache of google/umt5-xxl; else one line.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion.tiny import METADATA_KEY, bundled_config_dir
from vid2vid.diffusion.wan_keys import original_names, strip_prefix, transformer_key_to_original, vae_key_to_original
from vid2vid.diffusion.wan_split import SplitParts

SPIECE_KEY = "spiece_model"
TRANSFORMER_SIZES = ("transformer-1.3B", "transformer-14B")
TOKENIZER_HUB_ID = "google/umt5-xxl"


def bundled_config(name: str) -> dict:
    return json.loads((bundled_config_dir("wan") / f"{name}.json").read_text(encoding="utf-8"))


def dequantised(value: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """A stored weight in `dtype`: with a ComfyUI "scaled fp8" scale s, the fp8 value w becomes w * s
    (computed in float32); integer tensors stay as they are."""
    if scale is not None:
        value = value.to(torch.float32) * scale.to(torch.float32)
    return value.to(dtype) if value.is_floating_point() else value


def keeps_fp32(key: str, modules: list[str]) -> bool:
    """Whether a parameter stays in float32 (diffusers' and transformers' `_keep_in_fp32_modules` rule:
    one of its dotted names is one of the modules)."""
    return any(m in key.split(".") for m in modules)


def read_header(path: Path) -> tuple[dict[str, tuple], dict[str, str]]:
    """key -> shape (prefix stripped, fp8 scales and markers left out) and the file's metadata."""
    from vid2vid.diffusion.checkpoints import read_checkpoint_header

    shapes, meta = read_checkpoint_header(path)
    return {k: v for k, v in ((strip_prefix(k), v) for k, v in shapes.items()) if not _side_tensor(k)}, meta


def _side_tensor(key: str) -> bool:
    return key in ("scaled_fp8", SPIECE_KEY) or key.endswith((".scale_weight", ".scale_input"))


def read_weights(path: Path, dtype_for: Callable[[str], torch.dtype]) -> tuple[dict[str, torch.Tensor], bytes | None]:
    """The file's weights (prefix stripped), each dequantised and cast to `dtype_for(its key)`, one at a
    time; and the bytes of its `spiece_model` tensor (None without one)."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), "pt") as fh:
        names = {strip_prefix(k): k for k in fh.keys()}
        spiece = fh.get_tensor(names[SPIECE_KEY]).numpy().tobytes() if SPIECE_KEY in names else None
        for key, name in names.items():
            if _side_tensor(key):
                continue
            scale = names.get(key.removesuffix("weight") + "scale_weight") if key.endswith("weight") else None
            out[key] = dequantised(fh.get_tensor(name), None if scale is None else fh.get_tensor(scale), dtype_for(key))
    return out, spiece


def _empty(build: Callable[[dict], torch.nn.Module], config: dict) -> torch.nn.Module:
    from accelerate import init_empty_weights

    with init_empty_weights():
        return build(config)


def _shapes(model: torch.nn.Module, to_original: Callable[[str], str]) -> dict[str, tuple]:
    return {to_original(k): tuple(v.shape) for k, v in model.state_dict().items()}


def _fill(model: torch.nn.Module, path: Path, to_original: Callable[[str], str], what: str, dtype: torch.dtype,
          fp32: list[str], fallbacks: dict[str, str] | None = None) -> tuple[torch.nn.Module, bytes | None]:
    """The model with the file's weights (renamed, cast); a missing, extra or mis-shaped tensor is one line.
    `fallbacks`: original name -> the file's other name for the same tensor, used when the first is absent."""
    table = original_names(model.state_dict().keys(), to_original)
    expected = _shapes(model, to_original)
    shapes = read_header(path)[0]
    source = {k: k if k in shapes else (fallbacks or {}).get(k, k) for k in table}
    missing = sorted(k for k in table if source[k] not in shapes)
    extra = sorted(set(shapes) - set(table))
    wrong = sorted(k for k in table if source[k] in shapes and shapes[source[k]] != expected[k])
    if missing or extra or wrong:
        first = (missing and f"lacks {missing[0]}") or (extra and f"has {extra[0]}") or f"{wrong[0]} has another shape"
        raise BadInput(f"{{img2img.video_model}}: {path} does not fit {what} ({first}; {len(missing)} missing, "
                       f"{len(extra)} unexpected, {len(wrong)} mis-shaped tensors); give the original file")
    weights, spiece = read_weights(path, lambda k: torch.float32 if keeps_fp32(table[k], fp32) else dtype)
    model.load_state_dict({table[k]: weights[source[k]] for k in table}, strict=True, assign=True)
    return model.eval(), spiece


def _config(meta: dict[str, str], default: str) -> dict:
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else bundled_config(default)


def bundled_size(shapes: dict[str, tuple]) -> dict | None:
    """The bundled transformer config whose tensors have exactly these original names and shapes, or None."""
    from diffusers import WanVACETransformer3DModel as Cls

    return next((c for c in map(bundled_config, TRANSFORMER_SIZES)
                 if _shapes(_empty(Cls.from_config, c), transformer_key_to_original) == shapes), None)


def load_transformer(path: Path, dtype: torch.dtype):
    from diffusers import WanVACETransformer3DModel as Cls

    shapes, meta = read_header(path)
    config = json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else bundled_size(shapes)
    if config is None:
        raise BadInput(f"{{img2img.video_model}}: {path} is a VACE transformer of neither bundled size (Wan 2.1 "
                       "VACE 1.3B, 14B); give one of those, or a diffusers folder")
    return _fill(_empty(Cls.from_config, config), path, transformer_key_to_original, "the VACE transformer", dtype,
                 list(Cls._keep_in_fp32_modules or []))[0]


def load_vae(path: Path):
    from diffusers import AutoencoderKLWan as Cls

    config = _config(read_header(path)[1], "vae")
    return _fill(_empty(Cls.from_config, config), path, lambda k: vae_key_to_original(k, config["num_res_blocks"]),
                 "the Wan 2.1 VAE", torch.float32, [])[0]


def load_text_encoder(path: Path, dtype: torch.dtype):
    """The UMT5 encoder (transformers' layout, `shared` holding the one embedding) and the file's
    `spiece_model` bytes (None if absent)."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = _config(read_header(path)[1], "umt5-xxl")
    model = _empty(lambda c: UMT5EncoderModel(UMT5Config(**c)), config)
    fp32 = list(UMT5EncoderModel._keep_in_fp32_modules or []) if dtype == torch.float16 else []
    one = {"encoder.embed_tokens.weight": "shared.weight", "shared.weight": "encoder.embed_tokens.weight"}
    return _fill(model, path, lambda k: k, "the UMT5 text encoder", dtype, fp32, fallbacks=one)


def tokenizer_from_spiece(data: bytes):
    """A UMT5 (T5-style Unigram) tokenizer from a sentencepiece model's bytes, built offline."""
    from transformers import T5Tokenizer

    from vid2vid.diffusion.spm_proto import read_model

    pieces, charsmap = read_model(data)
    return T5Tokenizer(vocab=[(p.text, p.score) for p in pieces], extra_ids=0,
                       _spm_precompiled_charsmap=charsmap or None)


def find_tokenizer(parts: SplitParts, spiece: bytes | None):
    from transformers import AutoTokenizer

    if spiece is not None:
        return tokenizer_from_spiece(spiece)
    folders = [parts.text_encoder.parent / "tokenizer", parts.transformer.parent / "tokenizer"]
    for folder in folders:
        if folder.is_dir():
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    try:
        return AutoTokenizer.from_pretrained(TOKENIZER_HUB_ID, local_files_only=True)
    except (OSError, ValueError):
        pass
    raise ModelNotFound(f"{{img2img.video_model}}: no UMT5 tokenizer: {parts.text_encoder.name} carries none (no "
                        f"{SPIECE_KEY}), {folders[0]} does not exist, and {TOKENIZER_HUB_ID} is not in the hub cache; "
                        f"copy the tokenizer/ folder of a Wan diffusers model to {folders[0]}, or run "
                        f"huggingface-cli download {TOKENIZER_HUB_ID} once")


def load_split_parts(parts: SplitParts, dtype: torch.dtype) -> dict:
    """transformer (dtype), vae (float32), text_encoder (dtype) and tokenizer from the three files."""
    text_encoder, spiece = load_text_encoder(parts.text_encoder, dtype)
    return {"transformer": load_transformer(parts.transformer, dtype), "vae": load_vae(parts.vae),
            "text_encoder": text_encoder, "tokenizer": find_tokenizer(parts, spiece)}
