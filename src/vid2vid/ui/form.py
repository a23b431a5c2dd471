"""Widget values -> `Settings`: the one place where the page's form becomes library settings.

The page names each settings widget by its settings key ("img2img.steps"); `settings_from_form`
turns the values gradio hands over (numbers arrive as floats, text may carry spaces) into the
typed dataclass fields, applies the path rules of `paths` to model fields, and validates. Choice
widgets show the seed's labels (`config.LABELS`) and hand back our tokens.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.ui import ip_adapter_section, modelroots, paths
from vid2vid.ui.controlnet_list import from_json

# Widget labels (what the page shows) per settings key, from the settings' metadata; also used in
# error messages (`error_text`).
LABELS: dict[str, str] = {key: config.meta(key).label for key in config.all_keys() if config.meta(key).label}

# Correction methods: the seed's statistics, or the flow-guided pass (pipeline step `flow`).
METHOD_LABELS = {"stats": "statistics (the seed's masks + statistics per frame)",
                 "flow": "flow-guided (whole sequence)"}

# Model fields: one model each (a path inside the cache or a model folder, a registered name, a hub id);
# every such field goes through the same rule (`paths.model_spec`), the VAE and the model settings
# added later (motion module, video model) included.
LIST_PATH_FIELDS = ("img2img.loras", "img2img.embeddings")
MODEL_FIELDS = tuple(dict.fromkeys(
    ["img2img.model", "img2img.vae", "depth.model", "tags.model", "upscale.model", "interpolate.model"]
    + [k for k in modelroots.FIELD_KINDS if k in config.all_keys() and k not in LIST_PATH_FIELDS]))


def label(token: str) -> str:
    """The seed's wording for a choice token."""
    return METHOD_LABELS.get(token) or config.LABELS.get(token, token)


def choices(tokens: Iterable[str]) -> list[tuple[str, str]]:
    """(label, token) pairs for a gradio Dropdown/Radio: the page shows labels, handlers get tokens."""
    return [(label(t), t) for t in tokens]


def field_type(key: str) -> Any:
    return config.field_type(key)


def default(key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config.Settings(), section), name)


def coerce(key: str, value: Any) -> Any:
    """One widget value as the settings field's type; a value that does not fit is `BadInput`."""
    hint = field_type(key)
    what = LABELS.get(key, key)
    if hint is bool:
        return bool(value)
    if hint in (int, float):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise BadInput(f"{what} is empty; give a number")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{what} '{value}' is not a number") from exc
        if not math.isfinite(number):
            raise BadInput(f"{what} {value} is not a finite number")
        if hint is int:
            if number != int(number):
                raise BadInput(f"{what} {value} must be a whole number")
            return int(number)
        return number
    if typing.get_origin(hint) is list:
        if isinstance(value, str):
            return [line.strip() for line in value.splitlines() if line.strip()]
        return [str(v).strip() for v in (value or []) if str(v).strip()]
    if hint is str:
        return "" if value is None else str(value).strip()
    raise TypeError(f"setting {key} has a type the form does not handle: {hint}")


def _model_names(key: str) -> tuple[str, ...]:
    """Registered names for a model field (imported lazily: some registries import heavy modules)."""
    if key == "depth.model":
        from vid2vid.models.depth.registry import DEPTH_MODELS
        return tuple(DEPTH_MODELS)
    if key == "tags.model":
        from vid2vid.models.taggers.registry import TAGGERS
        return tuple(TAGGERS)
    if key == "upscale.model":
        from vid2vid.models.upscalers import available_upscalers
        return tuple(available_upscalers())
    if key == "interpolate.model":
        from vid2vid.models.interpolators import available_interpolators
        return tuple(available_interpolators())
    return ()


