"""The page's ControlNet list as one field: the slots' values <-> JSON <-> `ControlNetSettings`.

The settings are a list of tables (`img2img.controlnet`); the page keeps the list as JSON in one
hidden field registered under `KEY`, which `form.settings_from_form` reads like every other field.
No gradio here; the section's widgets are in `controlnet_section`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.ui import paths

FIELDS = ("model", "control", "scale", "start", "end", "low", "high", "blur", "folder")
KEY = "img2img.controlnet"
SLOTS = 3          # the ControlNet slots the page shows (as many as A1111 shows by default)


def to_json(*values: Any) -> str:
    """Slot widget values (per slot: use, then FIELDS) -> the hidden field's JSON list of used ControlNets."""
    per = 1 + len(FIELDS)
    out = []
    for i in range(0, len(values), per):
        use, *rest = values[i:i + per]
        if use:
            out.append(dict(zip(FIELDS, rest)))
    return json.dumps(out)


def slot_values(settings: config.Settings) -> list[Any]:
    """The slots' widget values (per slot: use, then FIELDS) that show the settings' ControlNets; slots
    past the list are unused and at their defaults. The page shows the first `SLOTS` of a longer list."""
    return table_slots(settings.img2img.controlnet, config.ControlNetSettings, FIELDS, SLOTS)


def table_slots(tables: Sequence[Any], kind: type, fields: Sequence[str], slots: int) -> list[Any]:
    """Per slot: whether it is used, then the `fields` of its table (a default `kind` for an unused slot)."""
    out: list[Any] = []
    for i in range(slots):
        used = i < len(tables)
        table = tables[i] if used else kind()
        out += [used] + [getattr(table, f) for f in fields]
    return out


def list_items(text: Any, what: str, fields: Sequence[str]) -> list[dict]:
    """The tables of a hidden list field of the page (JSON text or a list), each cut to `fields`."""
    try:
        data = text if isinstance(text, list) else json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise BadInput(f"the {what} list of the page is not valid ({exc}); reload the page") from exc
    if not all(isinstance(item, dict) for item in data):
        raise BadInput(f"the {what} list of the page is not valid; reload the page")
    return [{k: v for k, v in item.items() if k in fields} for item in data]


def from_json(text: Any, root: Path, roots: Sequence[Path] = ()) -> list[config.ControlNetSettings]:
    """The hidden field's value -> ControlNet settings; models must lie inside the cache or a model folder
    (`roots`), image folders inside the cache."""
    out = []
    for n, item in enumerate(list_items(text, "ControlNet", FIELDS), 1):
        for k in ("low", "high"):
            if isinstance(item.get(k), float) and item[k] == int(item[k]):
                item[k] = int(item[k])
        for k in ("scale", "start", "end", "blur"):
            if isinstance(item.get(k), int):
                item[k] = float(item[k])
        cn = config.from_dict(config.ControlNetSettings, item, KEY)
        cn.model = paths.model_spec(root, cn.model, f"ControlNet {n} model", roots=roots)
        if cn.control == "folder" and cn.folder.strip():
            cn.folder = str(paths.inside(root, cn.folder, f"ControlNet {n} image folder"))
        out.append(cn)
    return out
