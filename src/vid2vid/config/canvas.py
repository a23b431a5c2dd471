"""`vid2vid size W H`: canvas sizes for img2img near a source's aspect ratio (the seed's size_recommend).

Stable Diffusion needs width and height in multiples of 8 (the VAE factor); multiples of 64 keep
every UNet level's feature map whole. Candidates are ranked by how far their aspect ratio is from
the source's (in log scale, so 2:1 and 1:2 are equally far from 1:1), larger canvases first on ties.

What one model can take (`CanvasRules`, read from its configs without loading weights): sides in
multiples of the VAE's factor (2 ** (VAE levels - 1), 8 for SD), at least one pixel at the
UNet's deepest level (factor * 2 ** (UNet levels - 1): 64 for SD; smaller canvases end in
GroupNorm errors deep inside the model), and at most `max_pixels` (a canvas limit of its own,
separate from extract's bound on the source). `check_canvas` refuses anything else with a
suggestion that passes the same check. `oriented_canvas` turns the default landscape canvas for
a portrait source.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from vid2vid.core.errors import BadInput

DEFAULT_CANVAS = (832, 448)          # img2img's default width x height (landscape)
MAX_CANVAS_PIXELS = 4096 * 4096      # a canvas limit of its own: the VAE at this size already needs many GB
MAX_CANVAS_SIDE = 8192


@dataclass(frozen=True)
class CanvasRules:
    """What sizes a model takes: multiples of `factor`, sides of at least `min_side`, at most `max_pixels`."""

    factor: int = 8
    min_side: int = 64
    max_pixels: int = MAX_CANVAS_PIXELS
    model: str = "Stable Diffusion"
    max_side: int = MAX_CANVAS_SIDE

    @classmethod
    def from_configs(cls, vae: dict, unet: dict, model: str = "", max_pixels: int = MAX_CANVAS_PIXELS) -> CanvasRules:
        """From a VAE's and a UNet's diffusers config (block_out_channels, down_block_types)."""
        factor = 2 ** (len(vae.get("block_out_channels", (0, 0, 0, 0))) - 1)
        levels = len(unet.get("down_block_types", ())) or len(unet.get("block_out_channels", (0, 0, 0, 0)))
        return cls(factor=factor, min_side=factor * 2 ** (levels - 1), max_pixels=max_pixels,
                   model=model or "the model")


def valid_canvas(width: int, height: int, rules: CanvasRules) -> tuple[int, int]:
    """The nearest canvas `rules` accept: same aspect ratio where it can, sides in multiples of the
    factor, each at least `min_side`, the area at most `max_pixels`."""
    w, h = max(1.0, float(width)), max(1.0, float(height))
    scale = min(1.0, math.sqrt(rules.max_pixels / (w * h)), rules.max_side / max(w, h))
    w, h = w * scale, h * scale
    f = rules.factor

    def side(v: float) -> int:
        return min(rules.max_side // f * f, max(-(-rules.min_side // f) * f, int(round(v / f)) * f))

    sw, sh = side(w), side(h)
    while sw * sh > rules.max_pixels and (sw > rules.min_side or sh > rules.min_side):
        if sw >= sh:
            sw -= f
        else:
            sh -= f
    return sw, sh


def check_canvas(width: int, height: int, rules: CanvasRules, names: tuple[str, str] = ("{img2img.width}",
                                                                                        "{img2img.height}")) -> None:
    """BadInput when `rules` refuse width x height; the message suggests `valid_canvas`."""
    problems = []
    for name, v in zip(names, (width, height)):
        if v % rules.factor:
            problems.append(f"{name} {v} is not a multiple of {rules.factor} (the VAE's factor)")
        elif v < rules.min_side:
            problems.append(f"{name} {v} is below {rules.min_side} (the UNet's deepest level needs a whole pixel)")
        elif v > rules.max_side:
            problems.append(f"{name} {v} is above {rules.max_side}")
    if not problems and width * height > rules.max_pixels:
        problems.append(f"{width * height:,} pixels is over the canvas limit of {rules.max_pixels:,}")
    if problems:
        sw, sh = valid_canvas(width, height, rules)
        w_name, h_name = names
        raise BadInput(f"canvas {width}x{height} does not fit {rules.model}: {'; '.join(problems)}; "
                       f"try {w_name} {sw} {h_name} {sh}")


def oriented_canvas(width: int, height: int, source_width: int, source_height: int) -> tuple[int, int]:
    """The default landscape canvas turned upright for a portrait source (832x448 -> 448x832);
    any other size is kept as given."""
    if (width, height) == DEFAULT_CANVAS and source_height > source_width:
        return height, width
    return width, height


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