def settings_from_form(values: Mapping[str, Any], cache: str | Path, base: config.Settings | None = None,
                       sections: Iterable[str] | None = None, roots: Sequence[Path] = ()) -> config.Settings:
    """Settings from {settings key: widget value}; model paths must lie inside the cache folder or a
    model folder (`roots`, read-only).

    sections: only these settings sections are validated, and a bad value elsewhere is not an error
    (a button that extracts frames is not stopped by a bad img2img field: that field keeps `base`'s
    value, defaults when no base); None = all. The result always has `run.cache` = the cache folder
    and `export.output` = "" (the export goes into the workspace).
    """
    root = paths.cache_root(cache)
    s = copy.deepcopy(base) if base is not None else config.Settings()
    wanted = None if sections is None else set(sections) | {"run"}
    for key, value in values.items():
        section, name = key.split(".")
        try:
            v = field_value(key, value, root, roots)
        except BadInput:
            if wanted is None or section in wanted:
                raise
            continue
        setattr(getattr(s, section), name, v)
    s.run.cache = str(root)
    s.export.output = ""
    for f in dataclasses.fields(s):
        if wanted is None or f.name in wanted:
            getattr(s, f.name).validate()
    return s


def field_value(key: str, value: Any, root: Path, roots: Sequence[Path] = ()) -> Any:
    """One widget value as its setting's value, with the path rules of `paths` for model fields."""
    if key == ip_adapter_section.KEY:           # a list of tables: the IP-Adapters (ui/ip_adapter_section.py)
        return ip_adapter_section.from_json(value, root, roots)
    if config.meta(key).item is not None:       # a list of tables: the ControlNets (ui/controlnet_list.py)
        return from_json(value, root, roots)
    v = coerce(key, value)
    if key in MODEL_FIELDS:
        return paths.model_spec(root, v, LABELS.get(key, key), _model_names(key), roots=roots)
    if key in LIST_PATH_FIELDS:
        return paths.model_list(root, "\n".join(v), LABELS.get(key, key), roots=roots)
    return v


def form_values(settings: config.Settings, keys: Iterable[str]) -> dict[str, Any]:
    """The widget values that show `settings` (the reverse of `settings_from_form` for plain fields)."""
    out = {}
    for key in keys:
        section, name = key.split(".")
        v = getattr(getattr(settings, section), name)
        if config.meta(key).item is not None:       # a list of tables, as the page's hidden JSON field
            out[key] = json.dumps([dataclasses.asdict(t) for t in v])
            continue
        out[key] = "\n".join(v) if isinstance(v, list) else v
    return out


def fps_text(fps: Any) -> str:
    """A frame rate as the page shows it: a decimal ("4", "29.97", "12.5"), never a fraction like "4/1"."""
    from fractions import Fraction

    if fps is None or fps == "":
        return "?"
    try:
        value = float(Fraction(str(fps)))
    except (ValueError, ZeroDivisionError):
        return str(fps)
    return f"{value:.3f}".rstrip("0").rstrip(".")


def all_keys() -> list[str]:
    """Every settings key, "section.field" (for tests and the settings dump)."""
    return config.all_keys()


def label_of(key: str) -> str:
    """How the page names a setting in messages: its field label, else the settings key."""
    return LABELS.get(key, key)


# Where each stage is started on the page: its button and tab (for "run ... first" in messages).
STAGE_BUTTONS = {
    "extract": ("Extract frames", 1), "delta": ("Frame delta", 2), "depth": ("Depth masks", 2),
    "tags": ("Tags", 2), "control": ("Generate", 3),
    "img2img": ("Generate", 3), "propagate": ("Generate", 3), "flow": ("Generate", 3),
    "upscale": ("Upscale", 4), "interpolate": ("Interpolate", 4), "export": ("Export", 5),
}


def stage_button(name: str, workspace: str | None = None) -> str:
    """How the page words a stage reference: the button that runs it and its tab."""
    button, tab = STAGE_BUTTONS.get(name, (name, None))
    return f"'{button}' (tab {tab})" if tab else f"'{button}'"


def error_text(exc: BaseException) -> str:
    """An error in the page's words: settings named by their field labels, stages by their buttons."""
    from vid2vid.core.errors import Vid2VidError

    return exc.render(label_of, stage_button) if isinstance(exc, Vid2VidError) else str(exc)

