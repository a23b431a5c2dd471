"""The page's ControlNet section in tab 3: ControlNet slots and the debug frame's control images.

The settings are a list of tables (`img2img.controlnet`); the page shows `SLOTS` fixed slots
(use, model, control image, weight, start / end, and the sources' parameters) and keeps the list
as JSON in one hidden field registered as `img2img.controlnet`, which `form.settings_from_form`
reads like every other field (`controlnet_list.from_json`). "Preview control images" shows what each
ControlNet would see for the debug frame, made by the library's own `painting.controls.FrameControls`.

    cn = section(gr, W, roots)        # inside tab 3, where the section goes
    wire(cn, ...)                     # after the widgets list is complete
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.ui import form, modelroots
from vid2vid.ui.controlnet_list import FIELDS, KEY, SLOTS, from_json, to_json

__all__ = ["FIELDS", "KEY", "from_json", "to_json", "section", "wire", "control_preview"]


def section(gr, W: dict, roots: Sequence[Path] = (), note=None) -> dict:
    """Build the section (call inside tab 3); registers the hidden list field in W. Returns its widgets
    (`models`: the slots' model dropdowns, listing the ControlNets of the model folders `roots`).

    `note(name)`, when given, makes the line beside the preview button that shows its result."""
    d = config.ControlNetSettings()
    meta = {f.name: m for f, m in config.fields_of(config.ControlNetSettings)}

    def slider(name: str, step: float, **kw):
        m = meta[name]
        return gr.Slider(m.lo, m.hi, value=getattr(d, name), step=step, label=m.label, **kw)

    slots = []
    with gr.Accordion("ControlNet", open=False, elem_id="v2v-controlnet"):
        gr.Markdown("Keeps each frame's structure: the control image is made from the source frame "
                    "(start and end are fractions of the schedule actually run).")
        for i in range(1, SLOTS + 1):
            with gr.Group():
                with gr.Row():
                    use = gr.Checkbox(value=False, label=f"Use ControlNet {i}", elem_id=f"v2v-cn{i}-use")
                    model = gr.Dropdown(modelroots.choices(roots, "controlnet"), value=None,
                                        allow_custom_value=True, elem_id=f"v2v-cn{i}-model", scale=3,
                                        label=meta["model"].label + " (from the model folders, a path in the "
                                        "cache, or a hub id)")
                    source = gr.Dropdown(form.choices(config.CONTROL_SOURCES), value=d.control,
                                         label=meta["control"].label, elem_id=f"v2v-cn{i}-control")
                with gr.Row():
                    scale = slider("scale", 0.05)
                    start = slider("start", 0.01)
                    end = slider("end", 0.01)
                with gr.Row():
                    low = slider("low", 1)
                    high = slider("high", 1)
                    blur = slider("blur", 0.1)
                    folder = gr.Textbox(label=meta["folder"].label + " (inside the cache)")
            slots.append([use, model, source, scale, start, end, low, high, blur, folder])
        W[KEY] = gr.Textbox(value="[]", visible=False, elem_id="v2v-cn-list")
        with gr.Row():
            preview_btn = gr.Button("Preview control images of the debug frame", elem_id="v2v-cn-preview-btn")
        shown = note("cn-preview") if note is not None else None
        preview = gr.Gallery(label="Control images (debug frame)", columns=SLOTS, height=420, object_fit="contain",
                             allow_preview=True, elem_id="v2v-cn-preview")
    inputs = [w for slot in slots for w in slot]
    for w in inputs:
        w.change(to_json, inputs, W[KEY], show_progress="hidden")
    return {"inputs": inputs, "preview_btn": preview_btn, "preview": preview, "note": shown,
            "models": [slot[1] for slot in slots]}


def control_preview(root: Path, ws_name: str, settings: config.Settings, frame: int) -> list[tuple[np.ndarray, str]]:
    """The control images of frame `frame` (1-based) for the settings' ControlNets, with captions."""
    from vid2vid.painting.controls import FrameControls, folder_name
    from vid2vid.ui import paths

    if not settings.img2img.controlnet:
        raise BadInput("no ControlNet is in use; tick 'Use ControlNet 1' and pick its control image")
    ws = paths.workspace(root, ws_name)
    frames = ws.frames()
    if not frames:
        raise BadInput(f"workspace {ws_name} has no frames; extract a video first (tab 1)")
    if not 1 <= frame <= len(frames):
        raise BadInput(f"debug frame {frame} is not a frame of the workspace (1 to {len(frames)})")
    images = FrameControls(ws, settings)(frame)
    return [(img, folder_name(n, cn)) for n, (cn, img) in enumerate(zip(settings.img2img.controlnet, images), 1)]


def wire(cn: dict, *, root: Path, ws, frame, widgets: list, settings_of, drive, head: list) -> None:
    """The preview button's event (call after the page's widget list is complete)."""

    def on_preview(ws_name, frame_value, *values):
        def work(job):
            return control_preview(root, ws_name, settings_of(values, "img2img"), int(frame_value or 0))

        yield from drive("control images", work,
                         lambda imgs: (f"Done: {len(imgs)} control image(s) of frame {int(frame_value)}", [imgs]), 1)

    cn["preview_btn"].click(on_preview, [ws, frame] + widgets, head + [cn["preview"]])
