"""Where the three split single files of a Wan 2.1 VACE model are (ComfyUI's layout), found by their keys.

ComfyUI users have the model as three `.safetensors` files in the original key layouts: the VACE
transformer in `models/diffusion_models/` (or `unet/`), the UMT5-XXL text encoder in
`models/text_encoders/` (or the older `clip/`) and the Wan 2.1 VAE in `models/vae/`. The rule
(`locate`), for `{img2img.video_model}` =

- the transformer file itself: its companions are looked for in the file's own folder, then in the
  ComfyUI `models/` folder above it (the parent of the nearest `diffusion_models/` or `unet/`
  folder the file lies in): `text_encoders/`, `clip/`, `vae/`;
- a folder with a `diffusion_models/` or `unet/` folder (a ComfyUI `models/` folder, or the ComfyUI
  install folder holding `models/`): its one VACE transformer there (several: give the file), then
  the companions as above;
- any other folder: the three files in it.

Only the top level of each folder is searched. A file's part is told by the keys it holds (the
header only is read), never by its name. Among several files of one part, one in 16 or 32 bits
comes before an fp8 one (by the stored dtype), then the folder order, then the name order decide.
A missing part is refused with one line that names it and the folders looked in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.diffusion.wan_keys import strip_prefix

DIFFUSION_FOLDERS = ("diffusion_models", "unet")     # ComfyUI's folders for a diffusion model's own file
TEXT_FOLDERS = ("text_encoders", "clip")
VAE_FOLDERS = ("vae",)

TRANSFORMER, TEXT_ENCODER, VAE = "the VACE transformer", "the UMT5 text encoder", "the Wan 2.1 VAE"
EXAMPLE = {TRANSFORMER: "wan2.1_vace_1.3B_fp16.safetensors", TEXT_ENCODER: "umt5_xxl_fp16.safetensors",
           VAE: "wan_2.1_vae.safetensors"}
HOME = {TEXT_ENCODER: "text_encoders", VAE: "vae"}


@dataclass(frozen=True)
class SplitParts:
    transformer: Path
    text_encoder: Path
    vae: Path


def _header(path: Path) -> dict[str, tuple[int, ...]] | None:
    """key -> shape of a .safetensors file (prefix `model.diffusion_model.` stripped), None if unreadable."""
    from vid2vid.diffusion.checkpoints import read_checkpoint_header

    if path.suffix.lower() != ".safetensors":
        return None
    try:
        shapes = read_checkpoint_header(path)[0]
    except BadInput:                                # not a safetensors file: no part
        return None
    return {strip_prefix(k): v for k, v in shapes.items()}


def part_of(keys: dict[str, tuple[int, ...]]) -> str:
    """Which part a file is, by its keys."""
    if "vace_blocks.0.after_proj.bias" in keys:
        return TRANSFORMER
    if "head.modulation" in keys:
        return "a Wan transformer without VACE"
    if "decoder.middle.0.residual.0.gamma" in keys:
        return VAE if keys.get("conv2.weight", (0,))[0] == 16 else "another Wan VAE (not 2.1's)"
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in keys:
        per_layer = "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" in keys
        return TEXT_ENCODER if per_layer else "a T5 text encoder (not UMT5)"
    return "an unknown model"


def is_fp8(path: Path) -> bool:
    """Whether a file's weights are stored in 8 bits (the dtype of its first matrix, from the header)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        for k in fh.keys():
            part = fh.get_slice(k)
            if len(part.get_shape()) == 2:
                return part.get_dtype().startswith("F8")
    return False


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def split_file_roles(folder: Path) -> list[str]:
    """'name: part' for each .safetensors file of a folder."""
    out = []
    for f in _files(folder):
        keys = _header(f)
        if keys is not None:
            out.append(f"{f.name}: {part_of(keys)}")
    return out


def _pick(folders: list[Path], part: str) -> Path | None:
    found = []
    for folder in folders:
        for f in _files(folder):
            keys = _header(f)
            if keys is not None and part_of(keys) == part:
                found.append((is_fp8(f), folders.index(folder), f.name, f))
    return min(found)[3] if found else None


def _models_folder(transformer: Path) -> Path | None:
    """The ComfyUI models/ folder a transformer file lies in (below diffusion_models/ or unet/), or None."""
    for parent in transformer.parents:
        if parent.name in DIFFUSION_FOLDERS:
            return parent.parent
    return None


def _transformer_in(folder: Path, spec: str) -> Path:
    models = folder / "models" if (folder / "models").is_dir() else folder
    places = [models / d for d in DIFFUSION_FOLDERS if (models / d).is_dir()] or [folder]
    found = [f for p in places for f in _files(p) if (k := _header(f)) is not None and part_of(k) == TRANSFORMER]
    if not found:
        looked = ", ".join(str(p) for p in places)
        held = [r for p in places for r in split_file_roles(p)]
        raise ModelNotFound(f"{{img2img.video_model}} {spec}: no Wan 2.1 VACE transformer file found in {looked}"
                            + (f" ({', '.join(held)})" if held else " (and no model_index.json of a diffusers folder)")
                            + f"; put {EXAMPLE[TRANSFORMER]} there, or give a diffusers folder")
    if len(found) > 1:
        raise BadInput(f"{{img2img.video_model}} {spec} holds several VACE transformers "
                       f"({', '.join(f.name for f in found)}); give the one to use as the file itself")
    return found[0]


def locate(spec: str) -> SplitParts:
    """The three files for `spec` (a transformer file or a folder, see the module's rule), or one line."""
    path = Path(spec).expanduser()
    if path.is_file():
        keys = _header(path)
        what = part_of(keys) if keys is not None else "not a safetensors file"
        if what != TRANSFORMER:
            raise BadInput(f"{{img2img.video_model}} {spec} is a single file that is not a Wan 2.1 VACE transformer "
                           f"({what}; an image model's checkpoint goes in {{img2img.model}}); give the VACE "
                           "transformer file (ComfyUI's models/diffusion_models/) or a diffusers folder")
        transformer = path
    else:
        transformer = _transformer_in(path, spec)
    models = _models_folder(transformer)
    chosen: dict[str, Path] = {}
    for part, names in ((TEXT_ENCODER, TEXT_FOLDERS), (VAE, VAE_FOLDERS)):
        folders = [transformer.parent] + ([models / n for n in names] if models else [])
        found = _pick(folders, part)
        if found is None:
            home = models / HOME[part] if models else transformer.parent
            raise ModelNotFound(f"{{img2img.video_model}} {spec}: {part} is missing (no such file in "
                                f"{', '.join(str(f) for f in folders)}); put {EXAMPLE[part]} in {home}")
        chosen[part] = found
    return SplitParts(transformer, chosen[TEXT_ENCODER], chosen[VAE])
