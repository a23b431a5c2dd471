"""ControlNet guidance inside our own sampling loop.

    net = load_controlnet("control_v11p_sd15_canny.pth", model.device, model.dtype)
    guide = ControlGuide([ControlUnit(net, scale=1.0, start=0.0, end=0.8)], engine.real_sigmas, model.unet)
    cond = guide.bind(images)        # images[frame][unit]: canvas-sized HxWx3 control images
    denoiser(x, sigma, control=cond) # the UNet call gets the summed residuals of the active nets

What a ControlNet adds: for the UNet input z at timestep t with text embeddings e, each net n
computes residuals (down_n, mid_n) = scale_n * ControlNet_n(z, t, e, image_n); the UNet adds
sum_n down_n to its skip connections and sum_n mid_n to its middle block output (the same sum
as diffusers' `MultiControlNetModel`). With guidance, both halves of the batch [uncond, cond]
get the same control image, as in diffusers' pipelines (no "guess mode").

Window: the sampler runs N = len(real sigmas) - 1 steps over the real (truncated) schedule. Net
n is used at step i when start_n <= i / N and (i + 1) / N <= end_n (diffusers' rule for
`control_guidance_start/end`, applied to the schedule actually run). A model call at sigma is
step i where sigma is the i-th real sigma (nearest in log sigma): Heun's corrector at sigma_(i+1)
counts as step i + 1. Outside its window a net is not called at all.

Loading (`load_controlnet`) needs no network: a diffusers folder (config.json +
weights), a single file in the original layout (`control_model.*`, A1111's .pth/.safetensors)
or in diffusers' layout, loaded with the config bundled in `vid2vid/data/configs/controlnet-*`
chosen from the file's text width, or a hub id from the local hub cache when offline.
`check_family` refuses a ControlNet made for another base model family than the UNet's.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vid2vid.core import imageops
from vid2vid.core.errors import BadInput, ModelNotFound

ORIGINAL_PREFIX = "control_model."
HINT_KEY = "input_hint_block.0.weight"                        # original layout, first conv on the image
DIFFUSERS_HINT_KEY = "controlnet_cond_embedding.conv_in.weight"
CONFIG_BY_TEXT_WIDTH = {768: "controlnet-sd1", 1024: "controlnet-sd2", 2048: "controlnet-sdxl",
                        32: "tiny-controlnet-sd1"}   # 32: the tiny test model (a .pth has no metadata)
METADATA_KEY = "vid2vid_config"                               # tiny test files name their config
SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
# The config fields that must agree between a ControlNet and the UNet it steers.
ARCHITECTURE_KEYS = ("in_channels", "block_out_channels", "layers_per_block", "down_block_types")


# ---------------------------------------------------------------- families

def family(cfg) -> str:
    """A model family name for messages, from a UNet's or a ControlNet's config."""
    width = cfg.get("cross_attention_dim")
    xl = cfg.get("addition_embed_type") == "text_time"
    names = {(768, False): "SD 1.x", (1024, False): "SD 2.x", (2048, True): "SDXL",
             (32, False): "SD 1.x (tiny test model)", (96, True): "SDXL (tiny test model)"}
    return names.get((width, xl)) or f"{'an SDXL-like' if xl else 'an SD-like'} model with text width {width}"


def check_family(cn_config, unet_config, name: str) -> None:
    """Refuse a ControlNet whose base model family (or architecture) is not the UNet's."""
    same_text = (cn_config.get("cross_attention_dim") == unet_config.get("cross_attention_dim")
                 and cn_config.get("addition_embed_type") == unet_config.get("addition_embed_type"))
    if not same_text:
        raise BadInput(f"ControlNet {name} is made for {family(cn_config)}, but the model is {family(unet_config)}; "
                       f"use a ControlNet made for {family(unet_config)}")
    for key in ARCHITECTURE_KEYS:
        a, b = cn_config.get(key), unet_config.get(key)
        if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            raise BadInput(f"ControlNet {name} does not fit this model's UNet ({key} {a} vs {b}); "
                           f"use a ControlNet trained for this base model")


# ---------------------------------------------------------------- loading

def dtype_kw(dtype: torch.dtype) -> dict:
    from vid2vid.diffusion.loading import dtype_kw as kw

    return kw(dtype)


