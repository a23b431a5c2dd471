"""Command-line options from the settings' own metadata (config/fields.py): one option per field of
a section, copied back into `Settings`; the ControlNet pair flags and --preset; how errors name a
setting in a command (its flag there)."""
from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from typing import Any

from vid2vid import config
from vid2vid.cli import ipflags
from vid2vid.cli.pairs import add_paired


def _help(key: str, default: Any) -> str:
    """The field's help, its range (unless the help already says it) and its default."""
    m = config.meta(key)
    parts = [m.help]
    span = f"{'' if m.lo is None else f'{m.lo:g}'}..{'' if m.hi is None else f'{m.hi:g}'}"
    if (m.lo is not None or m.hi is not None) and span not in m.help:
        parts.append(f"range {span}")
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
            kw["metavar"] = "PATH" if "file" in m.label.lower() else f.name.upper()
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
        ipflags.add_ip_adapter_options(parser)


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
    ipflags.apply_ip_adapter_options(settings, args)
    return settings


# ---------------------------------------------------------------- ControlNet flags

def add_controlnet_options(parser: argparse.ArgumentParser) -> None:
    """--controlnet MODEL[:SCALE] and --control SOURCE, repeatable and paired in order."""
    sources = ", ".join(c for c in config.CONTROL_SOURCES if c != "folder")
    add_paired(parser, ("--controlnet", "MODEL[:SCALE]",
                        "ControlNet file, diffusers folder or hub id, optionally :SCALE (default 1); repeatable, "
                        "each with its --control; replaces the settings file's ControlNets (start 0, end 1: set "
                        "windows and source parameters in [[img2img.controlnet]])"),
               ("--control", "SOURCE", f"control image of the matching --controlnet: {sources}, or a folder with "
                                       "one image per frame (repeatable)"))


def is_folder_source(source: str) -> bool:
    """Whether a --control SOURCE names a folder of control images (a folder, or written as a path)."""
    from pathlib import Path

    return Path(source).expanduser().is_dir() or "/" in source or source.startswith((".", "~"))


def controlnet_from_flags(model: str, source: str) -> config.ControlNetSettings:
    """One ControlNet from `--controlnet MODEL[:SCALE] --control SOURCE` (a folder path = the folder source)."""
    from vid2vid.diffusion.loading import parse_weighted

    spec, scale = parse_weighted(model, 1.0)
    if source in config.CONTROL_SOURCES and source != "folder":
        return config.ControlNetSettings(model=spec, control=source, scale=scale)
    if is_folder_source(source):
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
    from vid2vid.core.errors import BadInput

    if len(sources) != 1:
        raise BadInput(f"{len(sources)} --control given with --video-model; give one --control SOURCE (the video "
                       "model's control video)")
    source, s = sources[0], settings.img2img
    if source in config.CONTROL_SOURCES and source != "folder":
        s.video_control = source
    elif is_folder_source(source):
        s.video_control, s.video_control_folder = "folder", source
    else:
        s.video_control = source                       # validation names it


def add_preset_option(parser: argparse.ArgumentParser) -> None:
    """--preset NAME: an overlay of settings over the defaults or --config."""
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
