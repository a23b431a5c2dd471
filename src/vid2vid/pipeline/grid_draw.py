"""The picture of a settings grid: cells in rows and columns with A1111-style headers.

    sheet = plan_sheet((w, h), ["denoise: 0.5", "denoise: 0.75"], ["cfg: 5", "cfg: 7"], title="seed: 1")
    bg = background(sheet)                      # white, the headers, the captions
    img = compose(sheet, bg, [c11, c12, c21, c22])   # the cells, row by row

A cell's painting is pasted unchanged at `origin(sheet, row, col)` (uint8, never scaled), so the
cell's area holds exactly the painted pixels; everything else is the white margin holding the
text: the title (the Z value) on top, the column headers (X values) above the cells, the row
headers (Y values) left of them, and an optional caption under each cell (a range's figures).
Text is drawn with Pillow's default font at a size read from the cell size (no font files).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vid2vid.temporal.compare import label_font as font

PAD = 6          # pixels around text
GAP = 4          # pixels between cells
WHITE, INK = (255, 255, 255), (0, 0, 0)


def font_size(cell_w: int, cell_h: int) -> int:
    """A readable size for the cell size: 13 px for small cells, up to 28 px for large ones."""
    return max(13, min(28, min(cell_w, cell_h) // 10))


def _measure(text: str, size: int) -> tuple[int, int]:
    """(width, height) of (multi-line) `text` in the default font at `size` pixels."""
    if not text:
        return 0, 0
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = draw.multiline_textbbox((0, 0), text, font=font(size))
    return int(x1), int(y1)


def wrap_label(text: str, width: int, size: int) -> str:
    """`name: value` on one line when it fits `width`, else the name and the value on two lines."""
    if _measure(text, size)[0] <= width or ": " not in text:
        return text
    name, value = text.split(": ", 1)
    return f"{name}:\n{value}"


@dataclass(frozen=True)
class Sheet:
    """Where everything goes: cell size, headers, captions (row-major, "" = none) and the margins."""

    cell_w: int
    cell_h: int
    col_labels: tuple[str, ...]
    row_labels: tuple[str, ...]
    title: str
    captions: tuple[str, ...]
    size: int                 # font size
    pitch_w: int              # cell-to-cell distance across
    pitch_h: int              # and down (cell + caption + gap)
    left: int                 # row header width
    top: int                  # title + column header height

    @property
    def rows(self) -> int:
        return max(1, len(self.row_labels))

    @property
    def cols(self) -> int:
        return max(1, len(self.col_labels))

    @property
    def width(self) -> int:
        return self.left + self.cols * self.pitch_w + PAD

    @property
    def height(self) -> int:
        return self.top + self.rows * self.pitch_h + PAD


def plan_sheet(cell: tuple[int, int], col_labels: list[str], row_labels: list[str], title: str = "",
               captions: list[str] | None = None) -> Sheet:
    """The layout for cells of `cell` (w, h) pixels (the largest cell when sizes differ)."""
    w, h = cell
    size = font_size(w, h)
    cols = [wrap_label(t, w, size) for t in col_labels]
    caps = tuple(captions or ())
    text_w = max([_measure(t, size)[0] for t in (*cols, *caps)] + [0])
    pitch_w = max(w, text_w) + GAP
    cap_h = max([_measure(t, size)[1] for t in caps] + [0])
    pitch_h = h + (cap_h + PAD if cap_h else 0) + GAP
    left = max([_measure(t, size)[0] for t in row_labels] + [0]) + 2 * PAD if row_labels else PAD
    head_h = max([_measure(t, size)[1] for t in cols] + [0])
    title_h = _measure(title, size)[1] + PAD if title else 0
    top = PAD + title_h + (head_h + PAD if cols else 0)
    return Sheet(w, h, tuple(cols), tuple(row_labels), title, caps, size, pitch_w, pitch_h, left, top)


def origin(sheet: Sheet, row: int, col: int) -> tuple[int, int]:
    """(x, y) of the top-left pixel of the cell at `row`, `col` (0-based)."""
    return sheet.left + col * sheet.pitch_w, sheet.top + row * sheet.pitch_h


def background(sheet: Sheet) -> np.ndarray:
    """uint8 HxWx3: white with the title, the headers and the captions drawn in black."""
    pil = Image.new("RGB", (sheet.width, sheet.height), WHITE)
    draw = ImageDraw.Draw(pil)
    f = font(sheet.size)
    if sheet.title:
        draw.text((sheet.left, PAD), sheet.title, fill=INK, font=f)
    for c, text in enumerate(sheet.col_labels):
        x, y = origin(sheet, 0, c)
        th = _measure(text, sheet.size)[1]
        draw.multiline_text((x, y - PAD - th), text, fill=INK, font=f)
    for r, text in enumerate(sheet.row_labels):
        x, y = origin(sheet, r, 0)
        th = _measure(text, sheet.size)[1]
        draw.text((PAD, y + max(0, (sheet.cell_h - th) // 2)), text, fill=INK, font=f)
    for k, text in enumerate(sheet.captions):
        if text:
            x, y = origin(sheet, *divmod(k, sheet.cols))
            draw.multiline_text((x, y + sheet.cell_h + PAD // 2), text, fill=INK, font=f)
    return np.asarray(pil).copy()


def compose(sheet: Sheet, bg: np.ndarray, cells: Sequence[np.ndarray | None]) -> np.ndarray:
    """A copy of `bg` with each uint8 cell (row-major; None = left blank) pasted at its origin."""
    out = bg.copy()
    for k, img in enumerate(cells):
        if img is None:
            continue
        x, y = origin(sheet, *divmod(k, sheet.cols))
        h, w = img.shape[:2]
        out[y:y + min(h, sheet.cell_h), x:x + min(w, sheet.cell_w)] = img[:sheet.cell_h, :sheet.cell_w]
    return out
