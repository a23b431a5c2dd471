"""`vid2vid grid -w WS --x denoise=0.5,0.75 [--y ...] [--z ...] --at 40|40-64`: a settings sweep as a
labelled picture (one frame) or video (a range); thin over `vid2vid.pipeline.grid.run_grid`.

The base settings are `--config FILE`, else the workspace's own settings.toml (what `vid2vid run`
saved there), else the defaults; the painting options given (`--model`, `--prompt`, ...) go over them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.pipeline.grid_axes import SECTIONS

HELP = "a settings sweep: an X/Y/Z grid of one painted frame (a picture) or a short range (a video with figures)"
AXIS_HELP = ("SETTING=VALUES: a setting of the painting stages by name or flag (denoise, --sigma-max, "
             "img2img.cfg) and comma-separated values; numbers also as lo:hi:step, lists as a+b or none")


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """The grid's own options (the settings options come from the sections in `SECTIONS`)."""
    sp.add_argument("--x", required=True, metavar="SETTING=VALUES", help="the columns: " + AXIS_HELP)
    sp.add_argument("--y", metavar="SETTING=VALUES", help="the rows (optional)")
    sp.add_argument("--z", metavar="SETTING=VALUES", help="one picture per value (optional)")
    sp.add_argument("--at", required=True, metavar="FRAME|FIRST-LAST",
                    help="one frame (40: a picture) or a range of frames (40-64: a video with figures), from 1")
    sp.add_argument("--name", default="", help="the grid's folder under WS/grid/ (default: from the axes and frames)")
    sp.add_argument("--yes", action="store_true", help="paint a grid of more than 64 cells")
    sp.add_argument("--parallel", type=int, default=1, metavar="N",
                    help="paint N cells side by side, each in a process of its own with its share of the CPU "
                         "cores (default 1: one after another, as `img2img --single` paints them)")


def default_config(args: argparse.Namespace) -> None:
    """Without --config, the workspace's own settings.toml (when `vid2vid run` saved one) is the base."""
    from vid2vid.pipeline.runner import SETTINGS_FILE

    saved = Path(args.workspace) / SETTINGS_FILE
    if not getattr(args, "config", None) and saved.is_file():
        args.config = str(saved)


def grid(args: argparse.Namespace, settings: config.Settings, job: Job) -> None:
    """Parse the axes, run the grid, print its closing line."""
    from vid2vid.core.workspace import Workspace
    from vid2vid.pipeline.grid import run_grid
    from vid2vid.pipeline.grid_axes import parse_axis

    if args.z and not args.y:
        raise BadInput("--z needs --y: a grid has columns (--x), then rows (--y), then pages (--z)")
    axes = [parse_axis(spec) for spec in (args.x, args.y, args.z) if spec]
    result = run_grid(Workspace(args.workspace), settings, axes, args.at, name=args.name, yes=args.yes, job=job,
                      parallel=args.parallel)
    print(result.line())


__all__ = ["SECTIONS", "add_arguments", "default_config", "grid"]