def bundled_config(name: str) -> Path:
    from vid2vid.diffusion.tiny import bundled_config_dir

    folder = bundled_config_dir(name)
    if not (folder / "config.json").is_file():
        raise BadInput(f"no bundled ControlNet config named '{name}'; update vid2vid")
    return folder


def file_layout(shapes: dict[str, tuple[int, ...]], path: Path) -> str:
    """'original' (control_model.* or the bare original names) or 'diffusers'; a foreign file is refused."""
    if DIFFUSERS_HINT_KEY in shapes:
        return "diffusers"
    if ORIGINAL_PREFIX + HINT_KEY in shapes or (HINT_KEY in shapes and "time_embed.0.weight" in shapes):
        return "original"
    if any(k.startswith(("lora_unet_", "lora_te_", "lora.")) for k in shapes) or \
            any(".lora_down." in k or ".lora_A." in k for k in shapes):
        raise BadInput(f"{path} is a LoRA, not a ControlNet; pass it with {{img2img.loras}}, "
                       "and a ControlNet with {img2img.controlnet}")
    if "model.diffusion_model.input_blocks.0.0.weight" in shapes:
        raise BadInput(f"{path} is a Stable Diffusion checkpoint, not a ControlNet; pass it as {{img2img.model}}, "
                       "and a ControlNet file (such as control_v11p_sd15_canny.pth) with {img2img.controlnet}")
    raise BadInput(f"{path} is not a ControlNet (no control_model.* or controlnet_cond_embedding weights); "
                   "pass a ControlNet file such as control_v11p_sd15_canny.pth, its diffusers folder or a hub id")


def single_file_config(shapes: dict[str, tuple[int, ...]], metadata: dict[str, str], path: Path) -> str:
    """The bundled ControlNet config that fits a single file: named by its metadata, else by its text width."""
    named = metadata.get(METADATA_KEY)
    if named:
        return named
    widths = {shape[1] for key, shape in shapes.items() if key.endswith("attn2.to_k.weight") and len(shape) == 2}
    if len(widths) == 1 and next(iter(widths)) in CONFIG_BY_TEXT_WIDTH:
        return CONFIG_BY_TEXT_WIDTH[next(iter(widths))]
    raise BadInput(f"{path}: cannot tell which base model this ControlNet is for (text width {sorted(widths)}; "
                   "known: 768 SD 1.x, 1024 SD 2.x, 2048 SDXL); use its diffusers folder (config.json) instead")


def _transformer_depths(shapes: dict[str, tuple[int, ...]], blocks: int) -> list[int]:
    """Transformer layers per down block of a diffusers-layout file (SDXL's small and mid variants differ)."""
    depth = [0] * blocks
    for key in shapes:
        m = re.match(r"down_blocks\.(\d+)\.attentions\.0\.transformer_blocks\.(\d+)\.", key)
        if m and int(m.group(1)) < blocks:
            depth[int(m.group(1))] = max(depth[int(m.group(1))], int(m.group(2)) + 1)
    return depth


