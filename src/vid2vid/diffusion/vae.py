"""A separate VAE (`--vae`): a full one as A1111 users swap them, or a tiny one (TAESD).

    vae = load_vae("vae-ft-mse-840000-ema-pruned.safetensors", torch.float32, own=pipe.vae,
                   unet_config=pipe.unet.config, sdxl=False)
    latents = latents_of(vae, images)            # (B, 3, H, W) in [-1, 1] -> unscaled latents

What `spec` may be:
- a single file (.safetensors / .pt / .ckpt / .pth), told apart by its keys:
  - original (CompVis / A1111) AutoencoderKL layout (`encoder.down.0.block...`, optionally under
    `first_stage_model.`): loaded with diffusers' `AutoencoderKL.from_single_file` and the base
    model's own VAE config (no network);
  - diffusers AutoencoderKL layout (`encoder.down_blocks...`): the base model's VAE config;
  - diffusers AutoencoderTiny layout (`encoder.layers.N...`, TAESD's hub files);
  - one of TAESD's original files, `taesd_encoder.pth` / `taesd_decoder.pth` (or taesdxl_,
    keys `N.conv...`): the other one is taken from beside it. The original decoder starts
    with a parameter-free clamp, so its layer N is diffusers' `decoder.layers.N-1`; the
    encoder's N is `encoder.layers.N`. Their channel widths and block counts are read off the
    weights, so any TAESD-shaped pair loads;
- a folder: a diffusers VAE folder (config.json names AutoencoderKL or AutoencoderTiny), a
  model folder with a `vae/` inside, or a folder holding the two original TAESD .pth files;
- a hub id (owner/name): its config.json tells the class (from the local cache when offline).

Checks: the VAE's latent channels must equal the UNet's input channels (SD 3 / Flux VAEs have
16); an SDXL VAE on an SD 1.x/2.x model, or the other way round, is refused where the VAE says
what it is for: an AutoencoderKL's scaling factor (SDXL 0.13025, SD 0.18215), a TAESDXL name
(taesdxl_*.pth, a folder or hub id naming taesdxl), or a single file's `modelspec.architecture`.
A bare single file of the other family with the same shapes cannot be told apart (README).

The tiny VAE's latents are already scaled like SD's (its scaling factor is 1): the engine reads
the scaling from whichever VAE it runs.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import torch

from vid2vid.core.errors import BadInput, ModelNotFound

SD_SCALING = 0.18215
SDXL_SCALING = 0.13025
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
SOURCE_FILE = "vid2vid.source_file"


def is_tiny(vae) -> bool:
    """A TAESD-style tiny autoencoder (diffusers AutoencoderTiny)."""
    from diffusers import AutoencoderTiny

    return isinstance(vae, AutoencoderTiny)


def latents_of(vae, x: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] -> unscaled latents: the KL posterior's mean or the tiny encoder's output."""
    out = vae.encode(x)
    return out.latents if hasattr(out, "latents") else out.latent_dist.mean


# ---------------------------------------------------------------- reading files

def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from vid2vid.diffusion.checkpoints import read_state_file

    return read_state_file(path, "VAE file")


def _layout(keys) -> str:
    """'kl-original', 'kl-diffusers', 'tiny-diffusers', 'taesd-part' or 'unknown'."""
    keys = list(keys)
    if any(k.startswith(("encoder.layers.", "decoder.layers.")) for k in keys):
        return "tiny-diffusers"
    if any(".down_blocks." in k or k.startswith(("encoder.down_blocks", "decoder.up_blocks")) for k in keys):
        return "kl-diffusers"
    if any(re.match(r"(first_stage_model\.)?(encoder\.down\.|decoder\.up\.)", k) for k in keys):
        return "kl-original"
    if keys and all(re.match(r"\d+\.", k) for k in keys):
        return "taesd-part"
    return "unknown"


# ---------------------------------------------------------------- TAESD's original .pth files

