"""The `vid2vid` command: one subcommand per stage, plus `run`, `demo` and helper tools.

Thin over the library: each handler builds settings from the options and calls one library
function. The stage commands come from the stage table (`vid2vid.config.stagetable`) and run through
`runner.run_stage`, like `run` and the web page; their options come from the settings' own
metadata (config.py), so the command line, the TOML file and the web page always agree. Errors
name settings by their flag in the command at hand. Exit codes: 0 done, 1 failed while
working, 2 bad input or usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vid2vid import __version__, config
from vid2vid.config import stagetable
from vid2vid.core.errors import BadInput, Interrupted, Vid2VidError
from vid2vid.core.progress import ConsoleProgress, Job, stop_signals

# ---------------------------------------------------------------- options from the settings' metadata

def _help(key: str, default: Any) -> str:
    m = config.meta(key)
    parts = [m.help]
    if m.lo is not None or m.hi is not None:
        parts.append(f"range {'' if m.lo is None else f'{m.lo:g}'}..{'' if m.hi is None else f'{m.hi:g}'}")
    if not isinstance(default, (list, bool)) and default != "":
        parts.append(f"default {default}")
    return parts[0] + (f" ({'; '.join(parts[1:])})" if len(parts) > 1 else "")


def add_settings_options(parser: argparse.ArgumentParser, command: str, section: str,
                         skip: tuple[str, ...] = ()) -> None:
    """Add one option per field of a settings section (from the fields' metadata); an option not
    given keeps the settings' value. A flag two sections share (--audio in run) sets both."""
    cls = config.SECTIONS[section]
    hints = typing.get_type_hints(cls)
    defaults = cls()
    seen = {a for action in parser._actions for a in action.option_strings}
    for f, m in config.fields_of(cls):
        if f.name in skip or not m.cli or m.item is not None or (m.run_only and command != "run"):
            continue
        key = f"{section}.{f.name}"
        flags = config.cli_flags(key, command)
        dest = key
        hint = hints[f.name]
        if any(fl in seen for fl in flags):        # shared flag (e.g. --audio in run): extend its targets
            for action in parser._actions:
                if set(action.option_strings) & set(flags):
                    action.default_targets.append(dest)  # type: ignore[attr-defined]
            continue
        kw: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS,
                              "help": _help(key, getattr(defaults, f.name))}
        if hint is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is list:
            kw["action"] = "append"
            kw["metavar"] = "PATH"
        else:
            kw["type"] = hint if hint in (int, float) else str
            if m.choices is not None:
                kw["choices"] = m.choices          # argparse lists them: --sampler {euler,euler-a,...}
            else:
                kw["metavar"] = f.name.upper()
        action = parser.add_argument(*flags, **kw)
        action.default_targets = [dest]  # type: ignore[attr-defined]
        seen.update(flags)
    if section == "img2img" and "--controlnet" not in seen:
        add_controlnet_options(parser)


def apply_options(settings: config.Settings, args: argparse.Namespace,
                  parser: argparse.ArgumentParser) -> config.Settings:
    """Copy every option given on the command line into `settings` (all its targets)."""
    for action in parser._actions:
        targets = getattr(action, "default_targets", None)
        if not targets or action.dest not in vars(args):
            continue
        value = getattr(args, action.dest)
        for dest in targets:
            section, name = dest.split(".")
            setattr(getattr(settings, section), name, value)
    apply_controlnet_options(settings, args)
    return settings


# ---------------------------------------------------------------- ControlNet flags (issue 14)

def add_controlnet_options(parser: argparse.ArgumentParser) -> None:
    """--controlnet MODEL[:SCALE] and --control SOURCE, repeatable and paired in order."""
    sources = ", ".join(c for c in config.CONTROL_SOURCES if c != "folder")
    parser.add_argument("--controlnet", action="append", dest="cli.controlnet", default=argparse.SUPPRESS,
                        metavar="MODEL[:SCALE]",
                        help="ControlNet file, diffusers folder or hub id, optionally :SCALE (default 1); "
                             "repeatable, each with its --control; replaces the settings file's ControlNets "
                             "(start 0, end 1: set windows and source parameters in [[img2img.controlnet]])")
    parser.add_argument("--control", action="append", dest="cli.control", default=argparse.SUPPRESS,
                        metavar="SOURCE", help=f"control image of the matching --controlnet: {sources}, or a "
                                               "folder with one image per frame (repeatable)")


