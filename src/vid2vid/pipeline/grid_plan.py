"""A grid's plan: its axes, frames and cells, checked before anything is painted (see `vid2vid.pipeline.grid`)."""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.workspace import Workspace, safe_name
from vid2vid.pipeline import grid_cells
from vid2vid.pipeline.grid_axes import Axis, check_axes, parse_frames, value_label

FOLDER = "grid"
MAX_CELLS = 64
AXIS_NAMES = ("x", "y", "z")


@dataclass
class Cell:
    """One cell: its axis values, its settings, its folder; what the run did with it."""

    values: dict[str, Any]                 # setting key -> value, one per axis
    settings: config.Settings
    folder: Path
    painted: bool = False
    outputs: list[Path] = field(default_factory=list)
    figures: dict | None = None
    page: int = 1                          # which picture / video shows it (the Z value's, from 1)
    box: tuple[int, ...] = ()              # where: x, y, width, height of its painting there


@dataclass
class Grid:
    """A planned grid: where it goes, its axes and frames, its cells (Z, then Y, then X order)."""

    folder: Path
    axes: list[Axis]
    first: int
    last: int
    cells: list[Cell]
    files: list[Path] = field(default_factory=list)

    @property
    def single(self) -> bool:
        return self.first == self.last

    @property
    def frames(self) -> int | list[int]:
        return self.first if self.single else [self.first, self.last]

    def line(self) -> str:
        """The closing line: cells, how many were painted and reused, and the picture or video."""
        painted = sum(c.painted for c in self.cells)
        where = self.files[0] if len(self.files) == 1 else self.folder
        return f"grid: {len(self.cells)} cells ({painted} painted, {len(self.cells) - painted} reused) -> {where}"


def default_name(axes: list[Axis], first: int, last: int) -> str:
    """The grid's folder name from its axes and frames: denoise-cfg-f40 or denoise-f40-64."""
    frames = f"f{first}" if first == last else f"f{first}-{last}"
    return safe_name("-".join([a.name for a in axes] + [frames]), limit=80)


def _with_values(base: config.Settings, values: dict[str, Any]) -> config.Settings:
    """A copy of `base` with each "section.field" set, the changed sections validated."""
    s = copy.deepcopy(base)
    for key, value in values.items():
        section, name = key.split(".")
        setattr(getattr(s, section), name, copy.copy(value))
    for section in {k.split(".")[0] for k in values}:
        getattr(s, section).validate()
    return s


def cell_count(axes: list[Axis]) -> int:
    """How many cells the axes make."""
    return math.prod(len(a.values) for a in axes)


def plan(ws: Workspace, base: config.Settings, axes: list[Axis], at: str, name: str = "",
         yes: bool = False) -> Grid:
    """Check everything a grid needs before anything is painted, and lay out its cells."""
    # 1. the axes, the frames, the size of the grid
    if not 1 <= len(axes) <= 3:
        raise BadInput("a grid needs one to three axes (X, then Y and Z)")
    check_axes(axes)
    ws.require()
    n_frames = len(ws.frames())
    first, last = parse_frames(at, n_frames)
    count = cell_count(axes)
    if count > MAX_CELLS and not yes:          # the command line and the page say this in their words first
        raise BadInput(f"this grid has {count} cells, more than {MAX_CELLS}; confirm that many (yes) or sweep "
                       "fewer values")
    # 2. the base settings and every cell's settings, checked (a bad combination is said before painting)
    base = copy.deepcopy(base)
    base.img2img.single = 0
    base.validate()
    folder = ws.path(FOLDER, safe_name(name, limit=80) if name else default_name(axes, first, last))
    cells = []
    for combo in itertools.product(*[a.values for a in reversed(axes)]):    # Z slowest, X fastest
        values = {a.key: v for a, v in zip(reversed(axes), combo)}
        values = {a.key: values[a.key] for a in axes}
        s = _with_values(base, values)
        cid = grid_cells.cell_id(ws, s, first, last)
        cells.append(Cell(values, s, folder / "cells" / cid))
    from vid2vid.config import stagetable
    from vid2vid.pipeline.runner import check_models

    for s in {c.settings.img2img.model: c.settings for c in cells}.values():
        check_models(s, [stagetable.stage("img2img")])
    return Grid(folder, list(axes), first, last, cells)


def take(cell: Cell, record: dict, painted: bool) -> None:
    """What a cell's record says about it: its output files and figures; whether this run painted it."""
    cell.outputs = [cell.folder / p for p in record["outputs"]]
    cell.figures = record.get("figures")
    cell.painted = painted


def describe(cell: Cell) -> str:
    """The cell's axis values as the command line writes them (--denoise 0.5, --cfg 7)."""
    return ", ".join(f"{config.cli_name(key)} {value_label(v)}" for key, v in cell.values.items())
