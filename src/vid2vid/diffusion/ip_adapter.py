"""IP-Adapter files: reading them, checking them against the UNet, and their parts as modules.

An IP-Adapter (image prompt adapter) turns a CLIP image embedding into a few extra tokens that
every cross-attention layer of the UNet reads beside the text (see `ip_attention.py`). Its file
holds two groups of weights:
- `image_proj`: the projection of the embedding into tokens of the text's width: `proj` +
  `norm` (ip-adapter_sd15, ip-adapter_sdxl_vit-h: 4 tokens from the encoder's projected
  embedding), a perceiver resampler with `latents` (the plus and plus-face adapters: 16 tokens from
  the encoder's penultimate hidden states), or `proj.0..3` (full-face: 257 tokens);
- `ip_adapter`: per cross-attention layer `N.to_k_ip.weight` and `N.to_v_ip.weight`, numbered
  1, 3, 5, ... in the order of the UNet's attention processors (the original numbering counts the
  self-attention layers too).
A `.safetensors` file holds them flat (`image_proj.proj.weight`), a `.bin` as two nested dicts.
The projection becomes diffusers' own module (`ImageProjection`, `IPAdapterPlusImageProjection`,
...) through the UNet's loader method `_convert_ip_adapter_image_proj_to_diffusers`, the same one
`load_ip_adapter` uses, so the weights mean what they mean there.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from vid2vid.core.errors import BadInput, ModelNotFound

SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
WIDTH_FAMILIES = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL", 32: "SD 1.x (tiny test model)",
                  96: "SDXL (tiny test model)"}


@dataclass
class AdapterFile:
    """The weights of one IP-Adapter file and what they say about themselves."""

    path: Path
    image_proj: dict[str, torch.Tensor]
    layers: dict[str, torch.Tensor]         # "N.to_k_ip.weight" / "N.to_v_ip.weight"
    kind: str                               # "embeds" (projected CLIP embedding) | "hidden" (penultimate states)
    embed_width: int                        # width of what the projection takes from the image encoder
    text_width: int                         # width of the tokens it makes (the UNet's cross-attention width)

    @property
    def layer_count(self) -> int:
        return sum(1 for k in self.layers if k.endswith(".to_k_ip.weight"))


def width_family(width: int) -> str:
    return WIDTH_FAMILIES.get(width) or f"a model with text width {width}"


# ---------------------------------------------------------------- finding and reading the file

def adapter_file(spec: str) -> Path:
    """The adapter file of `spec`: the file itself, or the one adapter file in a folder."""
    p = Path((spec or "").strip()).expanduser()
    if not str(spec or "").strip():
        raise BadInput("{img2img.ip_adapter}: no model; give the IP-Adapter file or its folder")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        named = [f for f in files if "ip" in f.name.lower() and "adapter" in f.name.lower()]
        files = named or files
        if len(files) != 1:
            found = ", ".join(f.name for f in files) or "none"
            raise BadInput(f"{{img2img.ip_adapter}} '{spec}': the folder must hold one IP-Adapter file "
                           f"(.safetensors or .bin; found: {found}); give the file itself")
        return files[0]
    if not p.is_file():
        raise ModelNotFound(f"{{img2img.ip_adapter}} '{spec}': no such file or folder; give an IP-Adapter file "
                            "such as ip-adapter_sd15.safetensors or the folder holding it")
    if p.suffix.lower() not in SUFFIXES:
        raise BadInput(f"{{img2img.ip_adapter}} {p}: unknown file type '{p.suffix}'; use a .safetensors or .bin "
                       "IP-Adapter file")
    return p


def _raw_groups(path: Path) -> dict:
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            flat = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise BadInput(f"cannot read IP-Adapter {path}: {exc}; is the file complete?") from exc
        groups: dict[str, dict] = {}
        for key, value in flat.items():
            head, _, rest = key.partition(".")
            groups.setdefault(head, {})[rest] = value
        return groups
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise BadInput(f"cannot read IP-Adapter {path}: {exc}; is the file complete? (pickles that hold code "
                       "are refused: convert it to .safetensors)") from exc
    return state if isinstance(state, dict) else {}


def read_adapter(spec: str) -> AdapterFile:
    """Read an IP-Adapter file (or the one in a folder); BadInput when it is something else."""
    path = adapter_file(spec)
    groups = _raw_groups(path)
    proj, layers = groups.get("image_proj"), groups.get("ip_adapter")
    if not isinstance(proj, dict) or not isinstance(layers, dict) or "1.to_k_ip.weight" not in layers:
        raise BadInput(f"{path} is not an IP-Adapter (no image_proj and ip_adapter weights); pass a file such "
                       "as ip-adapter_sd15.safetensors with {img2img.ip_adapter}")
    if any("lora" in k for k in layers) or "perceiver_resampler.proj_in.weight" in proj or "norm.weight" in proj \
            and "proj.weight" not in proj:
        raise BadInput(f"{path} is an IP-Adapter FaceID file, which needs a face recognition model; use "
                       "ip-adapter-plus-face instead")
    if "proj.weight" in proj:                       # 4 tokens from the projected embedding
        kind, embed_width = "embeds", proj["proj.weight"].shape[1]
    elif "latents" in proj:                         # plus / plus-face: a resampler over hidden states
        kind, embed_width = "hidden", proj["proj_in.weight"].shape[1]
    elif "proj.0.weight" in proj:                   # full-face: an MLP over hidden states
        kind, embed_width = "hidden", proj["proj.0.weight"].shape[1]
    else:
        raise BadInput(f"{path}: this kind of IP-Adapter projection is not known ({', '.join(sorted(proj)[:4])}...)")
    text_width = layers["1.to_k_ip.weight"].shape[1]
    return AdapterFile(path, proj, layers, kind, int(embed_width), int(text_width))


# ---------------------------------------------------------------- against the UNet

def cross_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Processor names of the UNet's cross-attention layers, in the order the adapter numbers them."""
    return [name for name in unet.attn_processors
            if name.endswith("attn2.processor") and "motion_modules" not in name]


