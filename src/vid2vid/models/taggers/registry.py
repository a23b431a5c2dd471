"""Named taggers and `load_tagger`, the one entry point for every tagger.

WD14 taggers (SmilingWolf on the Hugging Face hub; model.onnx + selected_tags.csv):

    wd14-vit-v2          SmilingWolf/wd-v1-4-vit-tagger-v2        (the default)
    wd14-convnext-v2     SmilingWolf/wd-v1-4-convnext-tagger-v2
    wd14-convnextv2-v2   SmilingWolf/wd-v1-4-convnextv2-tagger-v2
    wd14-swinv2-v2       SmilingWolf/wd-v1-4-swinv2-tagger-v2
    wd14-moat-v2         SmilingWolf/wd-v1-4-moat-tagger-v2
    wd14-vit-v3          SmilingWolf/wd-vit-tagger-v3
    wd14-convnext-v3     SmilingWolf/wd-convnext-tagger-v3
    wd14-swinv2-v3       SmilingWolf/wd-swinv2-tagger-v3
    wd14-vit-large-v3    SmilingWolf/wd-vit-large-tagger-v3
    wd14-eva02-large-v3  SmilingWolf/wd-eva02-large-tagger-v3

DeepDanbooru (KichangKim's model, the one the seed used through A1111), as ONNX exports:

    deepdanbooru         chinoll/deepdanbooru           deepdanbooru.onnx + tags.txt
    deepdanbooru-skytnt  skytnt/deepdanbooru_onnx       deepdanbooru.onnx, tags in its metadata

`--model` also takes a local folder: one .onnx file (model.onnx preferred) plus
selected_tags.csv (read as WD14) or tags.txt / no list but tags in the model's metadata
(read as DeepDanbooru), or a path to the .onnx file itself with the list beside it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.models.hub import hub_files
from vid2vid.models.taggers.base import Tagger
from vid2vid.models.taggers.labels import read_labels
from vid2vid.models.taggers.onnx_tagger import OnnxTagger

LABEL_FILES = ("selected_tags.csv", "tags.csv", "tags.txt")


@dataclass(frozen=True)
class TaggerSpec:
    """A registry entry: hub repository, file names and preprocessing family."""

    repo: str
    model_file: str
    labels_file: str | None      # None: the tag list is in the model's metadata
    preprocess: str              # wd14 | deepdanbooru


def _wd14(repo: str) -> TaggerSpec:
    return TaggerSpec(repo, "model.onnx", "selected_tags.csv", "wd14")


TAGGERS: dict[str, TaggerSpec] = {
    "wd14-vit-v2": _wd14("SmilingWolf/wd-v1-4-vit-tagger-v2"),
    "wd14-convnext-v2": _wd14("SmilingWolf/wd-v1-4-convnext-tagger-v2"),
    "wd14-convnextv2-v2": _wd14("SmilingWolf/wd-v1-4-convnextv2-tagger-v2"),
    "wd14-swinv2-v2": _wd14("SmilingWolf/wd-v1-4-swinv2-tagger-v2"),
    "wd14-moat-v2": _wd14("SmilingWolf/wd-v1-4-moat-tagger-v2"),
    "wd14-vit-v3": _wd14("SmilingWolf/wd-vit-tagger-v3"),
    "wd14-convnext-v3": _wd14("SmilingWolf/wd-convnext-tagger-v3"),
    "wd14-swinv2-v3": _wd14("SmilingWolf/wd-swinv2-tagger-v3"),
    "wd14-vit-large-v3": _wd14("SmilingWolf/wd-vit-large-tagger-v3"),
    "wd14-eva02-large-v3": _wd14("SmilingWolf/wd-eva02-large-tagger-v3"),
    "deepdanbooru": TaggerSpec("chinoll/deepdanbooru", "deepdanbooru.onnx", "tags.txt", "deepdanbooru"),
    "deepdanbooru-skytnt": TaggerSpec("skytnt/deepdanbooru_onnx", "deepdanbooru.onnx", None, "deepdanbooru"),
}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


_BY_KEY = {_key(n): n for n in TAGGERS}


def _folder_files(path: Path) -> tuple[Path, Path | None]:
    """(model .onnx, tag list or None) of a local folder or .onnx file."""
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise BadInput(f"tagger model {path} is not an .onnx file; pass the .onnx file or its folder")
        folder, model = path.parent, path
    else:
        folder = path
        onnx = sorted(folder.glob("*.onnx"))
        if (folder / "model.onnx").is_file():
            model = folder / "model.onnx"
        elif len(onnx) == 1:
            model = onnx[0]
        else:
            raise ModelNotFound(f"tagger folder {folder} holds {len(onnx)} .onnx files; it needs exactly one "
                                "(or one named model.onnx) next to selected_tags.csv or tags.txt")
    labels = next((folder / f for f in LABEL_FILES if (folder / f).is_file()), None)
    return model, labels


def load_tagger(name_or_path: str, threshold: float = 0.35, device: str = "auto", *,
                cache_dir: str | Path | None = None, local_files_only: bool | None = None,
                preprocess: str | None = None, progress: Callable | None = None) -> Tagger:
    """Load a tagger by registry name, local folder or .onnx path.

    Registry models come from the Hugging Face cache and are downloaded there when allowed
    (`local_files_only`, default: HF_HUB_OFFLINE, forbids it); a model that cannot be had
    raises `ModelNotFound` saying how to get it. `preprocess` overrides the family a local
    folder is read as (csv list -> wd14, otherwise deepdanbooru). A download reports its bytes
    to `progress` (ProgressEvents; default: the console).
    """
    from huggingface_hub import constants

    text = str(name_or_path).strip()
    if not text:
        raise BadInput("{tags.model} is empty; name a tagger, e.g. wd14-vit-v2")
    path = Path(text).expanduser()
    if path.exists():
        model, labels_path = _folder_files(path)
        family = preprocess or ("wd14" if labels_path is not None and labels_path.suffix == ".csv" else "deepdanbooru")
        labels = read_labels(labels_path) if labels_path is not None else None
        return OnnxTagger(model, labels, family, name=text, threshold=threshold, device=device)
    if _key(text) not in _BY_KEY:
        raise ModelNotFound(f"tagger '{text}' is neither a file, a folder nor a known name; use one of "
                            f"{', '.join(TAGGERS)}, or a folder with an .onnx model and its tag list")
    name = _BY_KEY[_key(text)]
    spec = TAGGERS[name]
    offline = constants.HF_HUB_OFFLINE if local_files_only is None else local_files_only
    files = (spec.model_file,) + ((spec.labels_file,) if spec.labels_file else ())
    paths = hub_files("tagger", name, spec.repo, files, cache_dir=cache_dir, local_files_only=offline,
                       progress=progress)
    labels = read_labels(paths[1]) if spec.labels_file else None
    return OnnxTagger(paths[0], labels, preprocess or spec.preprocess, name=name, threshold=threshold,
                      device=device)
