"""The settings a workspace was last worked with, in its `settings.toml`.

`runner.run_stage` writes the settings a stage runs with there when it starts (every interface runs
stages through it); a stage command on an existing workspace starts from that file, then its
`--config`, then its flags, and the page restores its fields from it:

    from vid2vid.pipeline.saved import saved_settings
    s = saved_settings("vid2vid-cache/clip")     # Settings, or None for a workspace without the file

Fields declared with `remember=False` (a debug frame, the overwrite switch, export's folder) are one-offs:
`starting_settings` gives them their defaults instead of their saved values.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.config import Settings
from vid2vid.core.workspace import Workspace

SETTINGS_FILE = "settings.toml"


def settings_path(workspace: Any) -> Path:
    """The settings file of `workspace` (a Workspace or its folder)."""
    return (workspace.root if isinstance(workspace, Workspace) else Path(workspace)) / SETTINGS_FILE


def saved_settings(workspace: Any) -> Settings | None:
    """The settings `workspace` was last worked with, as saved; None when it has no settings file.
    A damaged or unknown file raises BadInput naming the file."""
    path = settings_path(workspace)
    return config.load_toml(path) if path.is_file() else None


def save_settings(workspace: Any, settings: Settings) -> None:
    config.save_toml(settings, settings_path(workspace))


def read_file(workspace: Any) -> bytes | None:
    """The settings file as it is (None: there is none), to put back with `put_back`."""
    try:
        return settings_path(workspace).read_bytes()
    except FileNotFoundError:
        return None


def put_back(workspace: Any, content: bytes | None) -> None:
    """Restore the settings file read by `read_file` (best effort: a read-only disk keeps what it has)."""
    from vid2vid.core.errors import Vid2VidError
    from vid2vid.core.workspace import atomic_write_bytes

    path = settings_path(workspace)
    try:
        if content is None:
            path.unlink(missing_ok=True)
        elif not path.is_file() or path.read_bytes() != content:
            atomic_write_bytes(path, content)
    except (OSError, Vid2VidError):
        pass


def parse(content: bytes | None) -> Settings | None:
    """Settings from the bytes of a settings file (None for none, or for a file that does not parse)."""
    import tomllib

    if content is None:
        return None
    try:
        return config.from_dict(Settings, tomllib.loads(content.decode("utf-8")), "settings")
    except (ValueError, config.BadInput):
        return None


def _one_offs() -> list[tuple[str, str]]:
    return [tuple(key.split(".")) for key in config.all_keys() if not config.meta(key).remember]  # type: ignore[misc]


def remembered(saved: Settings) -> Settings:
    """`saved` with its one-off fields (`remember=False`) back at their defaults."""
    out = dataclasses.replace(saved)
    for section, name in _one_offs():
        fresh = config.SECTIONS[section]()
        setattr(out, section, dataclasses.replace(getattr(out, section), **{name: getattr(fresh, name)}))
    return out


def starting_settings(workspace: Any = None, config_file: str | Path | None = None) -> Settings:
    """Where a stage command starts: the workspace's saved settings (one-offs at their defaults, the
    defaults when it has none), then the keys the `config_file` sets."""
    saved = saved_settings(workspace) if workspace is not None else None
    base = remembered(saved) if saved is not None else Settings()
    return config.load_toml(config_file, base) if config_file else base


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value if value and " " not in value and not value.startswith("-") else repr(value)
    if isinstance(value, list):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    return str(value)


def changes(old: Settings, new: Settings, sections: tuple[str, ...]) -> list[str]:
    """The remembered settings of `sections` that differ, as "{section.field} OLD -> NEW" (in field order)."""
    out = []
    for section in sections:
        a, b = getattr(old, section), getattr(new, section)
        for f, m in config.fields_of(a):
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if m.remember and va != vb:
                same = isinstance(va, list) and len(va) == len(vb)
                shown = "changed" if same else f"{_shown(va)} -> {_shown(vb)}"
                out.append(f"{{{section}.{f.name}}} {shown}")
    return out
