"""The page's IP-Adapter section in tab 3: one adapter with its reference picture, and a preview of it.

The settings are a list of tables (`img2img.ip_adapter`); the page shows one slot (use, adapter,
reference, weight, start / end) and keeps the list as JSON in a hidden field registered as
`img2img.ip_adapter`, which `form.settings_from_form` reads (`from_json`). The preview shows the
reference picture (the first of a folder), or for first-painted / key:N the painting a run stored
in the workspace (nothing before the first run).

    ip = section(gr, W, lab)          # inside tab 3
    wire(ip, root=..., ws=...)        # after the widgets exist
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import Vid2VidError

FIELDS = ("model", "reference", "scale", "start", "end")
KEY = "img2img.ip_adapter"


def to_json(use: bool, *values: Any) -> str:
    """The slot's widget values -> the hidden field's JSON list (empty when the slot is not used)."""
    return json.dumps([dict(zip(FIELDS, values))] if use else [])


def slot_values(settings: config.Settings) -> list[Any]:
    """The slot's widget values (use, then FIELDS) that show the settings' first IP-Adapter."""
    from vid2vid.ui.controlnet_list import table_slots

    return table_slots(settings.img2img.ip_adapter, config.IPAdapterSettings, FIELDS, 1)


def from_json(text: Any, root: Path, roots: Sequence[Path] = ()) -> list[config.IPAdapterSettings]:
    """The hidden field's value -> IP-Adapter settings; the adapter must lie in the cache or a model folder
    (`roots`), a reference path in the cache."""
    from vid2vid.config.reference import parse_reference
    from vid2vid.ui import paths
    from vid2vid.ui.controlnet_list import list_items

    out = []
    for n, item in enumerate(list_items(text, "IP-Adapter", FIELDS), 1):
        item = {k: (float(v) if k in ("scale", "start", "end") and isinstance(v, int) else v) for k, v in item.items()}
        ip = config.from_dict(config.IPAdapterSettings, item, KEY)
        ip.model = paths.model_spec(root, ip.model, f"IP-Adapter {n} model", roots=roots)
        if not parse_reference(ip.reference, f"IP-Adapter {n} reference").painted():
            ip.reference = str(paths.inside(root, ip.reference, f"IP-Adapter {n} reference"))
        out.append(ip)
    return out


def section(gr, W: dict, lab, roots: Sequence[Path] = ()) -> dict:
    """Build the section (call inside tab 3); registers the hidden list field in W. Returns its widgets
    (`model`: the adapter's dropdown, listing the IP-Adapters of the model folders `roots`)."""
    from vid2vid.ui import modelroots

    d = config.IPAdapterSettings()
    meta = {f.name: m for f, m in config.fields_of(config.IPAdapterSettings)}

    def slider(name: str):
        m = meta[name]
        return gr.Slider(m.lo, m.hi, value=getattr(d, name), step=0.01, label=m.label, elem_id=f"v2v-ip-{name}")

    with gr.Accordion("IP-Adapter: a reference image for the look", open=False, elem_id="v2v-ip-adapter"):
        gr.Markdown("The adapter's folder or file must hold (or sit beside) its image_encoder. Reference: an "
                    "image or a folder of images inside the cache, first-painted (frame 1 painted without the "
                    "adapter fixes the look) or key:N.")
        with gr.Row():
            use = gr.Checkbox(value=False, label="Use an IP-Adapter", elem_id="v2v-ip-use")
            model = gr.Dropdown(modelroots.choices(roots, "ip_adapter"), value=None, allow_custom_value=True,
                                label=meta["model"].label + " (from the model folders, or a file or folder "
                                "inside the cache)", scale=3, elem_id="v2v-ip-model")
            reference = gr.Textbox(label=meta["reference"].label, placeholder="look.png, first-painted or key:1",
                                   scale=2, elem_id="v2v-ip-reference")
        with gr.Row():
            scale, start, end = slider("scale"), slider("start"), slider("end")
            preview = gr.Image(label="Reference", type="filepath", interactive=False, height=160,
                               elem_id="v2v-ip-preview")
        W[KEY] = gr.Textbox(value="[]", visible=False, elem_id="v2v-ip-list")
    inputs = [use, model, reference, scale, start, end]
    for w in inputs:
        w.change(to_json, inputs, W[KEY], show_progress="hidden")
    return {"reference": reference, "preview": preview, "inputs": inputs, "model": model}


def preview_path(root: Path, ws_name: str | None, reference: str) -> str | None:
    """The picture to show for `reference`: the file, a folder's first image, or a stored painting."""
    from vid2vid.config.reference import parse_reference, reference_images
    from vid2vid.painting import references
    from vid2vid.ui import paths

    try:
        ref = parse_reference(reference)
        if not ref.painted():
            return str(reference_images(parse_reference(str(paths.inside(root, reference, "reference"))))[0])
        if not ws_name:
            return None
        ws = paths.workspace(root, ws_name)
        found = sorted((ws.root / references.FOLDER).glob(f"painted-{ref.frame_number():05d}-*.png"))
        return str(found[-1]) if found else None
    except (Vid2VidError, OSError):
        return None


def wire(ip: dict, *, root: Path, ws) -> None:
    """The preview follows the reference field and the workspace."""
    ip["reference"].change(lambda w, r: preview_path(root, w, r), [ws, ip["reference"]], ip["preview"],
                           show_progress="hidden")
