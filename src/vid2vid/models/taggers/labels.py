"""Reading a tagger's label list: WD14's selected_tags.csv, a tags.txt, or the model's metadata.

    selected_tags.csv   tag_id,name,category,count   (category 9 = rating, 0 general, 4 character)
    tags.txt            one tag per line (DeepDanbooru; ratings are written 'rating:safe' ...)
    ONNX metadata       key 'tags': a Python list literal of names (skytnt's DeepDanbooru export)
"""
from __future__ import annotations

import ast
import csv
from dataclasses import dataclass
from pathlib import Path

from vid2vid.core.errors import ModelNotFound

RATING_CATEGORY = "9"


@dataclass(frozen=True)
class Labels:
    """Label names in output order, and the indices that are ratings rather than tags."""

    names: list[str]
    ratings: frozenset[int]


def _ratings_by_prefix(names: list[str]) -> frozenset[int]:
    return frozenset(i for i, n in enumerate(names) if n.startswith("rating:"))


def read_labels(path: str | Path) -> Labels:
    """Labels from a .csv (needs a 'name' column; 'category' 9 marks ratings) or a .txt (one per line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelNotFound(f"tag list {p} cannot be read ({exc}); it should be a UTF-8 .csv or .txt") from exc
    if p.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "name" not in rows[0]:
            raise ModelNotFound(f"tag list {p} has no 'name' column; WD14's selected_tags.csv has the header "
                                "tag_id,name,category,count")
        names = [r["name"] for r in rows]
        ratings = frozenset(i for i, r in enumerate(rows) if (r.get("category") or "").strip() == RATING_CATEGORY)
        return Labels(names, ratings | _ratings_by_prefix(names))
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelNotFound(f"tag list {p} is empty; it needs one tag per line")
    return Labels(names, _ratings_by_prefix(names))


def labels_from_metadata(metadata: dict[str, str], source: str) -> Labels:
    """Labels stored in the ONNX model's metadata under 'tags' (a list literal; never evaluated as code)."""
    raw = metadata.get("tags")
    if raw is None:
        raise ModelNotFound(f"tagger {source} has no tag list: put selected_tags.csv or tags.txt beside the "
                            ".onnx file")
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelNotFound(f"the tag list in {source}'s metadata is not a list literal ({exc})") from exc
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ModelNotFound(f"the tag list in {source}'s metadata is not a list of strings")
    names = list(names)
    return Labels(names, _ratings_by_prefix(names))