def controlnet_from_flags(model: str, source: str) -> config.ControlNetSettings:
    """One ControlNet from `--controlnet MODEL[:SCALE] --control SOURCE` (a folder path = the folder source)."""
    from pathlib import Path

    from vid2vid.diffusion.loading import parse_weighted

    spec, scale = parse_weighted(model, 1.0)
    if source in config.CONTROL_SOURCES and source != "folder":
        return config.ControlNetSettings(model=spec, control=source, scale=scale)
    if Path(source).expanduser().is_dir() or "/" in source or source.startswith((".", "~")):
        return config.ControlNetSettings(model=spec, control="folder", folder=source, scale=scale)
    return config.ControlNetSettings(model=spec, control=source, scale=scale)   # validation names it


def apply_controlnet_options(settings: config.Settings, args: argparse.Namespace) -> None:
    """Given --controlnet/--control pairs replace img2img's ControlNet list."""
    models, sources = vars(args).get("cli.controlnet"), vars(args).get("cli.control")
    if models is None and sources is None:
        return
    if settings.img2img.video_model.strip() and models is None:
        video_control_from_flag(settings, sources or [])
        return
    models, sources = models or [], sources or []
    if len(models) != len(sources):
        from vid2vid.core.errors import BadInput

        raise BadInput(f"{len(models)} --controlnet and {len(sources)} --control given; give each --controlnet "
                       "its --control SOURCE, in the same order")
    settings.img2img.controlnet = [controlnet_from_flags(m, src) for m, src in zip(models, sources)]


def video_control_from_flag(settings: config.Settings, sources: list[str]) -> None:
    """`--control SOURCE` given once with --video-model (and no --controlnet): the video model's control."""
    from pathlib import Path

    from vid2vid.core.errors import BadInput

    if len(sources) != 1:
        raise BadInput(f"{len(sources)} --control given with --video-model; give one --control SOURCE (the video "
                       "model's control video)")
    source, s = sources[0], settings.img2img
    if source in config.CONTROL_SOURCES and source != "folder":
        s.video_control = source
    elif Path(source).expanduser().is_dir() or "/" in source or source.startswith((".", "~")):
        s.video_control, s.video_control_folder = "folder", source
    else:
        s.video_control = source                       # validation names it


def _base_settings(args: argparse.Namespace) -> config.Settings:
    path = getattr(args, "config", None)
    settings = config.load_toml(path) if path else config.Settings()
    if getattr(args, "preset", None):            # issue 17: file, then preset, then the options given
        from vid2vid.config import presets

        presets.apply(settings, args.preset)
    return settings


def add_preset_option(parser: argparse.ArgumentParser) -> None:
    """--preset NAME (issue 17): an overlay of settings over the defaults or --config."""
    from vid2vid.config import presets

    parser.add_argument("--preset", choices=tuple(presets.PRESETS),
                        help="settings overlay applied after --config and before the options given; fast = "
                             "sampler lcm, 4 steps, CFG 1 (for few-step models; add --vae TAESD for speed)")


def flag_namer(command: str) -> Callable[[str], str]:
    """How errors name a setting in `command`: its flag there (--frame-format in run, --format in extract)."""

    def name(key: str) -> str:
        try:
            return config.cli_flags(key, command)[-1]
        except KeyError:
            return key

    return name


# ---------------------------------------------------------------- handlers

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

        settings = apply_options(_base_settings(args), args, parser)
        ws = _workspace_for(args, settings)
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
    settings = _base_settings(args)
    if args.dump or not args.check:
        print(config.dumps_toml(settings), end="")
    settings.validate()
    if args.check:
        print(f"{args.config or 'defaults'}: valid")


def cmd_run(args, parser, job):
    from vid2vid.pipeline import multirun, runner

    settings = apply_options(_base_settings(args), args, parser)
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


def cmd_demo(args, parser, job):
    from vid2vid.cli import demo

    result = demo.run(output=args.output, cache=args.cache, job=job)
    print(result.summary())


def cmd_ui(args, parser, job):
    from vid2vid.ui import app

    app.launch(host=args.host, port=args.port, cache=args.cache, allowed_hosts=args.allowed_host or ())


