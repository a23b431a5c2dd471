"""`vid2vid grid -w WS --x denoise=0.5,0.75 [--y ...] [--z ...] --at 40|40-64`: a settings sweep as a
labelled picture (one frame) or video (a range); thin over `vid2vid.pipeline.grid.run_grid`.

The settings start as a stage command's do (the workspace's saved settings, then --config, then
--preset); the painting options given (`--model`, `--prompt`, ...) go over them.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from vid2vid.cli.commands import base_settings
from vid2vid.cli.options import add_preset_option, add_settings_options, apply_options
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job

HELP = "a settings sweep: an X/Y/Z grid of one painted frame (a picture) or a short range (a video with figures)"
AXIS_HELP = ("SETTING=VALUES: a setting of the painting stages by name or flag (denoise, --sigma-max, "
             "img2img.cfg) and comma-separated values; numbers also as lo:hi:step, lists as a+b or none")
# The sections whose options the command takes (what img2img's command takes; depth's model is an axis only).
OPTION_SECTIONS = ("img2img", "correct", "propagate")


def add_command(command: Callable) -> None:
    """The `grid` subcommand (`command(name, handler, help)` makes a subparser, as in cli/parser.py)."""
    sp = command("grid", cmd_grid, HELP)
    sp.add_argument("-w", "--workspace", required=True, help="workspace folder (made by extract)")
    sp.add_argument("--config", help="settings TOML file; its keys go over the workspace's own settings")
    add_settings_options(sp, "grid", "run")
    for section in OPTION_SECTIONS:
        add_settings_options(sp, "grid", section, skip=("single",))
    add_preset_option(sp)
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


def cmd_grid(args: argparse.Namespace, parser: argparse.ArgumentParser, job: Job) -> None:
    """Parse the axes, run the grid, print its closing line."""
    from vid2vid.core.workspace import Workspace
    from vid2vid.pipeline.grid import run_grid
    from vid2vid.pipeline.grid_axes import parse_axis
    from vid2vid.pipeline.grid_plan import MAX_CELLS, cell_count

    if args.z and not args.y:
        raise BadInput("--z needs --y: a grid has columns (--x), then rows (--y), then pages (--z)")
    if args.parallel < 1:
        raise BadInput(f"--parallel {args.parallel} is not a number of cells; give 1 or more")
    ws = Workspace(args.workspace)
    settings = apply_options(base_settings(args, ws if ws.root.is_dir() else None), args, parser)
    axes = [parse_axis(spec) for spec in (args.x, args.y, args.z) if spec]
    count = cell_count(axes)
    if count > MAX_CELLS and not args.yes:
        raise BadInput(f"this grid has {count} cells, more than {MAX_CELLS}; confirm it (--yes) or sweep fewer values")
    result = run_grid(ws, settings, axes, args.at, name=args.name, yes=args.yes, job=job, parallel=args.parallel)
    print(result.line())
