"""The CLIP image encoder of an IP-Adapter: where it lies, loading it offline, and embedding pictures.

Where it is looked for, first match wins (`encoder_candidates`):
1. `image_encoder` of the `[[img2img.ip_adapter]]` table when given (a folder, a .safetensors file or a hub id);
2. beside the adapter file: `image_encoder/` (h94/IP-Adapter's layout: `models/image_encoder`
   beside `models/ip-adapter_sd15.safetensors`), `../image_encoder/` and `../models/image_encoder/`
   (its `sdxl_models/ip-adapter_sdxl_vit-h` reads `models/image_encoder`);
3. ComfyUI: `../clip_vision/` (models/ipadapter beside models/clip_vision);
4. A1111's ControlNet extension: `annotator/downloads/clip_vision/` of the extension.
A folder with `config.json` is a transformers `CLIPVisionModelWithProjection`; a folder without
one is searched for a single-file encoder (transformers' key names, as ComfyUI's clip_vision files)
whose width fits the adapter; a single file's config is read off its tensor shapes.

Embedding (what diffusers' `prepare_ip_adapter_image_embeds` computes): the picture is resized
(shortest side to the encoder's image size, bicubic), centre-cropped and normalised by
`CLIPImageProcessor`; the adapter reads the projected embedding (`image_embeds`, 1 x D) or the
penultimate hidden states (1 x T x D, plus adapters). The unconditional side is zeros of the
same shape for the former, and the hidden states of an all-zero (normalised) picture for the
latter. Several pictures (a folder) are averaged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion.ip_adapter import AdapterFile

ENCODER_HEADS = {1280: 16, 1664: 16}       # ViT-H/14 and ViT-bigG/14 (their configs' head counts)


def encoder_candidates(adapter_path: Path) -> list[Path]:
    """The places looked at for an adapter's image encoder when none is named, in order."""
    here = adapter_path.parent
    up = here.parent
    return [here / "image_encoder", up / "image_encoder", up / "models" / "image_encoder", up / "clip_vision",
            here / "clip_vision", up / "annotator" / "downloads" / "clip_vision",
            up.parent / "extensions" / "sd-webui-controlnet" / "annotator" / "downloads" / "clip_vision"]


def _file_widths(path: Path) -> tuple[int, int] | None:
    """(hidden width, projection width) of a single-file encoder, None if it is not one."""
    from vid2vid.diffusion.checkpoints import read_state_file

    try:
        shapes, _ = read_state_file(path, "image encoder", tensors=False)
    except BadInput:
        return None
    patch, proj = shapes.get("vision_model.embeddings.patch_embedding.weight"), shapes.get("visual_projection.weight")
    return (patch[0], proj[0]) if patch and proj else None


def _fits(widths: tuple[int, int], adapter: AdapterFile) -> bool:
    return widths[1 if adapter.kind == "embeds" else 0] == adapter.embed_width


def _in_folder(folder: Path, adapter: AdapterFile) -> Path | None:
    if (folder / "config.json").is_file():
        return folder
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() in (".safetensors", ".bin", ".pth") and (w := _file_widths(f)) and _fits(w, adapter):
            return f
    return None


def find_image_encoder(adapter: AdapterFile, named: str = "") -> str:
    """The image encoder of `adapter`: `named`, or the first fitting one beside it; ModelNotFound saying where
    it looked."""
    if named.strip():
        p = Path(named.strip()).expanduser()
        return str(_in_folder(p, adapter) or p) if p.is_dir() else named.strip()
    looked = encoder_candidates(adapter.path)
    for folder in looked:
        if folder.is_dir() and (found := _in_folder(folder, adapter)) is not None:
            return str(found)
    what = "projected embedding" if adapter.kind == "embeds" else "hidden states"
    raise ModelNotFound(f"no CLIP image encoder found for IP-Adapter {adapter.path.name} (looked in "
                        f"{', '.join(str(p) for p in looked[:5])}, ...): put its image_encoder folder beside it or "
                        f"name it as image_encoder in [[img2img.ip_adapter]] (one whose {what} is "
                        f"{adapter.embed_width} wide)")


# ---------------------------------------------------------------- loading