def check_fits(adapter: AdapterFile, unet: torch.nn.Module) -> None:
    """Refuse an adapter made for another model family (or another UNet layout)."""
    width = unet.config.get("cross_attention_dim")
    if isinstance(width, (list, tuple)):
        width = width[0]
    if adapter.text_width != width:
        raise BadInput(f"IP-Adapter {adapter.path.name} is made for {width_family(adapter.text_width)}, but the "
                       f"model is {width_family(int(width))}; use an IP-Adapter made for {width_family(int(width))}")
    names = cross_attention_layers(unet)
    if adapter.layer_count != len(names):
        raise BadInput(f"IP-Adapter {adapter.path.name} has {adapter.layer_count} cross-attention layers, this "
                       f"model's UNet {len(names)}; use an IP-Adapter trained for this base model")
    for n, name in enumerate(names):
        attn = unet.get_submodule(name.rsplit(".", 1)[0])
        have = tuple(adapter.layers[f"{2 * n + 1}.to_k_ip.weight"].shape)
        if have != (attn.to_k.out_features, width):
            raise BadInput(f"IP-Adapter {adapter.path.name} does not fit this model's UNet (layer {name}: "
                           f"{have} vs {(attn.to_k.out_features, width)}); use one trained for this base model")


def layer_weights(adapter: AdapterFile, unet: torch.nn.Module) -> dict[str, tuple[torch.nn.Linear, torch.nn.Linear]]:
    """Per cross-attention processor name: the adapter's (to_k_ip, to_v_ip) as Linear layers."""
    out = {}
    for n, name in enumerate(cross_attention_layers(unet)):
        pair = []
        for what in ("to_k_ip", "to_v_ip"):
            w = adapter.layers[f"{2 * n + 1}.{what}.weight"]
            lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            lin.weight.data = w.detach().clone().float()
            pair.append(lin.requires_grad_(False))
        out[name] = (pair[0], pair[1])
    return out


def image_projection(adapter: AdapterFile, unet: torch.nn.Module) -> torch.nn.Module:
    """The adapter's image projection as diffusers' module (the loader method `load_ip_adapter` uses)."""
    try:
        proj = unet._convert_ip_adapter_image_proj_to_diffusers(
            {k: v.float() for k, v in adapter.image_proj.items()}, low_cpu_mem_usage=False)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise BadInput(f"cannot load the image projection of IP-Adapter {adapter.path}: "
                       f"{str(exc).splitlines()[0][:300]}") from exc
    return proj.float().eval().requires_grad_(False)