def _sequential_layers(state: dict[str, torch.Tensor]) -> list[tuple[int, str, torch.Tensor]]:
    """(index, 'block' | 'conv', first weight) per parameterised layer of an nn.Sequential state dict."""
    out = []
    for i in sorted({int(k.split(".", 1)[0]) for k in state}):
        if f"{i}.conv.0.weight" in state:
            out.append((i, "block", state[f"{i}.conv.0.weight"]))
        elif f"{i}.weight" in state:
            out.append((i, "conv" if f"{i}.bias" in state else "conv-nobias", state[f"{i}.weight"]))
    return out


def _groups(layers) -> tuple[list[int], list[int]]:
    """Block counts and channel widths of the groups of blocks that bias-free convolutions separate.

    `layers` is the whole parameterised list (first and last convolution included); a group's width
    is its blocks' width, or, without blocks, the width of the convolution that opens it.
    """
    counts, widths = [0], [int(layers[0][2].shape[0])]
    for _, kind, w in layers[1:-1]:
        if kind == "block":
            counts[-1] += 1
            widths[-1] = int(w.shape[0])
        else:
            counts.append(0)
            widths.append(int(w.shape[0]))
    return counts, widths


def taesd_config(encoder: dict[str, torch.Tensor], decoder: dict[str, torch.Tensor]) -> dict:
    """An AutoencoderTiny config read off original TAESD encoder / decoder state dicts."""
    enc, dec = _sequential_layers(encoder), _sequential_layers(decoder)
    if len(enc) < 2 or len(dec) < 2:
        raise BadInput("the TAESD files hold too few layers; are they taesd_encoder.pth / taesd_decoder.pth?")
    enc_counts, enc_widths = _groups(enc)
    dec_counts, dec_widths = _groups(dec)
    return {"encoder_block_out_channels": enc_widths, "num_encoder_blocks": enc_counts,
            "decoder_block_out_channels": dec_widths, "num_decoder_blocks": dec_counts,
            "latent_channels": int(enc[-1][2].shape[0]), "in_channels": int(enc[0][2].shape[1]),
            "out_channels": int(dec[-1][2].shape[0])}


def taesd_to_diffusers(encoder: dict[str, torch.Tensor], decoder: dict[str, torch.Tensor]) -> dict:
    """Original TAESD keys -> AutoencoderTiny keys (encoder N -> encoder.layers.N, decoder N -> decoder.layers.N-1)."""
    out = {f"encoder.layers.{k}": v for k, v in encoder.items()}
    for k, v in decoder.items():
        head, rest = k.split(".", 1)
        if int(head) < 1:
            raise BadInput("TAESD decoder file has weights in its first layer (the clamp has none); "
                           "is it a TAESD decoder?")
        out[f"decoder.layers.{int(head) - 1}.{rest}"] = v
    return out


def _taesd_pair(path: Path) -> tuple[Path, Path]:
    """(encoder, decoder) .pth of an original TAESD pair: a folder holding both, or either file."""
    if path.is_dir():
        encs = sorted(path.glob("taesd*_encoder.pth"))
        if not encs:
            raise ModelNotFound(f"{path} has no taesd*_encoder.pth / taesd*_decoder.pth pair")
        enc = encs[0]
    else:
        enc = path
    name = enc.name
    if "decoder" in name:
        enc = enc.with_name(name.replace("decoder", "encoder"))
    dec = enc.with_name(enc.name.replace("encoder", "decoder"))
    for p in (enc, dec):
        if not p.is_file():
            raise ModelNotFound(f"TAESD file {p} is missing: the original TAESD comes as two files "
                                f"({enc.name} and {dec.name}); put both in one folder")
    return enc, dec


def load_taesd_pair(path: Path, dtype: torch.dtype):
    from diffusers import AutoencoderTiny

    enc_path, dec_path = _taesd_pair(path)
    encoder, _ = _read_state(enc_path)
    decoder, _ = _read_state(dec_path)
    if _layout(encoder) != "taesd-part" or _layout(decoder) != "taesd-part":
        raise BadInput(f"{enc_path} / {dec_path} are not TAESD's original encoder and decoder files")
    vae = AutoencoderTiny.from_config(taesd_config(encoder, decoder))
    _load_strict(vae, taesd_to_diffusers(encoder, decoder), enc_path)
    return vae.to(dtype), {SOURCE_FILE: enc_path.name}     # the file name says taesd or taesdxl


