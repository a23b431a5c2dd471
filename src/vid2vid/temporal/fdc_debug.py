"""PNG sheets for tuning frame delta correction (`vid2vid fdc-debug`).

- motion-mask grid: one frame's motion mask over low-cut 0..255 (the seed's mask_motion_grid);
- depth-mask grid: one depth map's mask over low-cut -1..255;
- FDC sheet for frame i: previous output, generated frame, source delta, mask, corrected frame
  and |corrected - generated|, with the chosen settings.

The sheet builders are pure (arrays in, uint8 RGB sheet out); `main` does the file IO.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.imageops import delta_view, resize, to_uint8
from vid2vid.temporal import fdc

CAPTION_H = 16              # pixels of caption strip above each tile
GAP = 4                     # pixels between tiles
MOTION_LOWCUTS = tuple(range(0, 256, 4))                  # 64 tiles, 8 x 8, as the seed's grid
DEPTH_LOWCUTS = (-1,) + tuple(range(0, 256, 8)) + (255,)  # 34 tiles


# ---------------------------------------------------------------- layout

def _rgb_u8(img: np.ndarray) -> np.ndarray:
    """float [0, 1] HxWx1 or HxWx3 (or uint8) -> uint8 HxWx3."""
    a = img if img.dtype == np.uint8 else to_uint8(img)
    if a.ndim == 2:
        a = a[..., None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _scaled(img: np.ndarray, tile_width: int | None) -> np.ndarray:
    if not tile_width or tile_width == img.shape[1]:
        return img
    h = max(1, round(img.shape[0] * tile_width / img.shape[1]))
    return resize(np.asarray(img, dtype=np.float32), tile_width, h)


def grid(tiles: Sequence[np.ndarray], labels: Sequence[str], columns: int | None = None) -> np.ndarray:
    """Tiles (float [0, 1] or uint8, HxWx1 or HxWx3, one size) with a caption above each -> uint8 HxWx3.

    Tile k sits at column k % columns, row k // columns; its pixels start CAPTION_H rows below
    the top of its cell, unchanged apart from the conversion to 8 bits.
    """
    if not tiles:
        raise BadInput("no tiles to draw")
    cells = [_rgb_u8(np.asarray(t)) for t in tiles]
    h, w = cells[0].shape[:2]
    columns = columns or math.ceil(math.sqrt(len(cells)))
    rows = math.ceil(len(cells) / columns)
    cell_h, cell_w = h + CAPTION_H, w
    sheet = np.full((rows * cell_h + (rows - 1) * GAP, columns * cell_w + (columns - 1) * GAP, 3), 32, np.uint8)
    for k, tile in enumerate(cells):
        y, x = (k // columns) * (cell_h + GAP), (k % columns) * (cell_w + GAP)
        sheet[y + CAPTION_H:y + cell_h, x:x + cell_w] = tile
    pil = Image.fromarray(sheet, "RGB")
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default()
    for k, text in enumerate(labels):
        y, x = (k // columns) * (cell_h + GAP), (k % columns) * (cell_w + GAP)
        draw.text((x + 2, y + 2), text, fill=(235, 235, 235), font=font)
    return np.asarray(pil)


def tile_origin(k: int, tile_hw: tuple[int, int], columns: int) -> tuple[int, int]:
    """(row, column) pixel offset of tile k's image (below its caption) in a `grid` sheet."""
    h, w = tile_hw
    return (k // columns) * (h + CAPTION_H + GAP) + CAPTION_H, (k % columns) * (w + GAP)


# ---------------------------------------------------------------- sheets

def motion_mask_grid(delta: np.ndarray, highext: int = 7, lowcuts: Sequence[int] = MOTION_LOWCUTS,
                     tile_width: int | None = None) -> np.ndarray:
    """Motion masks of one source delta (float32 HxWx3 in [-1, 1]) for each low-cut -> uint8 sheet.

    Masks are computed at the delta's own size, then scaled to tile_width for the sheet.
    """
    tiles = [_scaled(fdc.motion_mask(delta, int(lc), highext), tile_width) for lc in lowcuts]
    labels = [f"low-cut {lc}" for lc in lowcuts]
    labels[0] += f" (high-ext {highext})"
    return grid(tiles, labels)


def depth_mask_grid(depth: np.ndarray, lowcuts: Sequence[int] = DEPTH_LOWCUTS,
                    tile_width: int | None = None) -> np.ndarray:
    """Depth masks of one depth map (float32 HxWx1 in [0, 1]) for each low-cut -> uint8 sheet."""
    tiles = [_scaled(fdc.depth_mask(depth, int(lc)), tile_width) for lc in lowcuts]
    return grid(tiles, [f"low-cut {lc}" if lc >= 0 else "low-cut -1 (none)" for lc in lowcuts])


def fdc_sheet(prev_out: np.ndarray, generated: np.ndarray, src_delta: np.ndarray,
              settings: config.CorrectSettings, depth: np.ndarray | None = None,
              tile_width: int | None = None) -> np.ndarray:
    """The FDC debugger for one frame -> uint8 sheet, 3 x 2 tiles at the generated size.

    Tiles: previous output, generated frame, source delta ((d + 1) / 2), delta mask (black
    when none), corrected frame, |corrected - generated| stretched to full brightness (the
    caption gives the largest difference and the gain).
    """
    out, mask = fdc.correct_frame(generated, prev_out, src_delta, settings, depth=depth)
    h, w = generated.shape[:2]
    shown_delta = delta_view(fdc.fit_delta(src_delta, h, w))
    diff = np.abs(out - np.asarray(generated, dtype=np.float32))
    peak = float(diff.max())
    gain = 1.0 / peak if peak > fdc.EPS else 1.0
    tiles = [prev_out, generated, shown_delta,
             mask if mask is not None else np.zeros((h, w, 1), np.float32),
             out, np.clip(diff * gain, 0.0, 1.0)]
    tiles = [_scaled(np.asarray(t, dtype=np.float32), tile_width) for t in tiles]
    mask_label = "no delta mask" if mask is None else (
        f"{settings.delta_mask} mask (low-cut {settings.motion_lowcut}, high-ext {settings.motion_highext})"
        if settings.delta_mask == "motion" else f"depth mask (low-cut {settings.depth_lowcut})")
    labels = ["previous output", "generated", "source delta (d+1)/2", mask_label,
              f"corrected ({settings.fdc})", f"|corrected - generated| max {peak:.3f} (x{gain:.1f})"]
    return grid(tiles, labels, columns=3)
