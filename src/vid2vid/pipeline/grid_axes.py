"""The axes of a settings grid: `denoise=0.5,0.65,0.75`, `--sigma-max=0.8:1.2:0.2`, `accel=tome:0.5,none`.

An axis names one setting of the stages that paint a grid's cells (img2img and what it reads:
the correction, key frames, depth masks) by its settings key (`img2img.denoise`), its field
name (`denoise`, `sigma-max`) or its command-line flag (`--sigma-max`, `--key-fill`), then
values separated by commas. A number setting also takes ranges `lo:hi:step` (both ends
included). A list setting (LoRAs, accelerations) takes one list per value, its items joined
by `+`, `none` for the empty list. Each value is checked as the option would be: its type, its
choices, its range (the settings' own metadata in `vid2vid.config`); `frames` checks `--at`.
"""
from __future__ import annotations

import difflib
import math
import typing
from dataclasses import dataclass
from typing import Any

from vid2vid import config
from vid2vid.core.errors import BadInput

# The sections a grid cell's stages read (img2img, its correction, key frames, depth masks).
SECTIONS = ("img2img", "correct", "propagate", "depth")
# Settings that are no axis: the debug frame (the grid sets it), the ControlNet tables.
NOT_AXES = ("img2img.single", "img2img.controlnet")
MAX_RANGE_VALUES = 1000
TRUE, FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


@dataclass(frozen=True)
class Axis:
    """One axis: the setting ("section.field") and its values, in order."""

    key: str
    values: tuple[Any, ...]

    @property
    def name(self) -> str:
        """The short name shown in labels (the field's name: denoise, sigma_max)."""
        return self.key.split(".")[1]

    def labels(self) -> list[str]:
        return [value_label(v) for v in self.values]


def ref(key: str) -> str:
    """A message's reference to setting `key` (each interface words it: a flag, a field label)."""
    return "{" + key + "}"


def value_label(value: Any) -> str:
    """How a value is written in labels and in the axis syntax (0.65, linear, tome:0.5+deepcache:3, none)."""
    if isinstance(value, list):
        return "+".join(value) if value else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def axis_keys() -> list[str]:
    """Every setting a grid can sweep, in settings order."""
    return [k for k in config.all_keys() if k.split(".")[0] in SECTIONS and k not in NOT_AXES
            and config.meta(k).item is None]


def _spellings(key: str) -> list[str]:
    """The names a setting answers to: its key, its field name (with _ or -) and its flags."""
    field = key.split(".")[1]
    flags = {*config.cli_flags(key), *config.cli_flags(key, "run")}
    return [key, field, field.replace("_", "-"), *flags, *(f.lstrip("-") for f in flags)]


def resolve(name: str) -> str:
    """The settings key an axis name means; BadInput with the nearest name when none fits."""
    wanted = name.strip()
    keys = axis_keys()
    hits = [k for k in keys if wanted in _spellings(k)]
    if len(hits) > 1:               # a field name several sections share: the flag of `run` decides
        hits = [k for k in hits if wanted.lstrip("-") == config.cli_flags(k, "run")[-1].lstrip("-")] or hits
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise BadInput(f"grid axis '{name}' is ambiguous; name one of: {', '.join(hits)}")
    elsewhere = [k for k in config.all_keys() if k not in keys and wanted in _spellings(k)]
    if elsewhere:
        raise BadInput(f"grid axis '{name}' ({elsewhere[0]}) is not a setting of the painting stages; sweep a "
                       f"setting of {', '.join(SECTIONS)}")
    names = {s: k for k in keys for s in _spellings(k)}
    near = difflib.get_close_matches(wanted, list(names), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]} ({names[near[0]]})?" if near else \
        f"; a grid sweeps the settings of {', '.join(SECTIONS)}"
    raise BadInput(f"grid axis '{name}' is not a known setting{hint}")


def _number(text: str, kind: type, key: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise BadInput(f"{ref(key)} '{text}' is not {'a whole number' if kind is int else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{ref(key)} {text} is not a finite number")
    return value


def _range(text: str, kind: type, key: str) -> list[Any]:
    """`lo:hi:step`, both ends included (a float step is taken to 10 decimals, so 0.4:0.8:0.1 ends at 0.8)."""
    lo, hi, step = (_number(t, kind, key) for t in text.split(":"))
    if step <= 0 or hi < lo:
        raise BadInput(f"{ref(key)} range {text} is empty; write lo:hi:step with lo <= hi and a step above 0")
    count = int(math.floor((hi - lo) / step + 1e-9)) + 1
    if count > MAX_RANGE_VALUES:
        raise BadInput(f"{ref(key)} range {text} has {count} values; use a larger step")
    return [kind(round(lo + i * step, 10)) for i in range(count)]


def parse_value(key: str, text: str) -> list[Any]:
    """The value(s) one comma-separated item of an axis stands for, as the setting's type, checked."""
    section, field = key.split(".")
    hint, m = config.field_type(key), config.meta(key)
    text = text.strip()
    if hint in (int, float):
        values = _range(text, hint, key) if text.count(":") == 2 else [_number(text, hint, key)]
    elif hint is bool:
        if text.lower() not in TRUE + FALSE:
            raise BadInput(f"{ref(key)} '{text}' is not on or off; write true or false")
        values = [text.lower() in TRUE]
    elif typing.get_origin(hint) is list:
        values = [[] if text.lower() in ("none", "") else [p.strip() for p in text.split("+") if p.strip()]]
    else:
        values = [m.choices.canonical(text) if isinstance(m.choices, config.Choices) else text]
    for v in values:
        if not isinstance(v, list):
            config.check_field(section, field, v, m)
    return values


def parse_axis(spec: str) -> Axis:
    """`name=v1,v2,...` as an Axis (values checked; a value given twice is refused)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise BadInput(f"grid axis '{spec}' has no values; write SETTING=VALUE,VALUE,... (e.g. denoise=0.5,0.75)")
    key = resolve(name)
    values: list[Any] = []
    for item in rest.split(","):
        values += parse_value(key, item)
    labels = [value_label(v) for v in values]
    twice = next((lab for i, lab in enumerate(labels) if lab in labels[:i]), None)
    if twice is not None:
        raise BadInput(f"grid axis {name.strip()} gives the value {twice} twice; give each value once")
    return Axis(key, tuple(values))


def check_axes(axes: list[Axis]) -> None:
    """Two axes never sweep the same setting."""
    keys = [a.key for a in axes]
    twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if twice is not None:
        raise BadInput(f"two grid axes sweep {ref(twice)}; give each setting one axis")


def parse_frames(at: str, n_frames: int) -> tuple[int, int]:
    """`40` (one frame) or `40-64` (a range) as (first, last), 1-based, inside the workspace's frames."""
    text = at.strip()
    first_s, dash, last_s = text.partition("-")
    try:
        first, last = int(first_s), int(last_s) if dash else int(first_s)
    except ValueError:
        raise BadInput(f"frames '{at}' are not a frame number or a range; write e.g. 40 or 40-64") from None
    if dash and last <= first:
        raise BadInput(f"frames '{at}': a range needs its last frame after its first, e.g. 40-64")
    if first < 1 or last > n_frames:
        raise BadInput(f"frame{'s' if dash else ''} {text} {'are' if dash else 'is'} outside the video: the "
                       f"workspace has frames 1 to {n_frames}")
    return first, last
