"""Named depth models and `load_depth_model`, the one entry point for every depth backend.

The seed loaded MiDaS from its own git checkout; today the same families load through
`transformers`. The seed's names map to what exists there (checked on the hub, 2026-11):

    dpt_large                Intel/dpt-large                 DPT-Large, MiDaS v3.0 (the seed's model)
    dpt_hybrid               Intel/dpt-hybrid-midas          DPT-Hybrid, MiDaS v3.0 (the seed's model)
    midas_v21                Intel/dpt-beit-base-384         stand-in: MiDaS v2.1 (ResNeXt) has no port;
                                                             MiDaS v3.1 BEiT-Base 384
    midas_v21_small          Intel/dpt-swinv2-tiny-256       stand-in: MiDaS v3.1 Swin2-Tiny 256, v3.1's
                                                             small fast model
    depth-anything-v2-small  depth-anything/Depth-Anything-V2-Small-hf   (Apache-2.0)
    depth-anything-v2-base   depth-anything/Depth-Anything-V2-Base-hf    (CC-BY-NC-4.0)
    depth-anything-v2-large  depth-anything/Depth-Anything-V2-Large-hf   (CC-BY-NC-4.0)

Names match case-insensitively with '_' and '-' alike. `--model` also takes a local folder
(a `save_pretrained` folder: config.json, weights, preprocessor_config.json) or any hub id
of a transformers depth-estimation model.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.models.depth.base import DepthModel
from vid2vid.models.hub import (
    cached,
    hub_errors,
    load_files,
    looks_like_hub_id,
    missing_model,
    offline_reason,
    prefetch,
    short_reason,
)


@dataclass(frozen=True)
class DepthSpec:
    """A registry entry: where the weights live and what they are."""

    repo: str
    about: str


DEPTH_MODELS: dict[str, DepthSpec] = {
    "dpt_large": DepthSpec("Intel/dpt-large", "DPT-Large (MiDaS v3.0, ViT-L/16, 384 px)"),
    "dpt_hybrid": DepthSpec("Intel/dpt-hybrid-midas", "DPT-Hybrid (MiDaS v3.0, ViT-hybrid, 384 px)"),
    "midas_v21": DepthSpec("Intel/dpt-beit-base-384",
                           "stands in for MiDaS v2.1 (no transformers port): MiDaS v3.1 BEiT-Base, 384 px"),
    "midas_v21_small": DepthSpec("Intel/dpt-swinv2-tiny-256",
                                 "stands in for MiDaS v2.1 small (no transformers port): "
                                 "MiDaS v3.1 Swin2-Tiny, 256 px"),
    "depth-anything-v2-small": DepthSpec("depth-anything/Depth-Anything-V2-Small-hf",
                                         "Depth Anything V2 Small (Apache-2.0)"),
    "depth-anything-v2-base": DepthSpec("depth-anything/Depth-Anything-V2-Base-hf",
                                        "Depth Anything V2 Base (CC-BY-NC-4.0: non-commercial)"),
    "depth-anything-v2-large": DepthSpec("depth-anything/Depth-Anything-V2-Large-hf",
                                         "Depth Anything V2 Large (CC-BY-NC-4.0: non-commercial)"),
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


_BY_KEY = {_key(n): n for n in DEPTH_MODELS}


def resolve_depth_model(name_or_path: str) -> tuple[str, str, str]:
    """Decide what `name_or_path` means: ('folder', path, label), ('hub', repo, label).

    Order: an existing folder; a registry name; an 'owner/name' hub id. Anything else is a
    `ModelNotFound` that lists the names.
    """
    text = str(name_or_path).strip()
    if not text:
        raise BadInput("{depth.model} is empty; name a depth model, e.g. dpt_hybrid")
    p = Path(text).expanduser()
    if p.is_dir():
        return "folder", str(p), text
    if p.exists():
        raise BadInput(f"depth model {p} is a file; pass the folder that holds config.json, the weights "
                       "and preprocessor_config.json")
    if _key(text) in _BY_KEY:
        name = _BY_KEY[_key(text)]
        return "hub", DEPTH_MODELS[name].repo, name
    if looks_like_hub_id(text):
        return "hub", text, text
    raise ModelNotFound(f"depth model '{text}' is neither a folder nor a known name; use one of "
                        f"{', '.join(DEPTH_MODELS)}, a hub id such as Intel/dpt-large, or a folder made "
                        "with save_pretrained")


def load_depth_model(name_or_path: str, device: str = "auto", *, cache_dir: str | Path | None = None,
                     local_files_only: bool | None = None, progress: Callable | None = None) -> DepthModel:
    """Load a depth model by registry name, hub id or local folder; ready to `predict`.

    Hub models come from the Hugging Face cache (`cache_dir`, default the usual one) and are
    downloaded there when allowed; `local_files_only` (default: HF_HUB_OFFLINE) forbids that.
    A model that cannot be had raises `ModelNotFound` saying how to get it. A download reports its
    bytes to `progress` (ProgressEvents; default: the console).
    """
    from huggingface_hub import constants

    from vid2vid.models.depth.hf_depth import TransformersDepth

    kind, source, label = resolve_depth_model(name_or_path)
    offline = constants.HF_HUB_OFFLINE if local_files_only is None else local_files_only
    why = None if kind == "folder" else offline_reason(offline)   # no network: read the cache only, at once
    try:
        if kind == "hub" and why is None and not cached(source, "config.json", cache_dir):
            prefetch(source, load_files, cache_dir=cache_dir, progress=progress,
                     label=f"depth model {label}")
        return TransformersDepth(source, label, device, cache_dir=cache_dir,
                                 local_files_only=why is not None or kind == "folder")
    except hub_errors() as exc:
        if kind == "folder":
            raise ModelNotFound(f"depth model folder {source} cannot be loaded ({exc}); it needs config.json, "
                                "the weights and preprocessor_config.json as save_pretrained writes them") from exc
        raise missing_model("depth", label, source, reason=why or short_reason(exc)) from exc
