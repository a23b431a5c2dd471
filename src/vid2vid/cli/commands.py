"""The handlers of the `vid2vid` commands: each builds settings from the options and calls one
library function. The stage commands come from the stage table (`vid2vid.config.stagetable`) and run
through `runner.run_stage`, like `run` and the web page; on an existing workspace they start from
the settings it was last worked with (`vid2vid.pipeline.saved`)."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.cli.options import apply_options, flag_namer
from vid2vid.config import stagetable
from vid2vid.core.errors import BadInput


def base_settings(args: argparse.Namespace, workspace: Any = None) -> config.Settings:
    """The workspace's saved settings (stage commands), then --config, then --preset (the options come last)."""
    from vid2vid.pipeline.saved import starting_settings

    settings = starting_settings(workspace, getattr(args, "config", None))
    if getattr(args, "preset", None):
        from vid2vid.config import presets

        presets.apply(settings, args.preset)
    return settings

def cmd_probe(args, parser, job):
    from vid2vid.video.probe import format_probe, probe

    info = probe(args.video)
    print(json.dumps(info.to_dict(), indent=2) if args.json else format_probe(info))


def _workspace_for(args, settings: config.Settings):
    from vid2vid.core.workspace import Workspace

    if getattr(args, "workspace", None):
        return Workspace(args.workspace)
    return Workspace.for_video(args.video, settings.run.cache)


def stage_command(row) -> Callable:
    """The handler of `vid2vid <stage>`: settings from --config and the options, then `run_stage`."""

    def handler(args, parser, job):
        from vid2vid.pipeline import runner

        ws = _workspace_for(args, apply_options(base_settings(args), args, parser))
        settings = apply_options(base_settings(args, ws if ws.root.is_dir() else None), args, parser)
        if row.name == "export" and "export.source" not in vars(args) and settings.export.source == "rife":
            settings.export.source = stagetable.last_frames(ws)
        info = runner.run_stage(row.name, ws, settings, job, video=getattr(args, "video", None))
        if row.name == "extract":
            print(f"{info['frames']} frames in {ws.root / 'frames'}")
            print(f"workspace: {ws.root}")
        elif row.name == "export":
            print(info["output"])
        else:
            for key, value in info.items():
                print(f"{key}: {value}")

    return handler


FOLDER_FORMS = {"propagate": ("vid2vid.cli.tools", "propagate")}   # stage commands that also take folders


def folder_or_stage(row) -> Callable:
    """`vid2vid <stage> -w WS` runs the stage; with --source it runs the stage's folder tool instead."""
    on_ws = stage_command(row)

    def handler(args, parser, job):
        if getattr(args, "source", None) is None:
            if not getattr(args, "workspace", None):
                parser.error(f"{row.name} needs -w WORKSPACE, or --source, --keys and --out")
            return on_ws(args, parser, job)
        return _lazy(*FOLDER_FORMS[row.name])(args, parser, job)

    return handler


def cmd_config(args, parser, job):
    if isinstance(args.check, str):               # `config --check FILE`, as people type it
        if args.config and args.config != args.check:
            raise BadInput(f"--check {args.check} and --config {args.config} name two files; check one at a time")
        args.config = args.check
    settings = base_settings(args)
    if args.dump or not args.check:
        print(config.dumps_toml(settings), end="")
    settings.validate()
    if args.check:
        print(f"{args.config or 'defaults'}: valid")


def cmd_run(args, parser, job):
    from vid2vid.pipeline import multirun, runner

    settings = apply_options(base_settings(args), args, parser)
    videos = multirun.expand(args.video)
    if len(args.video) == 1 and len(videos) == 1 and videos[0] == Path(args.video[0]):
        result = runner.run(args.video[0], settings, workspace=getattr(args, "workspace", None), job=job)
        print(result.summary())
        return
    # several videos (or a folder): one workspace each under --cache, -o names a folder
    if getattr(args, "workspace", None):
        what = next((f"{v} is a folder of videos" for v in args.video if Path(v).is_dir()),
                    "several videos were given")
        raise BadInput(f"-w names one workspace, but {what}; leave out -w: each video gets its own workspace "
                       "under --cache")
    out_dir, settings.export.output = settings.export.output or None, ""
    outcomes = multirun.run_many(videos, settings, out_dir, job)
    print(multirun.summary(outcomes, flag_namer("run")))
    multirun.check_failures(outcomes)


def cmd_live(args, parser, job):
    """`vid2vid live SOURCE`: the fast preset and the cross-frame bank by default (without --config), then
    the options; ends with the figures."""
    from vid2vid import live

    defaults = not getattr(args, "config", None)
    if defaults and not getattr(args, "preset", None):
        args.preset = "fast"
    settings = base_settings(args)
    if defaults:
        settings.img2img.cross_frame = "bank"        # steadiness from the frames painted before
    settings = apply_options(settings, args, parser)
    if settings.live.batch > 1 and "img2img.cross_frame" not in vars(args):
        settings.img2img.cross_frame = "none"        # a stream batch paints frames that cannot read each other
    stats = live.run(settings, args.source, job)
    print(json.dumps(stats.summary()))


def cmd_demo(args, parser, job):
    from vid2vid.cli import demo

    result = demo.run(output=args.output, cache=args.cache, job=job)
    print(result.summary())


def cmd_ui(args, parser, job):
    from vid2vid.ui import auth, launch

    models = (config.load_toml(args.config).run.models if args.config else []) + (args.models or [])
    logins = [auth.parse_login(a) for a in args.auth or []]
    if args.auth_file:
        logins += auth.read_logins(args.auth_file)
    launch.launch(host=args.host, port=args.port, cache=args.cache, allowed_hosts=args.allowed_host or (),
                  models=models, logins=logins)


def _lazy(module: str, func: str = "main") -> Callable:
    """A handler implemented in another module as `func(args, parser, job)`."""

    def handler(args, parser, job):
        import importlib

        return getattr(importlib.import_module(module), func)(args, parser, job)

    return handler
