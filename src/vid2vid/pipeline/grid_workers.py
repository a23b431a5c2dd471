"""A grid's cells painted side by side: `parallel` worker processes, each with its share of the CPU cores.

Each worker paints whole cells (`grid_cells.paint_in_process`: its own model, its own cell
workspace and lock), so cells never share state; the driver keeps the grid's lock, says each
finished cell and, when the job is cancelled, hands out no more cells and has the workers stop at
their next frame (what they painted is kept; the cells resume on the next run; a worker still
loading its model stops once it reaches its first frame). A worker's torch runs on cores /
`parallel` threads: float rounding may then differ in the last bits from a cell painted in one
process with every core (the same cell painted again with the same `parallel` on the same machine
gives the same bits).
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from vid2vid import config
from vid2vid.core.errors import Interrupted
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline import grid_cells
from vid2vid.pipeline.grid_plan import Cell, Grid, describe, take


def paint_side_by_side(ws: Workspace, grid: Grid, cells: list[Cell], parallel: int, job: Job) -> None:
    """Paint `cells` on `parallel` worker processes; each cell's record is taken as it finishes."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    job.say(f"grid: {len(cells)} cells to paint, {parallel} at a time ({threads} threads each)")
    tracker = job.tracker("grid cells", len(cells))
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    pool = ProcessPoolExecutor(parallel, mp_context=ctx, initializer=grid_cells.worker_init, initargs=(stop,))
    running: dict[Future, Cell] = {}
    try:
        for cell in cells:
            args = (str(ws.root), str(cell.folder), config.to_dict(cell.settings), cell.values, grid.first,
                    grid.last, threads)
            running[pool.submit(grid_cells.paint_in_process, *args)] = cell
        while running:
            finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            if job.cancel.is_set():
                stop.set()                          # the workers stop at their next frame
                raise Interrupted("grid interrupted: the cells painted so far are kept")
            for fut in finished:
                cell = running.pop(fut)
                take(cell, fut.result(), painted=True)
                tracker.advance(message=describe(cell))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