def _lazy(module: str, func: str = "main") -> Callable:
    """A handler implemented in another module as `func(args, parser, job)`."""

    def handler(args, parser, job):
        import importlib

        return getattr(importlib.import_module(module), func)(args, parser, job)

    return handler


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vid2vid", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"vid2vid {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler, subparser=sp)
        return sp

    def common(sp, workspace_required: bool):
        sp.add_argument("-w", "--workspace", required=workspace_required, help="workspace folder")
        sp.add_argument("--config", help="settings TOML file (see `vid2vid config --dump`)")
        add_settings_options(sp, sp.prog.split()[-1], "run")

    sp = command("probe", cmd_probe, "show a video's streams, size, fps, duration and frame count")
    sp.add_argument("video")
    sp.add_argument("--json", action="store_true", help="print JSON")

    for row in stagetable.STAGES:
        folders = row.name in FOLDER_FORMS
        sp = command(row.name, folder_or_stage(row) if folders else stage_command(row), row.help)
        if row.needs_video:
            sp.add_argument("video")
        common(sp, not row.needs_video and not folders)
        for section in row.sections:
            add_settings_options(sp, row.name, section)
        if "img2img" in row.sections:          # issue 17
            add_preset_option(sp)

    sp = sub.choices["propagate"]         # also on folders made by any tool, like `correct`
    sp.add_argument("--source", help="folder of source frames (instead of -w)")
    sp.add_argument("--keys", help="folder of painted key frames, named like their source frames (with --source)")
    sp.add_argument("--out", help="output folder for every frame (with --source)")
    # (with --source, --resize says how the keys were fitted from the source frames, --overwrite
    #  replaces outputs made from other inputs)

    sp = command("correct", _lazy("vid2vid.cli.tools", "correct"),
                 "apply frame delta correction to any folder of generated frames")
    sp.add_argument("--source", required=True, help="folder of source frames")
    sp.add_argument("--generated", required=True, help="folder of generated frames")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--depth", help="folder of depth masks (for depth masks)")
    sp.add_argument("--save-masks", help="folder to save the masks used")
    sp.add_argument("--resize", choices=config.RESIZE_MODES, default="just",
                    help="how the generated frames were fitted from the source frames (img2img's --resize): "
                         "the source motion is fitted the same way")
    sp.add_argument("--overwrite", action="store_true", help="replace outputs made with other settings")
    sp.add_argument("--config", help="settings TOML file")
    add_settings_options(sp, "correct", "correct", skip=("spatial_mask",))

    sp = command("fdc-debug", _lazy("vid2vid.cli.tools", "fdc_debug"),
                 "PNG sheets to tune frame delta correction: mask grids over low-cut, one frame's correction")
    sp.add_argument("-w", "--workspace", help="workspace: defaults for --source, --generated and --depth")
    sp.add_argument("--source", help="folder of source frames (default WS/frames)")
    sp.add_argument("--generated", help="folder of generated frames (default WS/img2img)")
    sp.add_argument("--prev", help="folder holding the previous output frame (default: the generated folder)")
    sp.add_argument("--depth", help="folder of depth maps (default WS/depthmask)")
    sp.add_argument("--frame", type=int, required=True, help="frame number from 1 (2 or later for fdc and motion)")
    sp.add_argument("--sheet", choices=("fdc", "motion", "depth"), default="fdc",
                    help="fdc: one frame's correction; motion / depth: mask grid over low-cut")
    sp.add_argument("--tile-width", type=int, default=0, help="tile width in pixels (0: automatic)")
    sp.add_argument("-o", "--output", required=True, help="PNG file to write")
    sp.add_argument("--config", help="settings TOML file")
    add_settings_options(sp, "fdc-debug", "correct", skip=("method", "spatial_mask"))

    sp = command("run", cmd_run, "the whole pipeline: extract -> ... -> export")
    sp.add_argument("video", nargs="+", help="video file(s) or folder(s) of videos; with several, -o names a "
                                             "folder and each video gets its own workspace under --cache")
    sp.add_argument("-w", "--workspace", help="workspace folder")
    sp.add_argument("--config", help="settings TOML file (see `vid2vid config --dump`)")
    for section in config.SECTIONS:
        add_settings_options(sp, "run", section)
    add_preset_option(sp)

    sp = command("compare", _lazy("vid2vid.cli.tools", "compare"),
                 "one video with the stages side by side (source, img2img, flow, final), labelled, with audio")
    sp.add_argument("-w", "--workspace", required=True, help="workspace folder")
    sp.add_argument("--panels", help="comma-separated frame folders to show, 'final' = the last stage's frames "
                                     f"(default: those of {','.join(('frames', 'img2img', 'flow', 'final'))} "
                                     "that exist)")
    sp.add_argument("-o", "--output", help="output .mp4 (default: compare.mp4 in the workspace)")
    sp.add_argument("--stats", action="store_true", help="draw each panel's warping error and flicker under it")
    sp.add_argument("--height", type=int, default=0, help="panel height in pixels (default: the final "
                                                           "video's, at most 480)")

    sp = command("demo", cmd_demo, "the whole pipeline on a built-in sample with a tiny model")
    sp.add_argument("-o", "--output", help="output video path")
    sp.add_argument("--cache", default="vid2vid-cache", help="cache folder for the demo workspace")

    sp = command("ui", cmd_ui, "start the web UI")
    sp.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    sp.add_argument("--allowed-host", action="append", metavar="HOST[:PORT]",
                    help="another host name the page answers to (behind a proxy, say); repeatable")
    sp.add_argument("--port", type=int, default=7860)
    sp.add_argument("--cache", default="vid2vid-cache")

    sp = command("sigmas", _lazy("vid2vid.cli.tools", "sigmas"), "plot every sigma schedule with the truncation point")
    sp.add_argument("--steps", type=int, default=20)
    sp.add_argument("--denoise", type=float, default=0.75)
    sp.add_argument("--sigma-min", type=float, default=0.1)
    sp.add_argument("--sigma-max", type=float, default=1.2)
    sp.add_argument("-o", "--output", required=True, help="PNG file to write")

    sp = command("size", _lazy("vid2vid.cli.tools", "size"), "recommend canvas sizes near an aspect ratio")
    sp.add_argument("width", type=int)
    sp.add_argument("height", type=int)

    sp = command("metrics", _lazy("vid2vid.cli.tools", "metrics"), "temporal consistency and fidelity of an output")
    sp.add_argument("--source", required=True, help="source video or frame folder")
    sp.add_argument("output", help="output video or frame folder")
    sp.add_argument("--ref", help="reference frame folder for fidelity (e.g. uncorrected frames)")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--plot", help="write a per-frame plot (PNG)")
    sp.add_argument("--metrics-size", type=int, default=0, metavar="N",
                    help="measure at this longer side in pixels (0 = the output's size), for long or large videos")
    sp.add_argument("--metrics-every", type=int, default=1, metavar="N",
                    help="measure every N-th frame pair only (1 = all); the report says what was measured")

    sp = command("make-tiny-model", _lazy("vid2vid.cli.tools", "make_tiny_model"), "write a tiny random SD 1.x model")
    sp.add_argument("dir")
    sp.add_argument("--single-file", action="store_true", help="one original-layout .safetensors file")
    sp.add_argument("--tiny-vae", action="store_true",
                    help="write only a tiny TAESD-style VAE (AutoencoderTiny) for --vae: a folder, or with "
                         "--single-file one .safetensors")
    sp.add_argument("--controlnet", action="store_true",
                    help="write only a tiny ControlNet that fits the tiny model (zero convolutions re-initialised)")
    sp.add_argument("--motion-module", action="store_true",
                    help="write only a tiny AnimateDiff motion module that fits the tiny model (output projections "
                         "re-initialised): a MotionAdapter folder, or with --single-file one original-layout "
                         ".safetensors")
    sp.add_argument("--video-model", action="store_true",
                    help="write a tiny Wan VACE video model for --video-model (transformer, Wan VAE, UMT5 text "
                         "encoder, a tokenizer built offline): a diffusers folder")

    sp = command("doctor", _lazy("vid2vid.cli.tools", "doctor"), "what this machine has and lacks for vid2vid")
    sp.add_argument("--cache", default="vid2vid-cache", help="cache folder whose free disk space is checked")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = command("config", cmd_config, "print or check settings")
    sp.add_argument("--dump", action="store_true", help="print all settings as TOML (the defaults without --config)")
    sp.add_argument("--check", action="store_true", help="validate a settings file")
    sp.add_argument("--config", help="settings TOML file")
    add_preset_option(sp)
    return p


# ---------------------------------------------------------------- entry point

def _install_signal_handlers(job: Job) -> None:
    """First Ctrl+C / Ctrl+Break / SIGTERM: stop after the current frame. Second: stop now."""

    def handler(signum, frame):
        if job.cancel.is_set():
            raise KeyboardInterrupt
        job.cancel.set()
        print("\nstopping after the current frame (press Ctrl+C again to stop now)", file=sys.stderr)

    for sig in stop_signals():
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("VID2VID_DEBUG") == "1"
    job = Job(on_progress=ConsoleProgress(), log=lambda text: print(text, file=sys.stderr))
    _install_signal_handlers(job)
    try:
        args.handler(args, args.subparser, job)
        return 0
    except BrokenPipeError:          # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Interrupted, KeyboardInterrupt):
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130
    except Vid2VidError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc.render(flag_namer(args.command))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
        if debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details and report it)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