def _load_file(path: Path, dtype: torch.dtype):
    from diffusers import ControlNetModel

    from vid2vid.diffusion.checkpoints import read_checkpoint_header

    if path.suffix.lower() not in SUFFIXES:
        raise BadInput(f"ControlNet {path}: unknown file type '{path.suffix}'; use a .safetensors or .pth file, "
                       "a diffusers folder or a hub id")
    shapes, metadata = read_checkpoint_header(path)
    layout = file_layout(shapes, path)
    name = single_file_config(shapes, metadata, path)
    folder = bundled_config(name)
    try:
        if layout == "original":
            return ControlNetModel.from_single_file(str(path), config=str(folder), local_files_only=True,
                                                    **dtype_kw(dtype))
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        depths = _transformer_depths(shapes, len(cfg["down_block_types"]))
        if any(depths):
            cfg["transformer_layers_per_block"] = [max(d, 1) for d in depths]
        net = ControlNetModel.from_config(cfg)
        net.load_state_dict(_read_state(path), strict=True)
        return net.to(dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BadInput(f"cannot load {path} as a {name} ControlNet: {str(exc).splitlines()[0][:300]}") from exc


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from vid2vid.diffusion.checkpoints import read_state_file

    return read_state_file(path, "ControlNet file")[0]


def _load_folder(folder: Path, dtype: torch.dtype):
    from diffusers import ControlNetModel

    cfg_file = folder / "config.json"
    if (folder / "model_index.json").is_file() and not cfg_file.is_file():
        raise BadInput(f"{folder} is a Stable Diffusion model folder, not a ControlNet; pass it as {{img2img.model}}")
    if not cfg_file.is_file():
        raise ModelNotFound(f"{folder} is not a ControlNet folder (no config.json); pass a diffusers ControlNet "
                            "folder, a .safetensors/.pth file or a hub id")
    try:
        cls_name = json.loads(cfg_file.read_text(encoding="utf-8")).get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{cfg_file} is not valid JSON ({exc}); copy the ControlNet folder again") from exc
    if cls_name != "ControlNetModel":
        raise BadInput(f"{folder} holds a {cls_name}, not a ControlNetModel; pass a ControlNet folder")
    try:
        return ControlNetModel.from_pretrained(str(folder), local_files_only=True, **dtype_kw(dtype))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelNotFound(f"cannot load the ControlNet folder {folder}: {str(exc).splitlines()[0][:300]}; "
                            "copy the whole folder (config.json and the weights)") from exc


def _load_hub(repo_id: str, dtype: torch.dtype):
    from diffusers import ControlNetModel

    from vid2vid.models.hub import download_hint, offline_reason

    reason = offline_reason()
    offline, how = reason is not None, download_hint(repo_id, "the ControlNet", ".safetensors/.pth file")
    try:
        return ControlNetModel.from_pretrained(repo_id, local_files_only=offline, **dtype_kw(dtype))
    except (OSError, ValueError) as exc:
        where = f"not in the local hub cache and the hub is offline ({reason})" if offline else \
            f"not available from the hub ({str(exc).splitlines()[0][:200]})"
        raise ModelNotFound(f"ControlNet '{repo_id}' is not a local folder or file, {where}; {how}") from exc


def check_controlnet_spec(spec: str) -> str:
    """Check a ControlNet spec without loading it (a file or folder must exist, else the form of a hub id)."""
    from vid2vid.diffusion.loading import looks_like_path
    from vid2vid.models.hub import looks_like_hub_id

    spec = (spec or "").strip()
    if not spec:
        raise BadInput("a ControlNet has no model; give its file, diffusers folder or hub id")
    p = Path(spec).expanduser()
    if p.is_file() and p.suffix.lower() not in SUFFIXES:
        raise BadInput(f"ControlNet {p}: unknown file type '{p.suffix}'; use a .safetensors or .pth file, "
                       "a diffusers folder or a hub id")
    if not p.exists() and (looks_like_path(spec) or not looks_like_hub_id(spec)):
        raise ModelNotFound(f"ControlNet '{spec}' not found: no such file or folder (and not a hub id like owner/name)")
    return spec


def load_controlnet(spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """A diffusers `ControlNetModel` from a folder, a single file or a hub id, in eval mode on `device`."""
    from vid2vid.diffusion.loading import own_memory
    from vid2vid.diffusion.quiet import quiet_libraries

    quiet_libraries()
    spec = check_controlnet_spec(spec)
    p = Path(spec).expanduser()
    if p.is_dir():
        net = _load_folder(p, dtype)
    elif p.is_file():
        net = _load_file(p, dtype)
    else:
        net = _load_hub(spec, dtype)
    device = torch.device(device)
    net = net.to(device).eval().requires_grad_(False)
    if device.type == "cpu":
        own_memory(net)              # same bits from a folder and from a single file (see loading.py)
    return net


# ---------------------------------------------------------------- the window over the real schedule

def window(steps: int, start: float, end: float) -> list[bool]:
    """Whether a net runs at each of `steps` sampler steps: start <= i/N and (i+1)/N <= end (diffusers' rule)."""
    return [not (i / steps < start or (i + 1) / steps > end) for i in range(steps)]


def step_index(sigma: float, real_sigmas: np.ndarray) -> int:
    """Which step of the real schedule (0 .. N-1) a model call at `sigma` belongs to (nearest in log sigma)."""
    levels = np.asarray(real_sigmas, dtype=np.float64)[:-1]
    return int(np.argmin(np.abs(np.log(levels) - np.log(max(float(sigma), 1e-12)))))


# ---------------------------------------------------------------- conditioning

@dataclass
class ControlUnit:
    """One ControlNet with its scale and window (fractions of the real schedule)."""

    net: torch.nn.Module
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    name: str = ""


class ControlGuide:
    """The ControlNets of a run over its real schedule; `bind` gives one batch's conditioning."""

    def __init__(self, units: list[ControlUnit], real_sigmas, unet: torch.nn.Module | None = None, timings=None):
        from vid2vid.diffusion import shared_prefix

        self.units = list(units)
        self.real_sigmas = np.asarray(real_sigmas, dtype=np.float64)
        steps = len(self.real_sigmas) - 1
        self.windows = [window(steps, u.start, u.end) for u in self.units]
        self.timings = timings
        for u in self.units:
            if unet is not None:
                check_family(u.net.config, unet.config, u.name or type(u.net).__name__)
            # the net's text-free start (conv_in, first ResNet and self-attention) runs once for
            # both guidance halves, as the UNet's does: the control image is the same for both
            shared_prefix.install(u.net)

    def active(self, sigma: float) -> list[int]:
        """Indexes of the units that run for a model call at `sigma`."""
        i = step_index(sigma, self.real_sigmas)
        return [n for n, w in enumerate(self.windows) if w[i]]

    def bind(self, images: list[list[np.ndarray]]) -> Conditioning:
        """images[frame][unit]: HxWx3 control images (uint8, or float in [0, 1]) -> a batch's conditioning."""
        if any(len(frame) != len(self.units) for frame in images):
            raise ValueError(f"every frame needs one control image per ControlNet ({len(self.units)})")
        per_unit = []
        for n, u in enumerate(self.units):
            p = next(u.net.parameters())
            arr = np.stack([_unit_float(frame[n]) for frame in images])
            per_unit.append(torch.from_numpy(arr).permute(0, 3, 1, 2).to(p.device, p.dtype))
        return Conditioning(self, per_unit)

    def describe(self) -> list[dict]:
        return [{"model": u.name, "scale": u.scale, "start": u.start, "end": u.end,
                 "steps": [i for i, on in enumerate(w) if on]} for u, w in zip(self.units, self.windows)]


def _unit_float(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"a control image must be HxWx3, not {a.shape}")
    return imageops.to_float(a) if a.dtype == np.uint8 else a.astype(np.float32)   # the PNG reader's scaling


class Conditioning:
    """The control images of one batch of B frames (per unit, (B, 3, H, W) in [0, 1]) and the guide."""

    def __init__(self, guide: ControlGuide, images: list[torch.Tensor]):
        self.guide, self.images = guide, images

    def residuals(self, z: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, added_cond_kwargs: dict | None,
                  sigma: torch.Tensor) -> dict:
        """The UNet's extra arguments for this call: the summed residuals of the active nets ({} when none)."""
        active = self.guide.active(float(sigma.reshape(-1)[0]))
        if not active:
            return {}
        down: list[torch.Tensor] = []
        mid: torch.Tensor | None = None
        for n in active:
            unit, image = self.guide.units[n], self.images[n]
            if z.shape[0] == 2 * image.shape[0]:            # guidance halves [uncond, cond]: same image
                image = torch.cat([image, image])
            d, m = unit.net(z, t, encoder_hidden_states=emb, controlnet_cond=image,
                            conditioning_scale=float(unit.scale), added_cond_kwargs=added_cond_kwargs,
                            return_dict=False)
            down = list(d) if not down else [a + b for a, b in zip(down, d)]
            mid = m if mid is None else mid + m
        return {"down_block_additional_residuals": tuple(down), "mid_block_additional_residual": mid}


def load_units(settings_list, model, say=None) -> list[ControlUnit]:
    """The ControlUnits of `img2img.controlnet` entries for a loaded base model (same device and dtype).

    A ControlNet made for another family than the model's is refused here, before any work.
    """
    units = []
    for n, cn in enumerate(settings_list, 1):
        if say is not None:
            say(f"img2img: loading ControlNet {n} {cn.model} (control: {cn.control}, scale {cn.scale:g}, "
                f"steps {cn.start:g}..{cn.end:g} of the schedule)")
        net = load_controlnet(cn.model, model.device, model.dtype)
        check_family(net.config, model.unet.config, cn.model)
        units.append(ControlUnit(net, cn.scale, cn.start, cn.end, cn.model))
    return units
