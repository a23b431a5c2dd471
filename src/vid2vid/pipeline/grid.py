"""Settings sweeps people can look at: an X/Y/Z grid of one painted frame or of a short range.

    from vid2vid.pipeline import grid
    from vid2vid.pipeline.grid_axes import parse_axis
    result = grid.run_grid(Workspace("ws"), settings, [parse_axis("denoise=0.5,0.75"),
                           parse_axis("cfg=5,7")], at="40")
    print(result.line())            # grid: 4 cells (4 painted, 0 reused) -> ws/grid/<name>/grid.png

Axes are X (columns), Y (rows) and Z (one picture per value); each cell is the base settings with
one value of every axis. `at` is one frame (`40`: a labelled image of that frame as
`vid2vid img2img --single 40` paints it) or a range (`40-64`: a labelled video with the source in
the first column and under each cell its warping error, flicker and PSNR against the source).
Cells are small workspaces of their own (`vid2vid.pipeline.grid_cells`), reused when the same cell
is asked again, resumed when a grid was killed. Everything goes to `WS/grid/<name>/`:

    grid.png (one frame, or a range's first frame) / grid-z<k>.png with a Z axis
    grid.mp4 / grid-z<k>.mp4 (a range)
    grid.json   {"axes", "frames", "cells": [{"settings", "figures" (a range), "painted"}], "files"}
    grid.csv    one line per cell: its settings and figures (a range)
"""
from __future__ import annotations

from typing import Any

from vid2vid import config
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_write_json, atomic_write_text
from vid2vid.pipeline import grid_cells
from vid2vid.pipeline.grid_axes import Axis, value_label
from vid2vid.pipeline.grid_plan import AXIS_NAMES, Cell, Grid, describe, plan, take
from vid2vid.pipeline.models import ModelCache

__all__ = ["Cell", "Grid", "plan", "run_grid"]


def run_grid(ws: Workspace, base: config.Settings, axes: list[Axis], at: str, name: str = "",
             yes: bool = False, job: Job | None = None, parallel: int = 1,
             models: ModelCache | None = None) -> Grid:
    """Plan, paint the cells not yet painted (`parallel` > 1: that many side by side, in processes of
    their own), draw the picture (and video), write grid.json and grid.csv. `models`: the model
    cache the cells painted in this process take their model from (the page's; None: a new one)."""
    from vid2vid.pipeline import grid_output

    job = job or Job()
    models = models if models is not None else ModelCache()
    grid = plan(ws, base, axes, at, name, yes)
    with Workspace(grid.folder).locked():          # one run of a grid at a time
        todo = []
        for cell in grid.cells:                    # 1. reuse the cells that are done
            done = grid_cells.read_done(cell.folder)
            if done is None:
                todo.append(cell)
            else:
                take(cell, done, painted=False)
        if parallel > 1 and len(todo) > 1:         # 2. paint the others
            from vid2vid.pipeline.grid_workers import paint_side_by_side

            paint_side_by_side(ws, grid, todo, parallel, job)
        else:
            for k, cell in enumerate(todo, 1):
                job.check()
                job.say(f"grid: cell {k}/{len(todo)} to paint ({describe(cell)})")
                take(cell, grid_cells.paint_cell(ws, cell.folder, cell.settings, cell.values, grid.first,
                                                 grid.last, job, models), painted=True)
        grid.files = grid_output.draw(ws, grid, job)
        write_record(grid)
    return grid


def write_record(grid: Grid) -> None:
    """grid.json (axes, frames, cells, files) and grid.csv (one line per cell)."""
    plain = grid_cells.plain
    axes = {n: {"setting": a.key, "values": [plain(v) for v in a.values]} for n, a in zip(AXIS_NAMES, grid.axes)}
    cells = []
    for c in grid.cells:
        rec: dict[str, Any] = {"settings": {k: plain(v) for k, v in c.values.items()}, "painted": c.painted,
                               "folder": str(c.folder.relative_to(grid.folder)), "page": c.page, "box": list(c.box)}
        if not grid.single:
            rec["figures"] = c.figures
        cells.append(rec)
    atomic_write_json(grid.folder / "grid.json", {"axes": axes, "frames": grid.frames, "cells": cells,
                                                  "files": [p.name for p in grid.files]})
    head = [a.key for a in grid.axes] + ([] if grid.single else ["warping_error", "flicker", "psnr"])
    lines = [",".join(head)]
    for c in grid.cells:
        row = [value_label(c.values[a.key]) for a in grid.axes]
        if c.figures:
            row += [f"{c.figures[k]:.6f}" if c.figures[k] is not None else "" for k in head[len(grid.axes):]]
        lines.append(",".join(f'"{v}"' if "," in v else v for v in row))
    atomic_write_text(grid.folder / "grid.csv", "\n".join(lines) + "\n")