def _load_strict(module, state: dict, path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BadInput(f"VAE weights in {path} do not fit their layout: {str(exc).splitlines()[0]}") from exc


# ---------------------------------------------------------------- the kinds of spec

def _tiny_config_for(state: dict) -> dict:
    """An AutoencoderTiny config for a diffusers-layout tiny state dict (read off the weights)."""
    enc = {k[len("encoder.layers."):]: v for k, v in state.items() if k.startswith("encoder.layers.")}
    dec = {}
    for k, v in state.items():
        if k.startswith("decoder.layers."):
            head, rest = k[len("decoder.layers."):].split(".", 1)
            dec[f"{int(head) + 1}.{rest}"] = v
    return taesd_config(enc, dec)


def _own_config_folder(own, tmp: Path) -> Path:
    """The base model's VAE config written as <tmp>/vae/config.json (for from_single_file)."""
    (tmp / "vae").mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in dict(own.config).items() if not k.startswith("_")}
    cfg["_class_name"] = "AutoencoderKL"
    (tmp / "vae" / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return tmp


def load_file(path: Path, dtype: torch.dtype, own=None):
    """A VAE from one weights file (any layout in the module docstring)."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise BadInput(f"VAE {path}: unknown file type '{path.suffix}'; use a .safetensors file, a folder or a hub id")
    if path.suffix.lower() == ".pth" and re.search(r"(en|de)coder", path.name):
        state, meta = _read_state(path)
        if _layout(state) == "taesd-part":
            return load_taesd_pair(path, dtype)
    state, meta = _read_state(path)
    layout = _layout(state)
    if layout == "tiny-diffusers":
        vae = AutoencoderTiny.from_config(_tiny_config_for(state))
        _load_strict(vae, state, path)
        return vae.to(dtype), meta
    if layout == "taesd-part":
        return load_taesd_pair(path, dtype)
    if own is None or not hasattr(own.config, "block_out_channels"):
        raise BadInput(f"VAE {path} is a full VAE file; it needs the base model's VAE config, and the model has none")
    if layout == "kl-diffusers":
        vae = AutoencoderKL.from_config({k: v for k, v in dict(own.config).items() if not k.startswith("_")})
        _load_strict(vae, state, path)
        return vae.to(dtype), meta
    if layout == "kl-original":
        del state
        with tempfile.TemporaryDirectory(prefix="vid2vid-vae-") as tmp:
            folder = _own_config_folder(own, Path(tmp))
            try:
                vae = AutoencoderKL.from_single_file(str(path), config=str(folder), subfolder="vae",
                                                     local_files_only=True, torch_dtype=dtype)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise BadInput(f"cannot load VAE {path} with the model's VAE layout: {exc}") from exc
        return vae, meta
    raise BadInput(f"{path} is not a VAE this loader knows (no encoder/decoder weights of an AutoencoderKL "
                   "or a TAESD); pass a VAE .safetensors file, a folder or a hub id")


def load_folder(folder: Path, dtype: torch.dtype):
    """A diffusers VAE folder (or a model folder's vae/), or a folder of TAESD .pth files."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    if (folder / "vae" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "vae"
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        if any(folder.glob("taesd*_encoder.pth")):
            return load_taesd_pair(folder, dtype)
        raise ModelNotFound(f"VAE folder {folder} has no config.json (nor vae/config.json, nor TAESD .pth files)")
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cls = {"AutoencoderKL": AutoencoderKL, "AutoencoderTiny": AutoencoderTiny}.get(cfg.get("_class_name"))
    if cls is None:
        raise BadInput(f"VAE folder {folder} holds a {cfg.get('_class_name')!r}; use an AutoencoderKL or "
                       "AutoencoderTiny (TAESD) folder")
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype), {}
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load the VAE folder {folder}: {exc}") from exc


def load_hub(repo_id: str, dtype: torch.dtype):
    """A hub id whose config.json names AutoencoderKL or AutoencoderTiny (cache only when offline)."""
    from diffusers import AutoencoderKL, AutoencoderTiny
    from huggingface_hub import hf_hub_download

    from vid2vid.models.hub import download_hint, offline_reason

    reason = offline_reason()
    offline, how = reason is not None, download_hint(repo_id, "the VAE")
    try:
        cfg_path = hf_hub_download(repo_id, "config.json", local_files_only=offline)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"VAE '{repo_id}' is not a local file or folder and not in the local hub cache"
                            f"{f' (the hub is offline: {reason})' if offline else ''}; {how}") from exc
    cfg = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
    cls = {"AutoencoderKL": AutoencoderKL, "AutoencoderTiny": AutoencoderTiny}.get(cfg.get("_class_name"))
    if cls is None:
        raise BadInput(f"hub VAE '{repo_id}' is a {cfg.get('_class_name')!r}; use an AutoencoderKL or AutoencoderTiny")
    try:
        return cls.from_pretrained(repo_id, local_files_only=offline, torch_dtype=dtype), {}
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load VAE '{repo_id}' ({exc}); {how}") from exc


