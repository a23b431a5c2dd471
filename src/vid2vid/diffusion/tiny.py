"""A tiny randomly initialised SD 1.x model for tests and the demo (`vid2vid make-tiny-model`).

Same architecture family as SD 1.x, about 5 MB of weights: a 4-level VAE (scale factor 8,
like real SD), a 2-level UNet with cross attention, a 2-layer CLIP text encoder and a small
offline BPE tokenizer. The configs live in `vid2vid/data/configs/tiny-sd1/`, so a tiny single
file loads through the same offline path as a real checkpoint. `config="tiny-sd2"` and
`config="tiny-sdxl"` give the SD 2.x and SDXL families (OpenCLIP text layout in single files).

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

from vid2vid.core.errors import BadInput

CONFIG_NAME = "tiny-sd1"
METADATA_KEY = "vid2vid_config"
SINGLE_FILE_NAME = f"{CONFIG_NAME}.safetensors"


def bundled_config_dir(name: str) -> Path:
    """Folder of the bundled diffusers config `name` (JSON only, no weights)."""
    return Path(str(resources.files("vid2vid") / "data" / "configs" / name))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def build_tiny_components(seed: int = 0, config: str = CONFIG_NAME) -> dict:
    """Tiny unet, vae, text encoder(s) (random, seeded), tokenizer(s) and scheduler from a bundled tiny config.

    config: "tiny-sd1" (the default), "tiny-sd2" or "tiny-sdxl" (two text encoders, text_time embedding).
    """
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from vid2vid.diffusion.tokenizer import tiny_merges, vocab_from_merges

    cfg = bundled_config_dir(config)
    if not config.startswith("tiny-") or not cfg.is_dir():
        raise BadInput(f"no tiny model config named '{config}'; use {CONFIG_NAME}, tiny-sd2 or tiny-sdxl")
    torch.manual_seed(seed)
    parts = {"unet": UNet2DConditionModel.from_config(_read_json(cfg / "unet" / "config.json")),
             "vae": AutoencoderKL.from_config(_read_json(cfg / "vae" / "config.json")),
             "scheduler": EulerDiscreteScheduler.from_config(_read_json(cfg / "scheduler" / "scheduler_config.json"))}
    merges = tiny_merges()
    vocab = vocab_from_merges(merges)
    for i, (te, tok) in enumerate((("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2"))):
        if not (cfg / te).is_dir():
            continue
        te_cfg = CLIPTextConfig(**_read_json(cfg / te / "config.json"))
        model = (CLIPTextModelWithProjection if i else CLIPTextModel)(te_cfg)
        _randomise_final_norm(model, seed + i)
        if len(vocab) != te_cfg.vocab_size:
            raise AssertionError(f"tiny vocabulary has {len(vocab)} entries, config says {te_cfg.vocab_size}")
        tok_cfg = _read_json(cfg / tok / "tokenizer_config.json")
        parts[te] = model.eval()
        parts[tok] = CLIPTokenizer(vocab=vocab, merges=list(merges), model_max_length=77,
                                   pad_token=tok_cfg.get("pad_token", "<|endoftext|>"))
    parts["unet"].eval()
    parts["vae"].eval()
    return parts


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


def openclip_key_names(text_encoder, prefix: str) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model under OpenCLIP names (SD 2.x / SDXL's second encoder):
    q/k/v fused into `attn.in_proj_*`, `mlp.c_fc`/`c_proj`, `ln_1`/`ln_2`/`ln_final`,
    `positional_embedding`, and `text_projection` stored transposed ([hidden, proj])."""
    sd = {k.removeprefix("text_model."): v for k, v in text_encoder.state_dict().items()}
    out: dict[str, torch.Tensor] = {
        prefix + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
        prefix + "positional_embedding": sd["embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": sd["final_layer_norm.weight"],
        prefix + "ln_final.bias": sd["final_layer_norm.bias"],
    }
    if "text_projection.weight" in sd:
        out[prefix + "text_projection"] = sd["text_projection.weight"].T
    for i in range(text_encoder.config.num_hidden_layers):
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [sd[f"{src}self_attn.{n}_proj.{kind}"] for n in ("q", "k", "v")], dim=0)
            out[f"{dst}attn.out_proj.{kind}"] = sd[f"{src}self_attn.out_proj.{kind}"]
            out[f"{dst}ln_1.{kind}"] = sd[f"{src}layer_norm1.{kind}"]
            out[f"{dst}ln_2.{kind}"] = sd[f"{src}layer_norm2.{kind}"]
            out[f"{dst}mlp.c_fc.{kind}"] = sd[f"{src}mlp.fc1.{kind}"]
            out[f"{dst}mlp.c_proj.{kind}"] = sd[f"{src}mlp.fc2.{kind}"]
    return out


