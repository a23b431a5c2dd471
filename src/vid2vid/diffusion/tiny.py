"""A tiny randomly initialised SD 1.x model for tests and the demo (`vid2vid make-tiny-model`).

Same architecture family as SD 1.x, a few hundred kB of weights: a 4-level VAE (scale factor 8,
like real SD), a 2-level UNet with cross attention, a 2-layer CLIP text encoder and a small
offline BPE tokenizer. The configs live in `vid2vid/data/configs/tiny-sd1/`, so a tiny single
file loads through the same offline path as a real checkpoint.

Two layouts:
- a diffusers folder (`save_pretrained`), loadable with `from_pretrained(dir)`;
- one original-layout (CompVis / A1111 key names) `.safetensors` file, made by renaming the
  diffusers keys (`original_layout_state_dict`); its metadata names the config
  (`vid2vid_config = tiny-sd1`).
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import torch

from vid2vid.errors import BadInput

CONFIG_NAME = "tiny-sd1"
METADATA_KEY = "vid2vid_config"
SINGLE_FILE_NAME = "tiny-sd1.safetensors"


def bundled_config_dir(name: str) -> Path:
    """Folder of the bundled diffusers config `name` (JSON only, no weights)."""
    return Path(str(resources.files("vid2vid") / "data" / "configs" / name))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def build_tiny_components(seed: int = 0) -> dict:
    """Tiny unet, vae, text_encoder (random, seeded), tokenizer and scheduler, built from the bundled configs."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from vid2vid.diffusion.tokenizer import tiny_merges, vocab_from_merges

    cfg = bundled_config_dir(CONFIG_NAME)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(_read_json(cfg / "unet" / "config.json"))
    vae = AutoencoderKL.from_config(_read_json(cfg / "vae" / "config.json"))
    text_encoder = CLIPTextModel(CLIPTextConfig(**_read_json(cfg / "text_encoder" / "config.json")))
    _randomise_final_norm(text_encoder, seed)
    merges = tiny_merges()
    vocab = vocab_from_merges(merges)
    if len(vocab) != text_encoder.config.vocab_size:
        raise AssertionError(f"tiny vocabulary has {len(vocab)} entries, config says {text_encoder.config.vocab_size}")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=list(merges), model_max_length=77)
    scheduler = EulerDiscreteScheduler.from_config(_read_json(cfg / "scheduler" / "scheduler_config.json"))
    for m in (unet, vae, text_encoder):
        m.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def _randomise_final_norm(text_encoder, seed: int) -> None:
    """Give the text encoder's final layer norm random affine parameters.

    Freshly initialised, it has weight 1 and bias 0, so every token's hidden state has mean
    exactly 0; a trained CLIP's do not, and A1111's mean-restoring emphasis divides by that mean.
    """
    g = torch.Generator().manual_seed(seed + 1)
    norm = getattr(text_encoder, "text_model", text_encoder).final_layer_norm
    with torch.no_grad():
        norm.weight.copy_(1 + 0.2 * torch.randn(norm.weight.shape, generator=g))
        norm.bias.copy_(0.3 + 0.5 * torch.randn(norm.bias.shape, generator=g))


# ---------------------------------------------------------------- diffusers -> original key names

_UNET_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
                ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
