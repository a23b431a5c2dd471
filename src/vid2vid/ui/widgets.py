"""Settings widgets made from the settings' metadata: label, choices, range, type and model kind.

    W["img2img.steps"] = widget(p, "img2img.steps", elem_id="v2v-steps")
    more(p, ("img2img", "propagate"))      # every labelled field of those sections not placed yet

A field with choices becomes a radio (few) or a dropdown, a bool a checkbox, a number with both
bounds a slider, other numbers a number box, a list a text box of lines, and a model field
(`modelroots.FIELD_KINDS`) a dropdown of what the model folders hold for its kind that still takes
a typed path or hub id. A setting added to a section with a `label` appears on the page through
`more` without a hand-written widget.
"""
from __future__ import annotations

import typing
from typing import Any

from vid2vid import config
from vid2vid.ui import form, modelroots

RADIO_MAX = 4           # more choices than this: a dropdown
SLIDER_STEPS = 100      # a float slider's step: its range over this, rounded to one significant digit


def _float_step(lo: float, hi: float) -> float:
    raw = (hi - lo) / SLIDER_STEPS
    return float(f"{raw:.0e}") if raw > 0 else 0.01


def model_choices(p: Any, key: str) -> list[tuple[str, str]]:
    return modelroots.choices(p.model_roots, modelroots.FIELD_KINDS[key])


def model_field(p: Any, key: str, **kw: Any) -> Any:
    """A model field: a dropdown of the model folders' models of its kind, open to any typed value."""
    multi = typing.get_origin(config.field_type(key)) is list
    label = p.lab(key) + (" (from the model folders, a path in the cache, or a hub id)")
    p.model_fields[key] = modelroots.FIELD_KINDS[key]
    value = p.d(key)
    if multi:
        value = [line for line in str(value or "").splitlines() if line]
    return p.gr.Dropdown(model_choices(p, key), value=value or ([] if multi else None), multiselect=multi,
                         allow_custom_value=True, label=label, **kw)


def widget(p: Any, key: str, **kw: Any) -> Any:
    """The widget of one setting, from its metadata (see the module's docstring)."""
    gr = p.gr
    m = config.meta(key)
    hint = config.field_type(key)
    value, label = p.d(key), p.lab(key)
    if key in modelroots.FIELD_KINDS and key not in ("upscale.model",):
        return model_field(p, key, **kw)
    if m.choices is not None:
        kind = gr.Radio if len(tuple(m.choices)) <= RADIO_MAX else gr.Dropdown
        return kind(form.choices(m.choices), value=value, label=label, **kw)
    if hint is bool:
        return gr.Checkbox(value=value, label=label, **kw)
    if hint in (int, float) and m.lo is not None and m.hi is not None:
        step = 1 if hint is int else _float_step(m.lo, m.hi)
        return gr.Slider(m.lo, m.hi, value=value, step=kw.pop("step", step), label=label, **kw)
    if hint in (int, float):
        return gr.Number(value=value, precision=0 if hint is int else None, label=label, **kw)
    if typing.get_origin(hint) is list:
        kw.setdefault("lines", 2)
        return gr.Textbox(value=value, label=label + " (one a line)", **kw)
    kw.setdefault("lines", 1)
    return gr.Textbox(value=value, label=label, **kw)


def place(p: Any, *keys: str, **kw: Any) -> None:
    """Widgets for `keys` (that exist in the settings), registered in `p.W`, in the open layout block."""
    for key in keys:
        if key in config.all_keys():
            p.W[key] = widget(p, key, **kw)


def unplaced(p: Any, sections: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
    """The labelled fields of `sections` that have no widget yet (lists of tables have their own section)."""
    return [k for k in config.all_keys() if k.split(".")[0] in sections and k not in p.W and k not in exclude
            and config.meta(k).label and config.meta(k).item is None]


def more(p: Any, sections: tuple[str, ...], title: str = "More settings", per_row: int = 4,
         exclude: tuple[str, ...] = ()) -> list[str]:
    """An accordion of every labelled field of `sections` not placed by hand yet; returns their keys."""
    keys = unplaced(p, sections, exclude)
    if not keys:
        return keys
    gr = p.gr
    with gr.Accordion(title, open=False, elem_id="v2v-more"):
        for i in range(0, len(keys), per_row):
            with gr.Row():
                place(p, *keys[i:i + per_row])
    return keys