# ---------------------------------------------------------------- checks and entry point

def vae_family(vae, name: str, metadata: dict | None = None) -> str | None:
    """'sdxl' or 'sd' when the VAE says which family it is for, else None."""
    arch = (metadata or {}).get("modelspec.architecture", "").lower()
    if arch:
        return "sdxl" if "xl" in arch else "sd"
    if is_tiny(vae):
        low = (name + " " + (metadata or {}).get(SOURCE_FILE, "")).lower()
        if "taesdxl" in low or "taesd-xl" in low or "taesd_xl" in low:
            return "sdxl"
        if "taesd" in low:
            return "sd"
        return None
    scaling = getattr(vae.config, "scaling_factor", None)
    if scaling is not None and abs(scaling - SDXL_SCALING) < 1e-4:
        return "sdxl"
    if scaling is not None and abs(scaling - SD_SCALING) < 1e-4:
        return "sd"
    return None


def check_vae(vae, spec: str, unet_config, sdxl: bool, metadata: dict | None = None) -> None:
    """Refuse a VAE whose latents do not fit the UNet, or that says it is for the other model family."""
    lat = int(getattr(vae.config, "latent_channels", 0) or 0)
    need = int(unet_config.get("in_channels", 4) if hasattr(unet_config, "get") else unet_config.in_channels)
    if lat != need:
        raise BadInput("{img2img.vae} %s makes %d latent channels, the model's UNet takes %d; use a VAE made for "
                       "this model family (SD 1.x/2.x/SDXL VAEs and TAESD/TAESDXL have 4)" % (spec, lat, need))
    fam = vae_family(vae, spec, metadata)
    if fam == "sdxl" and not sdxl:
        raise BadInput("{img2img.vae} %s is an SDXL VAE but the model is SD 1.x/2.x; use an SD VAE "
                       "(e.g. vae-ft-mse-840000, or taesd instead of taesdxl)" % spec)
    if fam == "sd" and sdxl:
        raise BadInput("{img2img.vae} %s is an SD 1.x/2.x VAE but the model is SDXL; use an SDXL VAE "
                       "(e.g. sdxl-vae-fp16-fix, or taesdxl instead of taesd)" % spec)


def check_vae_spec(spec: str) -> None:
    """Raise ModelNotFound when `spec` is neither an existing file or folder nor shaped like a hub id."""
    from vid2vid.models.hub import looks_like_hub_id

    spec = (spec or "").strip()
    path = Path(spec).expanduser()
    if path.exists():
        return
    if not looks_like_hub_id(spec) or spec.lower().endswith(WEIGHT_SUFFIXES) or spec.startswith((".", "/", "~")):
        raise ModelNotFound("{img2img.vae} '%s' not found: no such file or folder (and not a hub id like "
                            "owner/name)" % spec)


def load_vae(spec: str, dtype: torch.dtype, own=None, unet_config=None, sdxl: bool = False):
    """Load and check the VAE `spec` (file, folder or hub id; see the module docstring)."""
    spec = (spec or "").strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        vae, meta = load_folder(path, dtype)
    elif path.is_file():
        vae, meta = load_file(path, dtype, own)
    else:
        check_vae_spec(spec)
        vae, meta = load_hub(spec, dtype)
    if unet_config is not None:
        check_vae(vae, spec, unet_config, sdxl, meta)
    return vae.eval().requires_grad_(False)
