"""Settings that survive a reload: a workspace's saved settings back into the page's fields.

Every stage writes the settings it runs with into the workspace when it starts
(`pipeline.saved`); opening a workspace, and loading the page again, fills the fields from that
file (one-off fields such as the debug frame at their defaults). The page can also load a settings TOML and download its
fields as one. A field whose value differs from the saved file is "changed since the last run".
No gradio here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline import saved as pipeline_saved
from vid2vid.ui import form
from vid2vid.ui.controlnet_list import KEY as CONTROLNET_KEY


def load(ws: Workspace) -> config.Settings | None:
    """The workspace's saved settings, one-offs at their defaults; None when it has none (or they no
    longer read as settings)."""
    try:
        found = pipeline_saved.saved_settings(ws)
    except BadInput:
        return None
    return None if found is None else pipeline_saved.remembered(found)


def read_file(path: str | Path) -> config.Settings:
    """A settings TOML the user gave the page (a `BadInput` naming the problem when it is not one)."""
    return config.load_toml(path)


def field_values(settings: config.Settings, keys: Sequence[str]) -> list[Any]:
    """The page's field values that show `settings`, in the order of `keys` (model lists as lists)."""
    values = form.form_values(settings, keys)
    out = []
    for key in keys:
        v = values[key]
        if key in form.LIST_PATH_FIELDS:
            v = [line for line in str(v).splitlines() if line]
        out.append(v)
    return out


def changed(values: Mapping[str, Any], saved: config.Settings, root: Path,
            roots: Sequence[Path] = ()) -> list[str]:
    """The settings keys whose page value differs from the saved settings (a value that does not read
    counts as changed)."""
    out = []
    for key, value in values.items():
        if not config.meta(key).remember:          # one-offs (overwrite, export's folder) are not "settings"
            continue
        section, name = key.split(".")
        try:
            now = form.field_value(key, value, root, roots)
        except BadInput:
            out.append(key)
            continue
        before = getattr(getattr(saved, section), name)
        if key == CONTROLNET_KEY:
            now, before = [config.to_dict(c) for c in now], [config.to_dict(c) for c in before]
        if now != before:
            out.append(key)
    return out


def changed_text(keys: Sequence[str], have_saved: bool) -> str:
    """The line above the tabs that names the fields changed since the last run."""
    if not have_saved:
        return "No saved settings in this workspace yet: they are saved when a stage starts."
    if not keys:
        return "The fields match the settings of the last run in this workspace."
    return "Changed since the last run: " + ", ".join(form.label_of(k) for k in keys)