def original_layout_state_dict(unet, vae, text_encoder, text_encoder_2=None,
                               openclip_text: bool = False) -> dict[str, torch.Tensor]:
    """All weights under CompVis / A1111 / SGM names: UNet, VAE (1x1-conv attention), CLIP text
    encoder (SD 1.x: `cond_stage_model.transformer.`; SD 2.x (openclip_text): OpenCLIP layout under
    `cond_stage_model.model.`; SDXL: `conditioner.embedders.0.transformer.` plus the second encoder
    in OpenCLIP layout under `conditioner.embedders.1.model.`)."""
    ucfg = unet.config
    up_attn = ["CrossAttn" in t for t in ucfg.up_block_types]
    out: dict[str, torch.Tensor] = {}
    for k, v in unet.state_dict().items():
        if k.startswith("add_embedding.linear_"):              # SDXL's size/crop embedding
            layer = {"1": "0", "2": "2"}[k.split(".")[1][-1]]
            out[f"model.diffusion_model.label_emb.0.{layer}.{k.split('.')[-1]}"] = v
            continue
        out[unet_key_to_original(k, ucfg.layers_per_block, up_attn)] = v
    levels = len(vae.config.block_out_channels)
    for k, v in vae.state_dict().items():
        name = vae_key_to_original(k, levels)
        if ".mid.attn_1." in name and name.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]                    # linear -> 1x1 conv as in the original VAE
        out[name] = v
    if openclip_text:                                   # SD 2.x: OpenCLIP ViT-H layout
        out.update(openclip_key_names(text_encoder, "cond_stage_model.model."))
    else:
        clip_prefix = "conditioner.embedders.0.transformer." if text_encoder_2 is not None \
            else "cond_stage_model.transformer."
        for k, v in text_encoder.state_dict().items():
            k = k if k.startswith("text_model.") else "text_model." + k
            out[clip_prefix + k] = v
    if text_encoder_2 is not None:
        out.update(openclip_key_names(text_encoder_2, "conditioner.embedders.1.model."))
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


# ---------------------------------------------------------------- a VAE that lets the picture through

def _zero(conv) -> None:
    conv.weight.zero_()
    conv.bias.zero_()


def _pair_in(conv, half: int) -> None:
    """Channel c = x_c, channel half + c = -x_c (centre tap)."""
    _zero(conv)
    k = conv.weight.shape[-1] // 2
    for c in range(3):
        conv.weight[c, c, k, k], conv.weight[half + c, c, k, k] = 1.0, -1.0


def _pair_out(conv, half: int, gain: float) -> None:
    """out_c = gain * (silu(a_c) - silu(-a_c)) = gain * a_c."""
    _zero(conv)
    k = conv.weight.shape[-1] // 2
    for c in range(3):
        conv.weight[c, c, k, k], conv.weight[c, half + c, k, k] = gain, -gain


def _carry(conv, average: bool = False) -> None:
    """Channel c through unchanged (centre tap), or averaged over the kernel."""
    _zero(conv)
    kh, kw = conv.weight.shape[-2:]
    for c in range(conv.weight.shape[0]):
        if average:
            conv.weight[c, c] = 1.0 / (kh * kw)
        else:
            conv.weight[c, c, kh // 2, kw // 2] = 1.0


def _identity_blocks(block) -> None:
    for r in block.resnets:
        _zero(r.conv2)
    for a in getattr(block, "attentions", None) or []:
        _zero(a.to_out[0])


@torch.no_grad()
def make_passthrough_vae(vae) -> None:
    """Set a tiny AutoencoderKL's weights (in place) so that decode(encode(x)) keeps x's picture.

    A random VAE turns any frame into noise, so nothing downstream shows what the stages do. Here
    every residual branch is zeroed (ResNet blocks and attention become identities), the
    convolutions carry channel c through unchanged (the up- and down-samplers average 3x3), and the first
    convolution writes each colour twice, as +x and -x: after the per-channel GroupNorm and SiLU
    that the architecture imposes, silu(a) - silu(-a) = a recovers the normalised colour exactly.
    What is lost is each channel's mean and contrast per frame (GroupNorm), and detail finer than
    the 8x latent grid; the shapes and their motion stay (pixel correlation about 0.88). The
    latent then has about unit spread, so the config's scaling factor should be 1.
    """
    half = vae.config.block_out_channels[0] // 2
    enc, dec = vae.encoder, vae.decoder
    _pair_in(enc.conv_in, half)
    for b in enc.down_blocks:
        _identity_blocks(b)
        for ds in b.downsamplers or []:
            _carry(ds.conv, average=True)
    _identity_blocks(enc.mid_block)
    _pair_out(enc.conv_out, half, 1.0)
    enc.conv_out.bias[vae.config.latent_channels:] = -20.0     # log-variance: a near-certain latent
    _carry(vae.quant_conv)
    _carry(vae.post_quant_conv)
    _pair_in(dec.conv_in, half)
    for b in dec.up_blocks:
        _identity_blocks(b)
        for us in b.upsamplers or []:
            _carry(us.conv, average=True)       # nearest 2x then a 3x3 mean: smooth, not blocky
    _identity_blocks(dec.mid_block)
    _pair_out(dec.conv_out, half, 0.5)


# ---------------------------------------------------------------- writing

def make_tiny_model(dir: str | Path, single_file: bool = False, seed: int = 0, config: str = CONFIG_NAME,
                    passthrough_vae: bool = False) -> Path:
    """Write a tiny random SD model under `dir`; return the diffusers folder or the .safetensors path.

    single_file=False: `dir` becomes a diffusers folder (model_index.json, unet/, vae/, ...).
    single_file=True: writes `dir/<config>.safetensors` (or `dir` itself when it ends in .safetensors).
    config: "tiny-sd1" (SD 1.x family, the default), "tiny-sd2" (OpenCLIP text layout, v-prediction)
    or "tiny-sdxl" (SDXL family).
    passthrough_vae: the VAE keeps the picture (`make_passthrough_vae`; the demo uses it).
    """
    from safetensors.torch import save_file

    from vid2vid.diffusion.quiet import quiet_libraries

    quiet_libraries()
    parts = build_tiny_components(seed, config)
    if passthrough_vae:
        make_passthrough_vae(parts["vae"])
        parts["vae"].register_to_config(scaling_factor=1.0)
    target = Path(dir)
    if single_file:
        path = target if target.suffix == ".safetensors" else target / f"{config}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        sd = original_layout_state_dict(parts["unet"], parts["vae"], parts["text_encoder"],
                                        parts.get("text_encoder_2"), openclip_text=config == "tiny-sd2")
        tmp = path.with_name(path.name + ".tmp")
        save_file(sd, str(tmp), metadata={METADATA_KEY: config, "format": "pt"})
        tmp.replace(path)
        return path
    if target.exists() and not target.is_dir():
        raise BadInput(f"{target} exists and is not a folder; pick another path for the tiny model")
    if "text_encoder_2" in parts:
        from diffusers import StableDiffusionXLPipeline

        pipe = StableDiffusionXLPipeline(**parts)
    else:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.save_pretrained(str(target), safe_serialization=True)
    return target


