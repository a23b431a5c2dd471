"""Load a Stable Diffusion model from a hub id, a diffusers folder or a single checkpoint file.

    model = load_model("anything-v5.safetensors", loras=["detail.safetensors:0.6"])
    model.unet, model.vae, model.text_encoder, model.tokenizer     # the parts, on model.device
    model.sigmas                                                  # training sigmas, ascending
    model.to_pipeline()                                           # diffusers img2img pipeline

Single files load with no network: the config folder that fits the file (SD 1.x, SD 2.x, SDXL,
or the tiny test model) is chosen from the file's keys and shapes, copied from the JSON bundled
in `vid2vid/data/configs/` into a cache folder, and completed with CLIP tokenizer files built
from the BPE vocabulary that the open_clip_torch wheel ships (tokenizer.py).

Steps of `load_model`: 1. resolve device and dtype; 2. classify the spec (folder, file, hub id)
and check it; 3. load the parts through diffusers; 4. apply textual inversion embeddings and
LoRAs (fused, so inference costs nothing extra); 5. move to the device and wrap.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vid2vid.core import devices
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.core.fileid import file_id
from vid2vid.diffusion.checkpoints import (
    CHECKPOINT_SUFFIXES,
    config_folder,
    detect_config,
    prediction_type_for,
    read_checkpoint_header,
)
from vid2vid.diffusion.quiet import quiet_libraries
from vid2vid.diffusion.schedules import sigma_to_timestep
from vid2vid.models.hub import download_hint, looks_like_hub_id

REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass
class LoadedModel:
    """The parts of one loaded SD model and the facts a sampler loop needs.

    alphas_cumprod: float64 [num_train_timesteps] on the CPU (from the scheduler config).
    sigmas: the model's training sigmas sqrt((1 - ac) / ac), float64, ascending with the timestep.
    vae_scaling_factor: latents = vae.encode(x).latent_dist.sample() * vae_scaling_factor.
    vae_scale_factor: pixels per latent pixel (8 for SD).
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    prediction_type: str              # "epsilon" | "v_prediction"
    device: torch.device
    dtype: torch.dtype
    spec: str
    kind: str                         # "sd1" | "sd2" | "sdxl" | "tiny-sd1" | "tiny-sdxl" | "diffusers"
    text_encoder_2: Any = None        # SDXL only
    tokenizer_2: Any = None
    loras: list[tuple[str, float]] = field(default_factory=list)
    embeddings: list[str] = field(default_factory=list)

    @property
    def is_sdxl(self) -> bool:
        return self.text_encoder_2 is not None

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return alphas_cumprod_from_config(self.scheduler_config)

    @property
    def sigmas(self) -> torch.Tensor:
        ac = self.alphas_cumprod
        return ((1 - ac) / ac).sqrt()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def vae_scale_factor(self) -> int:
        cfg = self.vae.config      # a tiny VAE (AutoencoderTiny) names its levels differently
        levels = getattr(cfg, "block_out_channels", None) or cfg.encoder_block_out_channels
        return 2 ** (len(levels) - 1)

    def sigma_to_timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep (float64) for each sigma: linear interpolation in log sigma (k-diffusion's rule)."""
        return sigma_to_timestep(torch.as_tensor(sigma, dtype=torch.float64), self.sigmas.log())

    def identity(self) -> dict:
        """What identifies these weights, for a stage's parameters (resume must notice a changed model)."""
        return {"spec": self.spec, "file": _file_identity(self.spec), "kind": self.kind,
                "prediction_type": self.prediction_type, "dtype": str(self.dtype).replace("torch.", ""),
                "loras": [[_file_identity(p) or p, w] for p, w in self.loras],
                "embeddings": [_file_identity(p) or p for p in self.embeddings]}

    def to_pipeline(self, scheduler=None):
        """A diffusers img2img pipeline over these parts (EulerDiscreteScheduler unless `scheduler` is given)."""
        from diffusers import EulerDiscreteScheduler

        scheduler = scheduler or EulerDiscreteScheduler.from_config(self.scheduler_config)
        if self.is_sdxl:
            from diffusers import StableDiffusionXLImg2ImgPipeline

            return StableDiffusionXLImg2ImgPipeline(
                vae=self.vae, text_encoder=self.text_encoder, text_encoder_2=self.text_encoder_2,
                tokenizer=self.tokenizer, tokenizer_2=self.tokenizer_2, unet=self.unet, scheduler=scheduler)
        from diffusers import StableDiffusionImg2ImgPipeline

        return StableDiffusionImg2ImgPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
            scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def alphas_cumprod_from_config(cfg: dict) -> torch.Tensor:
    """float64 [T] cumulative product of (1 - beta) for a diffusers scheduler config.

    linear and scaled_linear (SD's) are computed here in float64, as the original LDM code did
    before storing them (diffusers computes them in float32, about 1e-5 relative off at t=0);
    other schedules come from diffusers.
    """
    n = int(cfg.get("num_train_timesteps", 1000))
    start, end = float(cfg.get("beta_start", 0.0001)), float(cfg.get("beta_end", 0.02))
    kind = cfg.get("beta_schedule", "linear")
    if cfg.get("trained_betas") is None and kind in ("linear", "scaled_linear"):
        if kind == "scaled_linear":
            betas = torch.linspace(start ** 0.5, end ** 0.5, n, dtype=torch.float64) ** 2
        else:
            betas = torch.linspace(start, end, n, dtype=torch.float64)
        return torch.cumprod(1 - betas, dim=0)
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(cfg).alphas_cumprod.to(torch.float64)


def _file_identity(path: str) -> str | None:
    p = Path(path).expanduser()
    if not p.exists():
        return None
    return str(file_id(p))


# ---------------------------------------------------------------- spec parsing

def parse_weighted(spec: str, default: float = 1.0) -> tuple[str, float]:
    """'path:0.8' -> ('path', 0.8); 'path' -> ('path', default). A drive letter ('C:\\x') is kept."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and not re.fullmatch(r"[A-Za-z]", head):
        try:
            return head, float(tail)
        except ValueError:
            pass
    return spec, default


def looks_like_path(spec: str) -> bool:
    return (spec.startswith((".", "/", "~")) or os.sep in spec and not looks_like_hub_id(spec)
            or spec.lower().endswith(CHECKPOINT_SUFFIXES) or "\\" in spec)


# ---------------------------------------------------------------- the three kinds of spec

def _pipeline_class(sdxl: bool):
    if sdxl:
        from diffusers import StableDiffusionXLImg2ImgPipeline

        return StableDiffusionXLImg2ImgPipeline
    from diffusers import StableDiffusionImg2ImgPipeline

    return StableDiffusionImg2ImgPipeline


def dtype_kw(dtype: torch.dtype) -> dict:
    """diffusers renamed `torch_dtype` to `dtype` (the old name warns); use whichever this version knows."""
    from diffusers.utils import deprecation_utils

    return {"dtype": dtype} if hasattr(deprecation_utils, "_resolve_dtype") else {"torch_dtype": dtype}


_NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def check_diffusers_folder(folder: Path) -> dict:
    """model_index.json of a diffusers folder, after checking each needed component is there."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES)
        hint = f"; did you mean the checkpoint file {folder / files[0]}?" if files else \
            "; pass a diffusers model folder, a .safetensors/.ckpt file or a hub id"
        raise ModelNotFound(f"{folder} is not a diffusers model folder (no model_index.json){hint}")
    index = json.loads(index_file.read_text(encoding="utf-8"))
    needed = list(REQUIRED_COMPONENTS)
    if "XL" in index.get("_class_name", ""):
        needed += ["text_encoder_2", "tokenizer_2"]
    for comp in needed:
        entry = index.get(comp)
        sub = folder / comp
        if not entry or entry[0] is None:
            raise ModelNotFound(f"{folder} has no '{comp}' component in model_index.json; the model is incomplete")
        if not sub.is_dir():
            raise ModelNotFound(f"{folder} is missing the '{comp}' component (no folder {sub}); "
                                "copy the whole model folder")
        if comp.startswith("tokenizer"):
            ok = any((sub / n).is_file() for n in ("tokenizer.json", "vocab.json"))
        elif comp == "scheduler":
            ok = (sub / "scheduler_config.json").is_file()
        else:
            ok = (sub / "config.json").is_file() and any(
                p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json") for p in sub.iterdir())
        if not ok:
            raise ModelNotFound(f"{folder}: the '{comp}' component in {sub} has no config or weights files; "
                                "copy the whole model folder")
    return index


def _load_folder(folder: Path, dtype: torch.dtype):
    index = check_diffusers_folder(folder)
    sdxl = "XL" in index.get("_class_name", "")
    cls = _pipeline_class(sdxl)
    kwargs = {} if sdxl else dict(_NO_SAFETY)
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, **dtype_kw(dtype), **kwargs), "diffusers"
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFound(f"cannot load the diffusers folder {folder}: {exc}") from exc


def _load_single_file(path: Path, dtype: torch.dtype, prediction_type: str | None):
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise BadInput(f"{path}: unknown model file type '{path.suffix}'; use a .safetensors or .ckpt checkpoint, "
                       "a diffusers folder or a hub id")
    shapes, metadata = read_checkpoint_header(path)
    name = detect_config(shapes, metadata, path)
    folder = config_folder(name)
    sdxl = name.endswith("sdxl")
    cls = _pipeline_class(sdxl)
    kwargs = {} if sdxl else dict(_NO_SAFETY)
    try:
        pipe = cls.from_single_file(str(path), config=str(folder), local_files_only=True, **dtype_kw(dtype), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BadInput(f"cannot load {path} as a {name} checkpoint: {exc}") from exc
    chosen = prediction_type or prediction_type_for(name, shapes, metadata)
    if chosen:
        pipe.scheduler.register_to_config(prediction_type=chosen)
    return pipe, name


def _load_hub(repo_id: str, dtype: torch.dtype, progress: Callable | None = None):
    """A hub id: from the local hub cache when offline, else downloaded (only where the network is allowed),
    the files the pipeline reads first, with their bytes reported to `progress` (default: the console)."""
    from huggingface_hub import hf_hub_download

    from vid2vid.models.hub import cached, diffusers_files, hub_errors, offline_reason, prefetch

    unreachable = offline_reason()          # no network: fail at once, not after retries
    offline, how = unreachable is not None, download_hint(repo_id, "the model")
    try:
        index_file = hf_hub_download(repo_id, "model_index.json", local_files_only=offline)
    except (OSError, ValueError) as exc:
        if offline:
            raise ModelNotFound(f"model '{repo_id}' is not a local folder or file, not in the local hub cache, "
                                f"and the hub is offline ({unreachable or 'HF_HUB_OFFLINE'}); {how}") from exc
        raise ModelNotFound(f"cannot get model '{repo_id}' from the hub ({exc}); check the id, or {how}") from exc
    index = json.loads(Path(index_file).read_text(encoding="utf-8"))
    sdxl = "XL" in index.get("_class_name", "")
    if not offline and not cached(repo_id, "unet/config.json"):
        try:
            skip = () if sdxl else tuple(_NO_SAFETY)
            prefetch(repo_id, lambda files: diffusers_files(files, index, skip), progress=progress,
                     label=f"model {repo_id}")
        except hub_errors() as exc:
            raise ModelNotFound(f"cannot get model '{repo_id}' from the hub ({exc}); check the id, or {how}") from exc
    try:
        return _pipeline_class(sdxl).from_pretrained(repo_id, local_files_only=offline, **dtype_kw(dtype),
                                                     **({} if sdxl else _NO_SAFETY)), "diffusers"
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load model '{repo_id}' ({exc}); {how}") from exc


# ---------------------------------------------------------------- LoRA and embeddings

def apply_embeddings(pipe, files: list[str]) -> list[str]:
    """Load textual inversion files; each is triggered by its file name (A1111's convention).

    SDXL embeddings hold one set of vectors per text encoder (`clip_l`, `clip_g`); each goes
    into its encoder's table under the same token, so both tokenizers give it the same ids.
    """
    done = []
    for spec in files:
        p = Path(spec).expanduser()
        if not p.is_file():
            raise ModelNotFound(f"embedding file {p} does not exist")
        try:
            if getattr(pipe, "text_encoder_2", None) is not None:
                pair = _sdxl_embedding(p)
                pipe.load_textual_inversion(pair["clip_l"], token=p.stem, text_encoder=pipe.text_encoder,
                                            tokenizer=pipe.tokenizer)
                pipe.load_textual_inversion(pair["clip_g"], token=p.stem, text_encoder=pipe.text_encoder_2,
                                            tokenizer=pipe.tokenizer_2)
            else:
                pipe.load_textual_inversion(str(p), token=p.stem)
        except (ValueError, KeyError, OSError, RuntimeError) as exc:
            raise BadInput(f"cannot load textual inversion {p}: {exc}") from exc
        done.append(str(p))
    return done


def _sdxl_embedding(path: Path) -> dict:
    """An SDXL textual inversion file's {'clip_l': (n, 768), 'clip_g': (n, 1280)} tensors."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not {"clip_l", "clip_g"} <= set(state):
        raise BadInput(f"embedding {path} is not an SDXL embedding (it needs 'clip_l' and 'clip_g' vectors); "
                       "use an embedding made for SDXL with an SDXL model")
    if state["clip_l"].shape[0] != state["clip_g"].shape[0]:
        raise BadInput(f"embedding {path}: 'clip_l' and 'clip_g' have different numbers of vectors")
    return state


def apply_loras(pipe, specs: list[str]) -> list[tuple[str, float]]:
    """Load 'path[:weight]' LoRA files, mix them with their weights and fuse them into the weights."""
    loaded: list[tuple[str, float]] = []
    names = []
    for i, spec in enumerate(specs):
        path_s, weight = parse_weighted(spec)
        p = Path(path_s).expanduser()
        if not p.is_file():
            raise ModelNotFound(f"LoRA file {p} does not exist (give it as PATH or PATH:WEIGHT)")
        if p.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise BadInput(f"LoRA {p}: unknown file type '{p.suffix}'; use .safetensors")
        name = f"lora{i}"
        try:
            pipe.load_lora_weights(str(p), adapter_name=name)
        except (ValueError, KeyError, OSError, RuntimeError) as exc:
            raise BadInput(f"cannot load LoRA {p}: {exc}; is it a LoRA for this model family?") from exc
        names.append(name)
        loaded.append((str(p), weight))
    if names:
        pipe.set_adapters(names, adapter_weights=[w for _, w in loaded])
        pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
        pipe.unload_lora_weights()
    return loaded


def own_memory(module: torch.nn.Module) -> None:
    """Copy weights out of the memory-mapped checkpoint into fresh (aligned) CPU memory.

    Tensors left inside the file's mapping sit at arbitrary offsets; CPU kernels then take other
    vectorised paths and the same weights give results that differ in the last bits depending
    on the file they came from (folder vs single file). Fresh copies make them bit-identical.
    """
    with torch.no_grad():
        for p in module.parameters():
            p.data = p.data.clone()
        for b in module.buffers():
            b.data = b.data.clone()


# ---------------------------------------------------------------- entry point

def check_model_spec(spec: str) -> str:
    """Check a model spec without loading anything; returns it stripped.

    A folder must hold every diffusers component, a file must exist, anything else must have
    the form of a hub id (owner/name). Raises BadInput / ModelNotFound with how to fix it.
    """
    spec = (spec or "").strip()
    if not spec:
        raise BadInput("no Stable Diffusion model given; give {img2img.model}: a .safetensors file, a diffusers "
                       "folder or a hub id")
    path = Path(spec).expanduser()
    if path.is_dir():
        check_diffusers_folder(path)
    elif not path.is_file() and (looks_like_path(spec) or not looks_like_hub_id(spec)):
        raise ModelNotFound(f"model '{spec}' not found: no such file or folder (and not a hub id like owner/name)")
    return spec


def load_model(spec: str, device: str = "auto", dtype: str = "auto", loras: list[str] | tuple = (),
               embeddings: list[str] | tuple = (), prediction_type: str | None = None,
               vae: str = "", progress: Callable | None = None) -> LoadedModel:
    """Load `spec` (hub id, diffusers folder, or .safetensors/.ckpt file) ready for img2img.

    prediction_type overrides what the file implies ("epsilon" or "v_prediction"; SD 2.x single
    files default to v_prediction, the 768-v models; pass "epsilon" for 512-base ones).
    vae: a separate VAE to use instead of the model's own (file, folder or hub id; diffusion/vae.py).
    progress: gets a hub id's download as ProgressEvents in bytes (default: the console).
    Raises ModelNotFound (missing path, component, or hub id offline) or BadInput (wrong type).
    """
    quiet_libraries()
    # 1. device and dtype
    dev = devices.pick(device, "{img2img.device}")
    dt = devices.resolve_dtype(dtype, dev, "{img2img.dtype}")
    if prediction_type not in (None, "epsilon", "v_prediction"):
        raise BadInput(f"prediction type '{prediction_type}' is not known; use epsilon or v_prediction")
    spec = check_model_spec(spec)
    if vae:                                   # a missing --vae is said before the model loads
        from vid2vid.diffusion.vae import check_vae_spec

        check_vae_spec(vae)

    # 2-3. classify the spec and load the parts
    path = Path(spec).expanduser()
    if path.is_dir():
        pipe, kind = _load_folder(path, dt)
    elif path.is_file():
        pipe, kind = _load_single_file(path, dt, prediction_type)
    else:
        pipe, kind = _load_hub(spec, dt, progress)
    if prediction_type and kind == "diffusers":
        pipe.scheduler.register_to_config(prediction_type=prediction_type)

    # 4. embeddings, then LoRAs (fused)
    emb = apply_embeddings(pipe, list(embeddings))
    lor = apply_loras(pipe, list(loras))
    # 4b. a separate VAE (--vae), checked against the UNet, replaces the model's own
    if vae:
        from vid2vid.diffusion.vae import load_vae

        pipe.vae = load_vae(vae, dt, own=pipe.vae, unet_config=pipe.unet.config,
                            sdxl=getattr(pipe, "text_encoder_2", None) is not None)

    # 5. device, eval mode, wrap
    pipe.to(dev)
    parts = [pipe.unet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)]
    for m in parts:
        if m is not None:
            m.eval().requires_grad_(False)
            if dev.type == "cpu":
                own_memory(m)
    sched_cfg = dict(pipe.scheduler.config)
    return LoadedModel(
        unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
        scheduler_config=sched_cfg, prediction_type=sched_cfg.get("prediction_type", "epsilon"),
        device=dev, dtype=dt, spec=spec, kind=kind,
        text_encoder_2=getattr(pipe, "text_encoder_2", None), tokenizer_2=getattr(pipe, "tokenizer_2", None),
        loras=lor, embeddings=emb)
