"""The tagger protocol and the pure functions around it: thresholds, video-wide ranking, prompts.

A tagger turns one float32 RGB HxWx3 image in [0, 1] into `{tag: probability}` for the
tags at or above its threshold, most probable first. Rating labels (general / sensitive /
explicit ...) are not tags and are left out.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Tagger(Protocol):
    """One call signature for every tagger."""

    name: str
    threshold: float

    def tag(self, image: np.ndarray) -> dict[str, float]:
        """float32 HxWx3 RGB [0, 1] -> {tag: probability >= threshold}, most probable first."""
        ...


def select_tags(names: list[str], probs: np.ndarray, threshold: float,
                skip: Iterable[int] = ()) -> dict[str, float]:
    """Tags whose probability is >= threshold, most probable first (ties by name); `skip` = label indices left out."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.shape[0] != len(names):
        raise ValueError(f"{p.shape[0]} probabilities for {len(names)} labels")
    skipped = set(skip)
    kept = [(names[i], float(p[i])) for i in range(len(names)) if i not in skipped and p[i] >= threshold]
    return dict(sorted(kept, key=lambda t: (-t[1], t[0])))


def rank_tags(per_frame: Iterable[Mapping[str, float]], k: int) -> list[tuple[str, float]]:
    """The k tags with the highest mean score over all frames (a frame without the tag counts 0).

    The mean rewards tags that are both frequent and confident; ties go by name.
    """
    frames = list(per_frame)
    if not frames:
        return []
    total: dict[str, float] = {}
    for tags in frames:
        for name, p in tags.items():
            total[name] = total.get(name, 0.0) + float(p)
    ranked = sorted(((n, s / len(frames)) for n, s in total.items()), key=lambda t: (-t[1], t[0]))
    return ranked[:k]


_WORD = re.compile(r"[A-Za-z]{2}")


def prompt_tag(tag: str) -> str:
    """A Danbooru tag as prompt text: underscores become spaces and parentheses are escaped.

    Emoticons such as '^_^', 'o_o' or '(o)_(o)' (no two letters in a row) keep their
    underscores. Parentheses are escaped (`\\(`) because A1111 prompt syntax reads them as
    emphasis.
    """
    text = tag.replace("_", " ") if _WORD.search(tag) else tag
    return text.replace("(", "\\(").replace(")", "\\)")


def format_prompt(tags: Iterable[str]) -> str:
    """Tags as one comma-separated, prompt-ready line."""
    return ", ".join(prompt_tag(t) for t in tags)