_VAE_ATTN = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _swap(rest: str, table) -> str:
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_key_to_original(key: str, layers_per_block: int, up_has_attention: list[bool]) -> str:
    """One diffusers UNet2DConditionModel key -> its `model.diffusion_model.` (CompVis) name."""
    n = layers_per_block + 1
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    head, _, tail = key.rpartition(".")
    if head in fixed:
        return f"model.diffusion_model.{fixed[head]}.{tail}"
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        side, b, kind, j, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
        if side == "down":
            first = 1 + b * n
            if kind == "resnets":
                name = f"input_blocks.{first + j}.0.{_swap(rest, _UNET_RESNET)}"
            elif kind == "attentions":
                name = f"input_blocks.{first + j}.1.{rest}"
            else:                                      # downsamplers.0.conv.* -> op.*
                name = f"input_blocks.{first + layers_per_block}.0.op.{rest.split('.', 1)[1]}"
        else:
            first = b * n
            if kind == "resnets":
                name = f"output_blocks.{first + j}.0.{_swap(rest, _UNET_RESNET)}"
            elif kind == "attentions":
                name = f"output_blocks.{first + j}.1.{rest}"
            else:
                slot = 2 if up_has_attention[b] else 1
                name = f"output_blocks.{first + layers_per_block}.{slot}.{rest}"
        return "model.diffusion_model." + name
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        kind, j, rest = m.group(1), int(m.group(2)), m.group(3)
        if kind == "resnets":
            return f"model.diffusion_model.middle_block.{2 * j}.{_swap(rest, _UNET_RESNET)}"
        return f"model.diffusion_model.middle_block.1.{rest}"
    raise ValueError(f"no original-layout name for UNet key {key}")


def vae_key_to_original(key: str, levels: int) -> str:
    """One diffusers AutoencoderKL key -> its `first_stage_model.` (CompVis) name."""
    pre = "first_stage_model."
    key = key.replace("conv_norm_out", "norm_out")
    m = re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        part, side, b, kind, j, rest = m.groups()
        level = int(b) if side == "down" else levels - 1 - int(b)
        if kind == "resnets":
            return f"{pre}{part}.{side}.{level}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        sampler = "downsample" if side == "down" else "upsample"
        return f"{pre}{part}.{side}.{level}.{sampler}.{rest}"
    m = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        part, kind, j, rest = m.groups()
        if kind == "resnets":
            return f"{pre}{part}.mid.block_{int(j) + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        return f"{pre}{part}.mid.attn_1.{_swap(rest, _VAE_ATTN)}"
    return pre + key


def original_layout_state_dict(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """All weights under CompVis / A1111 names (UNet, VAE with 1x1-conv attention, CLIP text encoder)."""
    ucfg = unet.config
    up_attn = ["CrossAttn" in t for t in ucfg.up_block_types]
    out: dict[str, torch.Tensor] = {}
    for k, v in unet.state_dict().items():
        out[unet_key_to_original(k, ucfg.layers_per_block, up_attn)] = v
    levels = len(vae.config.block_out_channels)
    for k, v in vae.state_dict().items():
        name = vae_key_to_original(k, levels)
        if ".mid.attn_1." in name and name.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]                    # linear -> 1x1 conv as in the original VAE
        out[name] = v
    for k, v in text_encoder.state_dict().items():
        k = k if k.startswith("text_model.") else "text_model." + k
        out["cond_stage_model.transformer." + k] = v
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


# ---------------------------------------------------------------- writing

def make_tiny_model(dir: str | Path, single_file: bool = False, seed: int = 0) -> Path:
    """Write a tiny random SD 1.x model under `dir`; return the diffusers folder or the .safetensors path.

    single_file=False: `dir` becomes a diffusers folder (model_index.json, unet/, vae/, ...).
    single_file=True: writes `dir/tiny-sd1.safetensors` (or `dir` itself when it ends in .safetensors).
    """
    from safetensors.torch import save_file

    parts = build_tiny_components(seed)
    target = Path(dir)
    if single_file:
        path = target if target.suffix == ".safetensors" else target / SINGLE_FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        sd = original_layout_state_dict(parts["unet"], parts["vae"], parts["text_encoder"])
        tmp = path.with_name(path.name + ".tmp")
        save_file(sd, str(tmp), metadata={METADATA_KEY: CONFIG_NAME, "format": "pt"})
        tmp.replace(path)
        return path
    if target.exists() and not target.is_dir():
        raise BadInput(f"{target} exists and is not a folder; pick another path for the tiny model")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(target), safe_serialization=True)
    return target


def main(args, parser, job) -> None:
    """`vid2vid make-tiny-model DIR [--single-file]`."""
    path = make_tiny_model(args.dir, single_file=args.single_file)
    job.log(f"tiny model written: {path}")
    print(path)