# ---------------------------------------------------------------- a tiny TAESD-style VAE

TINY_VAE_CONFIG = {"encoder_block_out_channels": [16, 16, 16, 16], "decoder_block_out_channels": [16, 16, 16, 16],
                   "num_encoder_blocks": [1, 1, 1, 1], "num_decoder_blocks": [1, 1, 1, 1], "latent_channels": 4}
TINY_VAE_FILE = "tiny-taesd.safetensors"


def build_tiny_vae(seed: int = 0):
    """A small random AutoencoderTiny (TAESD's architecture, 16 channels; scale factor 8, 4 latent channels)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny.from_config(TINY_VAE_CONFIG).eval()


def make_tiny_vae(dir: str | Path, single_file: bool = False, seed: int = 0) -> Path:
    """Write a tiny VAE for `--vae`: a diffusers folder at `dir`, or `dir/tiny-taesd.safetensors`."""
    vae = build_tiny_vae(seed)
    return write_tiny(vae, dir, single_file, TINY_VAE_FILE, lambda: {k: v.contiguous() for k, v in
                                                                     vae.state_dict().items()}, "tiny VAE")


def write_tiny(part, dir: str | Path, single_file: bool, file_name: str, state, what: str,
               metadata: dict[str, str] | None = None) -> Path:
    """A tiny part written as a diffusers folder `dir` (`save_pretrained`), or with single_file as
    `dir/<file_name>` (or `dir` itself when it ends in .safetensors) holding `state()`, atomically."""
    target = Path(dir)
    if single_file:
        from safetensors.torch import save_file

        path = target if target.suffix == ".safetensors" else target / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file(state(), str(tmp), metadata=metadata)
        tmp.replace(path)
        return path
    if target.exists() and not target.is_dir():
        raise BadInput(f"{target} exists and is not a folder; pick another path for the {what}")
    part.save_pretrained(str(target), safe_serialization=True)
    return target


def write_taesd_pth(vae, dir: str | Path, prefix: str = "taesd") -> tuple[Path, Path]:
    """An AutoencoderTiny saved as TAESD's original two files (`<prefix>_encoder.pth`, `<prefix>_decoder.pth`:
    nn.Sequential keys, the decoder's shifted by one for its leading clamp)."""
    target = Path(dir)
    target.mkdir(parents=True, exist_ok=True)
    sd = vae.state_dict()
    enc = {k[len("encoder.layers."):]: v.clone() for k, v in sd.items() if k.startswith("encoder.layers.")}
    dec = {}
    for k, v in sd.items():
        if k.startswith("decoder.layers."):
            head, rest = k[len("decoder.layers."):].split(".", 1)
            dec[f"{int(head) + 1}.{rest}"] = v.clone()
    paths = target / f"{prefix}_encoder.pth", target / f"{prefix}_decoder.pth"
    torch.save(enc, paths[0])
    torch.save(dec, paths[1])
    return paths
