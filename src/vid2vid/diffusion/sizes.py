"""`vid2vid size W H`: canvas sizes for img2img near a source's aspect ratio (the seed's size_recommend).

Stable Diffusion needs width and height in multiples of 8 (the VAE factor); multiples of 64 keep
every UNet level's feature map whole. Candidates are ranked by how far their aspect ratio is from
the source's (in log scale, so 2:1 and 1:2 are equally far from 1:1), larger canvases first on ties.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from vid2vid.errors import BadInput


@dataclass(frozen=True)
class Canvas:
    width: int
    height: int
    source_ratio: float

    @property
    def ratio(self) -> float:
        return self.width / self.height

    @property
    def error(self) -> float:
        """Relative aspect ratio error, e.g. 0.01 = 1 % wider than the source."""
        return self.ratio / self.source_ratio - 1.0


def recommend_sizes(width: int, height: int, multiple: int = 8, lo: int = 360, hi: int = 720,
                    top: int = 15) -> list[Canvas]:
    """The `top` canvases with both sides multiples of `multiple` in [lo, hi], nearest in aspect ratio."""
    if width <= 0 or height <= 0:
        raise BadInput(f"size {width}x{height} is not a picture size; give two positive numbers, e.g. 852 480")
    if multiple <= 0 or lo > hi:
        raise BadInput(f"no canvas sizes between {lo} and {hi} in steps of {multiple}")
    r = width / height
    first = -(-lo // multiple) * multiple
    sides = range(first, hi + 1, multiple)
    found = [Canvas(w, h, r) for w in sides for h in sides]
    found.sort(key=lambda c: (round(abs(math.log(c.width / c.height / r)), 12), -c.width * c.height))
    return found[:top]


def format_table(canvases: list[Canvas]) -> str:
    lines = [f"  {'width':>5} x {'height':<6} {'aspect':>7} {'error':>8} {'pixels':>8}"]
    for c in canvases:
        lines.append(f"  {c.width:>5} x {c.height:<6} {c.ratio:>7.4f} {c.error:>+8.2%} {c.width * c.height:>8}")
    return "\n".join(lines)