def _config_from_file(state: dict[str, torch.Tensor], metadata: dict[str, str]):
    """A single file's config from its shapes; activation and heads are ViT-H's and bigG's (gelu, 16) unless its
    metadata names others (`hidden_act`, `num_attention_heads`)."""
    from transformers import CLIPVisionConfig

    patch = state["vision_model.embeddings.patch_embedding.weight"]
    positions = state["vision_model.embeddings.position_embedding.weight"].shape[0]
    hidden = patch.shape[0]
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("vision_model.encoder.layers."))
    side = int(round((positions - 1) ** 0.5)) * patch.shape[2]
    heads = int(metadata.get("num_attention_heads") or ENCODER_HEADS.get(hidden, max(1, hidden // 64)))
    return CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        projection_dim=state["visual_projection.weight"].shape[0], num_hidden_layers=layers,
        num_attention_heads=heads, image_size=side, patch_size=patch.shape[2],
        hidden_act=metadata.get("hidden_act", "gelu"))


def _load_file(path: Path):
    from transformers import CLIPVisionModelWithProjection

    from vid2vid.diffusion.checkpoints import read_state_file

    state, metadata = read_state_file(path, "image encoder")
    if "vision_model.embeddings.patch_embedding.weight" not in state or "visual_projection.weight" not in state:
        raise BadInput(f"{path} is not a CLIP image encoder (no vision_model.* and visual_projection weights); "
                       "give the encoder's folder (config.json and weights) as image_encoder in [[img2img.ip_adapter]]")
    model = CLIPVisionModelWithProjection(_config_from_file(state, metadata))
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise BadInput(f"cannot load {path} as a CLIP image encoder: {str(exc).splitlines()[0][:300]}") from exc
    return model


def load_image_encoder(spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """(CLIPVisionModelWithProjection in eval mode on `device`, its CLIPImageProcessor), offline."""
    from transformers import CLIPVisionModelWithProjection

    try:           # the PIL processor by its own name: the plain name warns that torchvision is absent
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor

    from vid2vid.diffusion.loading import own_memory
    from vid2vid.diffusion.quiet import quiet_libraries
    from vid2vid.models.hub import offline_reason

    quiet_libraries()
    p = Path(spec).expanduser()
    try:
        if p.is_file():
            model = _load_file(p)
        else:
            offline = p.is_dir() or offline_reason() is not None
            model = CLIPVisionModelWithProjection.from_pretrained(str(p) if p.is_dir() else spec,
                                                                  local_files_only=offline)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load the CLIP image encoder '{spec}': {str(exc).splitlines()[0][:200]}; give "
                            "its local folder (config.json and weights) as image_encoder in [[img2img.ip_adapter]]") \
            from exc
    model = model.to(torch.device(device), dtype).eval().requires_grad_(False)
    own_memory(model)
    size = int(model.config.image_size)
    return model, CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def check_encoder_fits(adapter: AdapterFile, encoder, where: str) -> None:
    """Refuse an image encoder whose output is not as wide as the adapter's projection takes."""
    cfg = encoder.config
    width = cfg.projection_dim if adapter.kind == "embeds" else cfg.hidden_size
    if width != adapter.embed_width:
        raise BadInput(f"{where}: the image encoder gives {width}-wide embeddings but IP-Adapter "
                       f"{adapter.path.name} takes {adapter.embed_width}; use the encoder it was trained with "
                       "(ViT-H/14 for most, ViT-bigG/14 for ip-adapter_sdxl)")


# ---------------------------------------------------------------- embedding pictures

@torch.no_grad()
def embed(encoder, processor, kind: str, images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 HxWx3 [0, 1] pictures -> (cond, uncond) float32 on the CPU: (1, D) for kind "embeds",
    (1, T, D) for "hidden"; several pictures are averaged."""
    from PIL import Image

    pil = [Image.fromarray(np.clip(np.rint(np.asarray(im, np.float32) * 255.0), 0, 255).astype(np.uint8))
           for im in images]
    p = next(encoder.parameters())
    pixels = processor(images=pil, return_tensors="pt").pixel_values.to(p.device, p.dtype)
    if kind == "embeds":
        cond = encoder(pixels).image_embeds.float().mean(0, keepdim=True)
        return cond.cpu(), torch.zeros_like(cond).cpu()
    cond = encoder(pixels, output_hidden_states=True).hidden_states[-2].float().mean(0, keepdim=True)
    uncond = encoder(torch.zeros_like(pixels[:1]), output_hidden_states=True).hidden_states[-2].float()
    return cond.cpu(), uncond.cpu()
