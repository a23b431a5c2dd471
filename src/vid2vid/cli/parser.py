"""The `vid2vid` argument parser, built per command group: the stage commands from the stage table,
the whole-pipeline and app commands, the folder tools. Usage errors are one line with the choices
and the nearest one ("did you mean dpm++-2m?"), like every other error of the command line."""
from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable
from typing import NoReturn

from vid2vid import __version__, config
from vid2vid.cli import commands, grid
from vid2vid.cli.commands import FOLDER_FORMS, _lazy
from vid2vid.cli.options import add_preset_option, add_settings_options
from vid2vid.config import stagetable


def nearest(word: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the known word nearest to `word`, or '' when none is near."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), with the nearest choice or option."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            hint = nearest(str(value), map(str, action.choices))
            raise argparse.ArgumentError(action, f"'{value}' is not one of: {choices}{hint}")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            sub = getattr(parsed, "subparser", None) or self
            known = [s for a in sub._actions for s in a.option_strings]
            unknown = next((e for e in extra if e.startswith("-")), extra[0])
            sub.error(f"unknown option {unknown}{nearest(unknown.split('=')[0], known)}"
                      if unknown.startswith("-") else f"unexpected argument {unknown!r}")
        return parsed


def _common(sp: argparse.ArgumentParser, workspace_required: bool) -> None:
    sp.add_argument("-w", "--workspace", required=workspace_required, help="workspace folder")
    sp.add_argument("--config", help="settings TOML file (see `vid2vid config --dump`); on an existing workspace "
                                     "its keys go over the workspace's own settings")
    add_settings_options(sp, sp.prog.split()[-1], "run")


def _stage_commands(command: Callable) -> None:
    """One command per row of the stage table, with the options of the sections it reads."""
    for row in stagetable.STAGES:
        folders = row.name in FOLDER_FORMS
        sp = command(row.name, commands.folder_or_stage(row) if folders else commands.stage_command(row), row.help)
        if row.needs_video:
            sp.add_argument("video")
        _common(sp, not row.needs_video and not folders)
        for section in row.sections:
            add_settings_options(sp, row.name, section)
        if "img2img" in row.sections:
            add_preset_option(sp)
    sp = command.sub.choices["propagate"]          # type: ignore[attr-defined]  # also on any tool's folders
    sp.add_argument("--source", help="folder of source frames (instead of -w)")
    sp.add_argument("--keys", help="folder of painted key frames, named like their source frames (with --source)")
    sp.add_argument("--out", help="output folder for every frame (with --source)")


def _pipeline_commands(command: Callable) -> None:
    """probe, run, demo, ui, doctor, config."""
    sp = command("probe", commands.cmd_probe, "show a video's streams, size, fps, duration and frame count")
    sp.add_argument("video")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = command("run", commands.cmd_run, "the whole pipeline: extract -> ... -> export")
    sp.add_argument("video", nargs="+", help="video file(s) or folder(s) of videos; with several, -o names a "
                                             "folder and each video gets its own workspace under --cache")
    sp.add_argument("-w", "--workspace", help="workspace folder")
    sp.add_argument("--config", help="settings TOML file (see `vid2vid config --dump`)")
    for section in config.SECTIONS:
        add_settings_options(sp, "run", section)
    add_preset_option(sp)
    sp = command("live", commands.cmd_live, "restyle a camera, a stream or a file as it plays (the fast preset "
                 "and the cross-frame bank unless --preset, --cross-frame or --config say otherwise)")
    sp.add_argument("source", help="a camera (/dev/videoN; avfoundation:N on macOS, dshow:video=NAME on Windows), "
                                   "a stream URL (rtsp://, rtmp://, srt://, http://) or a video file (played once)")
    sp.add_argument("--config", help="settings TOML file ([img2img], [correct] and [live] are read)")
    for section in ("img2img", "correct", "live"):
        add_settings_options(sp, "live", section)
    add_preset_option(sp)
    sp = command("demo", commands.cmd_demo, "the whole pipeline on a built-in sample with a tiny model")
    sp.add_argument("-o", "--output", help="output video path")
    sp.add_argument("--cache", default="vid2vid-cache", help="cache folder for the demo workspace")
    sp = command("ui", commands.cmd_ui, "start the web UI")
    sp.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    sp.add_argument("--allowed-host", action="append", metavar="HOST[:PORT]",
                    help="another host name the page answers to (behind a proxy, say); repeatable")
    sp.add_argument("--port", type=int, default=7860)
    sp.add_argument("--cache", default="vid2vid-cache")
    sp.add_argument("--models", action="append", metavar="DIR",
                    help="a read-only model folder the page lists models from (an A1111 or ComfyUI folder, or its "
                         "models/); repeatable; also [run] models = [...] in --config")
    sp.add_argument("--config", help="settings TOML file: its [run] models are model folders too")
    sp.add_argument("--auth", action="append", metavar="USER:PASS",
                    help="a login the page asks for (repeatable); a page served beyond the loopback asks every "
                         "client for a login or the token printed at start")
    sp.add_argument("--auth-file", metavar="FILE", help="a file of logins, one USER:PASS a line")
    sp = command("doctor", _lazy("vid2vid.cli.tools", "doctor"), "what this machine has and lacks for vid2vid")
    sp.add_argument("--cache", default="vid2vid-cache", help="cache folder whose free disk space is checked")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = command("config", commands.cmd_config, "print or check settings")
    sp.add_argument("--dump", action="store_true", help="print all settings as TOML (the defaults without --config)")
    sp.add_argument("--check", nargs="?", const=True, default=False, metavar="FILE",
                    help="validate a settings file (--check FILE, or --check --config FILE)")
    sp.add_argument("--config", help="settings TOML file")
    add_preset_option(sp)


def _folder_tools(command: Callable) -> None:
    """correct and fdc-debug: frame delta correction on any folders."""
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


def _measure_tools(command: Callable) -> None:
    """compare, sigmas, size, metrics."""
    sp = command("compare", _lazy("vid2vid.cli.tools", "compare"),
                 "one video with the stages side by side (source, img2img, propagate, flow, final), labelled, "
                 "with audio")
    sp.add_argument("-w", "--workspace", required=True, help="workspace folder")
    sp.add_argument("--panels", help="comma-separated frame folders to show, 'final' = the last stage's frames "
                                     "(default: those of frames,img2img,propagate,flow,final that exist)")
    sp.add_argument("-o", "--output", help="output .mp4 (default: compare.mp4 in the workspace)")
    sp.add_argument("--stats", action="store_true", help="draw each panel's warping error and flicker under it")
    sp.add_argument("--height", type=int, default=0, help="panel height in pixels (default: the final "
                                                           "video's, at most 480)")
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


# make-tiny-model's kinds: (flag, help); without one, a tiny random SD 1.x model.
TINY_KINDS = (
    ("--passthrough", "the demo's pass-through model: its VAE hands the picture through, so a run shows your clip "
                      "(plus the sampler's change) instead of noise"),
    ("--tiny-vae", "write only a tiny TAESD-style VAE (AutoencoderTiny) for --vae: a folder, or with --single-file "
                   "one .safetensors"),
    ("--controlnet", "write only a tiny ControlNet that fits the tiny model (zero convolutions re-initialised)"),
    ("--motion-module", "write only a tiny AnimateDiff motion module that fits the tiny model (output projections "
                        "re-initialised): a MotionAdapter folder, or with --single-file one original-layout "
                        ".safetensors"),
    ("--ip-adapter", "write only a tiny IP-Adapter and its CLIP image encoder (DIR/image_encoder/) that fit the tiny "
                     "model, for --ip-adapter DIR"),
    ("--video-model", "write a tiny Wan VACE video model for --video-model (transformer, Wan VAE, UMT5 text encoder, "
                      "a tokenizer built offline): a diffusers folder, or with --single-file ComfyUI's three "
                      "split files under DIR/models/ (diffusion_models/, text_encoders/, vae/)"),
)


def _model_tools(command: Callable) -> None:
    """make-tiny-model."""
    sp = command("make-tiny-model", _lazy("vid2vid.cli.tools", "make_tiny_model"),
                 "write a tiny SD 1.x model: random weights (paints noise: tests the machinery), or with "
                 "--passthrough the demo's model that shows the picture (try the pipeline on your own clip)")
    sp.add_argument("dir")
    sp.add_argument("--single-file", action="store_true", help="one original-layout .safetensors file")
    kind = sp.add_mutually_exclusive_group()
    for flag, help_ in TINY_KINDS:
        kind.add_argument(flag, action="store_true", help=help_)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="vid2vid", description="The `vid2vid` command: one subcommand per stage, plus `run`, "
                                                  "`demo` and helper tools.")
    p.add_argument("--version", action="version", version=f"vid2vid {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler, subparser=sp)
        return sp

    command.sub = sub  # type: ignore[attr-defined]
    for group in (_pipeline_commands, _stage_commands, _folder_tools, _measure_tools, grid.add_command,
                  _model_tools):
        group(command)
    return p

