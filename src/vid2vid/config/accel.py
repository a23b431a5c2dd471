"""The accelerators of the UNet calls (`[img2img] accel`): what each spec string means.

A spec is one of
- `tome:RATIO`       token merging in the full-resolution self-attention: RATIO of the tokens
                     (0 to 0.75) merged into similar ones before attention, copied back after;
- `cache:N`          deep features reused: a full UNet call, then N calls that run only the
                     shallow path (the outermost down and up blocks) with the deep features of
                     that full call; 0 = every call full;
- `cache-frames[:T]` deep features reused across frames: a frame whose source differs from the
                     source of the frame that last computed them by less than T (mean absolute
                     difference, 0..1; default 0.02) runs only the shallow path at every step,
                     with that frame's deep features of the same step.

Several specs combine: the settings list (`--accel tome:0.5 --accel cache:2`), or one string
with specs separated by commas or spaces (`"tome:0.5,cache:2"`, what a grid axis gives).
`parse` reads either into an `Accel`; the empty list (or `none`) is `Accel()`, which changes nothing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vid2vid.core.errors import BadInput

KINDS = ("tome", "cache", "cache-frames")
TOME_MAX = 0.75                # ToMe's 2x2 grid keeps one destination token per cell
CACHE_MAX = 16
FRAMES_DEFAULT = 0.02
USE = "use tome:RATIO (0 to 0.75), cache:N (0 to 16) or cache-frames[:THRESHOLD] (0 to 1)"


@dataclass(frozen=True)
class Accel:
    """The accelerators in force: token-merging ratio, in-frame cache length, cross-frame threshold (None = off)."""

    tome: float = 0.0
    cache: int = 0
    frames: float | None = None

    @property
    def any(self) -> bool:
        return self.tome > 0 or self.cache > 0 or self.frames is not None

    def specs(self) -> list[str]:
        """The canonical spec strings (what `parse` reads back to the same Accel)."""
        out = [f"tome:{self.tome:g}"] if self.tome > 0 else []
        out += [f"cache:{self.cache}"] if self.cache > 0 else []
        return out + ([f"cache-frames:{self.frames:g}"] if self.frames is not None else [])


def split(values) -> list[str]:
    """A list of specs, or one string of specs separated by commas or spaces, as a list of single specs."""
    items = [values] if isinstance(values, str) else list(values)
    return [part for item in items for part in re.split(r"[,\s]+", str(item).strip()) if part]


def _number(kind: str, text: str, lo: float, hi: float, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise BadInput(f"{{img2img.accel}} {kind}:{text}: '{text}' is not a number; {USE}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise BadInput(f"{{img2img.accel}} {kind}:{text} is out of range; {kind} takes {lo:g} to {hi:g}")
    return value


def parse(values) -> Accel:
    """Accel from spec strings (see the module text); one clear BadInput line for anything else."""
    tome, cache, frames, seen = 0.0, 0, None, set()
    for spec in split(values):
        if spec.lower() == "none":          # a grid axis value: no accelerator
            continue
        kind, _, arg = spec.partition(":")
        kind = kind.lower()
        if kind not in KINDS:
            raise BadInput(f"{{img2img.accel}} '{spec}' is not known; {USE}")
        if kind in seen:
            raise BadInput(f"{{img2img.accel}} names {kind} twice; give each accelerator once")
        seen.add(kind)
        if kind == "tome":
            tome = _number(kind, arg, 0.0, TOME_MAX) if arg else _missing(kind)
        elif kind == "cache":
            cache = int(_number(kind, arg, 0, CACHE_MAX, integer=True)) if arg else _missing(kind)
        else:
            frames = _number(kind, arg, 0.0, 1.0) if arg else FRAMES_DEFAULT
    return Accel(float(tome), int(cache), frames)


def _missing(kind: str):
    raise BadInput(f"{{img2img.accel}} {kind} needs its value ({kind}:{'RATIO' if kind == 'tome' else 'N'}); {USE}")
