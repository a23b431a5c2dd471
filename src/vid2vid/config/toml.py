"""Settings as plain data and TOML: the round trip, unknown keys and wrong types refused."""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, cast

from vid2vid.config.fields import fields_of
from vid2vid.config.sections import Settings
from vid2vid.core.errors import BadInput


def to_dict(obj: Any) -> dict:
    """A settings dataclass as plain data (for JSON, TOML and manifests)."""
    return dataclasses.asdict(obj)


def _coerce(table: str, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    elif origin in (typing.Union, types.UnionType):
        return value
    raise BadInput(f"setting [{table}] {key} = {value!r} has the wrong type; "
                   f"expected {getattr(hint, '__name__', hint)}")


def _nearest(names: set[str]):
    def word(key: str) -> str:
        close = difflib.get_close_matches(key, names, n=1)
        return f"{key} (did you mean {close[0]}?)" if close else key

    return word


def from_dict(cls: type, data: dict, table: str = "") -> Any:
    """Build a settings dataclass from plain data; unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadInput(f"unknown setting(s) in [{table or cls.__name__}]: {', '.join(map(_nearest(names), unknown))}; "
                       f"known: {', '.join(sorted(names))}")
    items = {f.name: m.item for f, m in fields_of(cls) if m.item is not None}
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise BadInput(f"setting [{key}] must be a table")
            kwargs[key] = from_dict(cast(type, hint), value, key)
        elif key in items:                  # a list of tables: [[section.key]]
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise BadInput(f"setting [{table}] {key} must be a list of tables ([[{table}.{key}]])")
            kwargs[key] = [from_dict(items[key], v, f"{table}.{key}") for v in value]
        else:
            kwargs[key] = _coerce(table, key, value, hint)
    return cls(**kwargs)


def dumps_toml(settings: Settings) -> str:
    """All settings as TOML text (what `vid2vid config --dump` prints)."""
    import tomli_w

    return tomli_w.dumps(to_dict(settings))


def _overlay(base: dict, data: dict) -> dict:
    """`base` with the values of `data` over it, table by table (a list of tables is replaced whole)."""
    out = dict(base)
    for key, value in data.items():
        out[key] = _overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_toml(path: str | Path, base: Settings | None = None) -> Settings:
    """Read a settings file; missing keys keep their defaults (or their values in `base`)."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"settings file {p} does not exist; write one with `vid2vid config --dump > {p.name}`")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"settings file {p} is not valid TOML ({exc}); fix it or dump fresh defaults "
                       "with `vid2vid config --dump`") from exc
    return from_dict(Settings, _overlay(to_dict(base), data) if base is not None else data, "settings")


def save_toml(settings: Settings, path: str | Path) -> None:
    from vid2vid.core.workspace import atomic_write_text

    atomic_write_text(Path(path), dumps_toml(settings))
