"""A grid's pictures and videos: one sheet per Z value, drawn with `vid2vid.pipeline.grid_draw`.

One frame: `grid.png` (`grid-z<k>.png` per Z value) with the cells' paintings as painted.
A range: `grid.mp4` (`grid-z<k>.mp4`) with the source fitted to the canvas in the first column
and each cell's figures under it, played at the extracted frames' rate; `grid.png` is its first frame.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from vid2vid.core import imageops
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_path
from vid2vid.pipeline import grid_draw
from vid2vid.pipeline.grid_cells import SOURCE
from vid2vid.pipeline.grid_plan import Cell, Grid

DEFAULT_FPS = Fraction(12)


def frame_rate(ws: Workspace) -> Fraction:
    """The extracted frames' rate: their count over the source's duration (as export plays them)."""
    duration = float((ws.manifest.get("video") or {}).get("duration") or 0)
    n = len(ws.frames())
    return Fraction(n) / Fraction(duration).limit_denominator(1_000_000) if duration > 0 and n else DEFAULT_FPS


def caption(figures: dict | None) -> str:
    """A cell's figures in three short lines."""
    if not figures:
        return ""
    psnr = figures.get("psnr")
    return (f"warp {figures['warping_error']:.4f}\nflicker {figures['flicker']:.4f}\n"
            f"PSNR {'inf' if psnr is None or psnr == float('inf') else f'{psnr:.2f}'} dB")


def _u8(path: Path) -> np.ndarray:
    return imageops.to_uint8(imageops.read_image(path))


def _pages(grid: Grid) -> list[tuple[str, list[Cell]]]:
    """(title, cells in row-major order) per Z value (one page, no title, without a Z axis)."""
    per = len(grid.cells) if len(grid.axes) < 3 else len(grid.axes[0].values) * len(grid.axes[1].values)
    titles = [f"{grid.axes[2].name}: {lab}" for lab in grid.axes[2].labels()] if len(grid.axes) == 3 else [""]
    return [(t, grid.cells[k * per:(k + 1) * per]) for k, t in enumerate(titles)]


def _sheet(grid: Grid, title: str, cells: list[Cell], sizes: list[tuple[int, int]]) -> grid_draw.Sheet:
    x = grid.axes[0]
    cols = [f"{x.name}: {lab}" for lab in x.labels()]
    rows = [f"{grid.axes[1].name}: {lab}" for lab in grid.axes[1].labels()] if len(grid.axes) > 1 else []
    caps = None
    if not grid.single:
        cols = ["source"] + cols
        caps = [c for k in range(len(rows) or 1)
                for c in ["", *(caption(cell.figures) for cell in cells[k * len(x.values):(k + 1) * len(x.values)])]]
    cell = (max(w for w, _ in sizes), max(h for _, h in sizes))
    return grid_draw.plan_sheet(cell, cols, rows, title, caps)


def _place(grid: Grid, sheet: grid_draw.Sheet, k: int, cells: list[Cell], sizes: list[tuple[int, int]]) -> None:
    """Record where each cell's painting is on page `k` (a range's first column is the source)."""
    ncols = len(grid.axes[0].values)
    for i, (cell, (w, h)) in enumerate(zip(cells, sizes)):
        r, c = divmod(i, ncols)
        x, y = grid_draw.origin(sheet, r, c + (0 if grid.single else 1))
        cell.page, cell.box = k, (x, y, w, h)


def _name(grid: Grid, k: int, ext: str) -> Path:
    return grid.folder / (f"grid.{ext}" if len(grid.axes) < 3 else f"grid-z{k}.{ext}")


def draw(ws: Workspace, grid: Grid, job: Job) -> list[Path]:
    """Write every page (picture, and video for a range); returns the files the grid is shown by."""
    files = []
    for k, (title, cells) in enumerate(_pages(grid), 1):
        if grid.single:
            imgs = [_u8(c.outputs[0]) for c in cells]
            sizes = [(i.shape[1], i.shape[0]) for i in imgs]
            sheet = _sheet(grid, title, cells, sizes)
            _place(grid, sheet, k, cells, sizes)
            imageops.write_png(_name(grid, k, "png"), grid_draw.compose(sheet, grid_draw.background(sheet), imgs))
            files.append(_name(grid, k, "png"))
        else:
            files.append(_video(ws, grid, k, title, cells, job))
    return files


def _video(ws: Workspace, grid: Grid, k: int, title: str, cells: list[Cell], job: Job) -> Path:
    """The range's grid video (the source column first) and its first frame as a picture."""
    from vid2vid.video.encode import encode_video

    source = sorted((cells[0].folder / SOURCE).glob("*.png"))
    firsts = [_u8(p) for p in [source[0], *(c.outputs[0] for c in cells)]]
    sizes = [(i.shape[1], i.shape[0]) for i in firsts]
    sheet = _sheet(grid, title, cells, sizes)
    _place(grid, sheet, k, cells, sizes[1:])
    bg = grid_draw.background(sheet)
    ncols = len(grid.axes[0].values)
    n = len(source)

    def frame(i: int) -> np.ndarray:
        painted = [_u8(c.outputs[i]) for c in cells]
        src = _u8(source[i])
        row_major = [img for r in range(max(1, len(cells) // ncols))
                     for img in [src, *painted[r * ncols:(r + 1) * ncols]]]
        return grid_draw.compose(sheet, bg, row_major)

    imageops.write_png(_name(grid, k, "png"), frame(0))
    tracker = job.tracker(f"grid video {k}", n)
    out = _name(grid, k, "mp4")
    with atomic_path(out) as tmp:
        encode_video((frame(i) for i in range(n)), tmp, "mp4", frame_rate(ws), (sheet.width, sheet.height),
                     on_frame=tracker.advance, metadata={"comment": f"vid2vid grid, frames {grid.first}-{grid.last}"})
    return out
