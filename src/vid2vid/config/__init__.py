"""Typed settings for every stage, with the seed's defaults, validation and TOML round trip.

Each stage has one dataclass; `Settings` holds them all and is what `vid2vid run`, the web UI
and the library API pass around. Every field carries its own metadata (`setting(...)`: help,
choices, range, command-line flag, the page's label), from which the command line, the TOML
file, validation and the page's widgets are all derived. Choice values are kebab-case tokens;
`LABELS` maps them to the seed's wording for the page. Every check raises `BadInput` naming the
setting as `{section.field}` (see `vid2vid.core.errors`), with the fix.
"""
from __future__ import annotations

import typing
from typing import Any

from vid2vid.config.choices import *  # noqa: F403  (config.SAMPLERS, config.LABELS...: the allowed values)
from vid2vid.config.fields import Choices, Meta, Section, check_field, fields_of, setting  # noqa: F401
from vid2vid.config.img2img import ControlNetSettings, Img2ImgSettings  # noqa: F401
from vid2vid.config.keyframes import KeySpec, parse_keyframes  # noqa: F401
from vid2vid.config.live import LiveSettings  # noqa: F401
from vid2vid.config.sections import (  # noqa: F401
    SECTIONS,
    CorrectSettings,
    DepthSettings,
    ExportSettings,
    ExtractSettings,
    InterpolateSettings,
    PropagateSettings,
    RaySettings,
    RunSettings,
    Settings,
    TagsSettings,
    UpscaleSettings,
)
from vid2vid.config.toml import dumps_toml, from_dict, load_toml, save_toml, to_dict  # noqa: F401
from vid2vid.core import errors
from vid2vid.core.errors import BadInput  # noqa: F401  (config.BadInput: what settings checks raise)


def meta(key: str) -> Meta:
    """The metadata of the setting "section.field"."""
    section, name = key.split(".")
    for f, m in fields_of(SECTIONS[section]):
        if f.name == name:
            return m
    raise KeyError(f"no setting {key}")


def field_type(key: str) -> Any:
    """The annotated type of "section.field" (int, float, str, bool, list[str], ...)."""
    section, name = key.split(".")
    return typing.get_type_hints(SECTIONS[section])[name]


def all_keys() -> list[str]:
    """Every settings key "section.field", sections and fields in order."""
    return [f"{sec}.{f.name}" for sec, cls in SECTIONS.items() for f, _ in fields_of(cls)]


def cli_flags(key: str, command: str = "") -> list[str]:
    """The command-line flags of a setting in `command` ("run" may differ)."""
    m = meta(key)
    name = key.split(".")[1]
    flag = (m.run_flag if command == "run" and m.run_flag else "") or m.flag or "--" + name.replace("_", "-")
    return ["-o", "--output"] if flag == "--output" else [flag]


def cli_name(key: str) -> str:
    """How the command line names a setting in messages: its flag (--sigma-max)."""
    try:
        return cli_flags(key)[-1]
    except KeyError:
        return key


errors.set_default_namer(cli_name)


