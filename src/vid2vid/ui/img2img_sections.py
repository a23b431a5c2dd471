"""Tab 3's settings sections: the model and prompt, the sampler and the sigma override (with its live
preview), frames that agree, the fast path, frame delta correction, key frames, Ray and every other
labelled img2img setting. Widgets come from the settings' metadata (`widgets.place`)."""
from __future__ import annotations

from typing import Any

from vid2vid import config
from vid2vid.config import presets
from vid2vid.ui import actions, controlnet_list, controlnet_section, ip_adapter_section, widgets
from vid2vid.ui.page import Page
from vid2vid.ui.widgets import place

SIGMA_KEYS = ["img2img.sampler", "img2img.schedule", "img2img.steps", "img2img.denoise", "img2img.sigma_min",
              "img2img.sigma_max"]
# Fields tab 3 places by hand elsewhere (the debug frame is the Mode's), kept out of "More settings".
NOT_IN_MORE = ("img2img.single",)


def model_and_prompt(p: Page) -> dict[str, Any]:
    """Model, LoRAs, preset, prompt, sampler, size and seed; returns the refresh button and the preset."""
    gr = p.gr
    with gr.Row():
        place(p, "img2img.model", elem_id="v2v-model", scale=4)
        refresh = gr.Button("Refresh model lists", size="sm", elem_id="v2v-models-refresh", scale=1)
        preset = gr.Dropdown([("none", ""), *[(n, n) for n in presets.PRESETS]], value="", label="Preset",
                             elem_id="v2v-preset", scale=1)
    place(p, "img2img.loras")
    place(p, "img2img.prompt", elem_id="v2v-prompt", lines=2)
    place(p, "img2img.negative")
    with gr.Row():
        place(p, "img2img.sampler")
        place(p, "img2img.steps", elem_id="v2v-steps")
        place(p, "img2img.denoise", step=0.01, elem_id="v2v-denoise")
    with gr.Row():
        for key, elem in (("img2img.width", "v2v-width"), ("img2img.height", "v2v-height")):
            p.W[key] = gr.Number(value=p.d(key), precision=0, step=8, label=p.lab(key), elem_id=elem)
        place(p, "img2img.resize")
    with gr.Row():
        place(p, "img2img.seed", "img2img.cfg", "img2img.batch_size", "img2img.workers")
    return {"refresh": refresh, "preset": preset}


def sigma_section(p: Page) -> tuple[Any, Any]:
    """The sigma override and init noise, with the live plot and the real sigmas; returns (plot, text)."""
    gr = p.gr
    with gr.Accordion("Sigma override and init noise", open=True):
        with gr.Row():
            place(p, "img2img.schedule", elem_id="v2v-schedule")
            place(p, "img2img.sigma_min", "img2img.sigma_max", step=0.01)
            place(p, "img2img.init_noise")
        with gr.Row():
            plot = gr.Plot(label="Sigma schedules (img2img runs right of the line)", show_label=False,
                           elem_id="v2v-sigma-plot")
            text = gr.Textbox(label="Real sigmas with these settings", lines=3, interactive=False,
                              elem_id="v2v-sigma-preview")
    return plot, text


# Accordions of tab 3 that hold only settings rows and a note: (title, rows of settings, note).
ACCORDIONS = (
    ("Frames that agree while painted",
     (("img2img.cross_frame", "img2img.cross_frame_blocks", "img2img.cross_frame_bank", "img2img.flow_init"),),
     "anchor + previous frame, the bank and flow init paint one frame at a time (batch 1, one model worker)."),
    ("Motion module (AnimateDiff): windows of frames painted together",
     (("img2img.motion_module", "img2img.motion_scale"),
      ("img2img.context_length", "img2img.context_overlap", "img2img.context_weighting", "img2img.shuffle_noise")),
     "16-frame windows overlapping by 4, blended at every step; resumable per step."),
    ("Video model (Wan VACE): windows of 4n+1 frames",
     (("img2img.video_model", "img2img.video_reference"),
      ("img2img.video_control", "img2img.video_control_folder", "img2img.video_control_scale", "img2img.flow_shift")),
     "Windows: the context length and overlap above, 4n+1 frames with the length minus the overlap a multiple "
     "of 4; left at 16 / 4 they become 81 / 17 on a GPU, 17 / 5 on a CPU."),
)


def settings_sections(p: Page) -> dict[str, Any]:
    """Every accordion of tab 3 below the sigma override; returns the ControlNet section's widgets."""
    gr = p.gr
    for title, rows, note in ACCORDIONS:
        with gr.Accordion(title, open=False):
            for keys in rows:
                with gr.Row():
                    place(p, *keys)
            gr.Markdown(note)
    with gr.Accordion("Fast path", open=False):
        with gr.Row():
            place(p, "img2img.vae", "img2img.skip_still", "img2img.tcd_gamma", "img2img.compile")
        place(p, "img2img.accel", lines=2)
        gr.Markdown("Accelerators trade picture for speed: tome:0.5 merges half the full-resolution "
                    "self-attention tokens, cache:N reuses deep UNet features for N calls, cache-frames "
                    "reuses a still frame's deep features from the frame before (with a motion module: "
                    "tome and cache:N, per window; the README gives the "
                    "papers' quality figures; compare on the X/Y/Z grid with an accel axis).")
    with gr.Accordion("Frame delta correction", open=False):
        with gr.Row():
            place(p, "correct.method", "correct.fdc", "correct.delta_mask", "correct.spatial_mask")
        with gr.Row():
            place(p, "correct.motion_highext", step=2)
            place(p, "correct.motion_lowcut", "correct.depth_lowcut")
        with gr.Row():
            place(p, "correct.flow_strength", "correct.flow_mask")
    with gr.Accordion("Key frames", open=False):
        with gr.Row():
            place(p, "propagate.keyframes", elem_id="v2v-keyframes", placeholder="off, every:4 or motion:24")
            place(p, "propagate.fill", "propagate.fill_denoise", "propagate.fill_budget", "propagate.steady_keys")
    cn = controlnet_section.section(gr, p.W, p.model_roots, note=p.note)
    cn["ip"] = ip_adapter_section.section(gr, p.W, p.lab, p.model_roots)
    p.slots += [(cn["inputs"], controlnet_list.slot_values), (cn["ip"]["inputs"], ip_adapter_section.slot_values)]
    with gr.Accordion("Ray: img2img on Ray actors", open=False, elem_id="v2v-ray"):
        with gr.Row():
            place(p, "ray.enabled", elem_id="v2v-ray-enabled")
            place(p, "ray.address", elem_id="v2v-ray-address", placeholder="empty: a local Ray on this machine")
            place(p, "ray.actors", "ray.threads")
        gr.Markdown("Batch mode only (a debug frame is painted here). Interrupt lets each actor finish the "
                    "block of frames it holds; those frames are kept.")
    widgets.more(p, ("img2img", "correct", "propagate"), "More img2img settings", exclude=NOT_IN_MORE)
    return cn


def refresh_models(p: Page, cn: dict[str, Any]) -> list[Any]:
    """Every model dropdown refilled from the model folders (a value already chosen is kept)."""
    from vid2vid.ui import modelroots

    lists = [p.gr.update(choices=widgets.model_choices(p, key)) for key in p.model_fields]
    return (lists + [p.gr.update(choices=modelroots.choices(p.model_roots, "controlnet")) for _ in cn["models"]]
            + [p.gr.update(choices=modelroots.choices(p.model_roots, "ip_adapter"))])


def preset_values(p: Page, name: str) -> list[Any]:
    """The fields a preset sets, in `preset_keys` order (nothing changes for 'none')."""
    keys = preset_keys()
    if not name:
        return [p.gr.skip()] * len(keys)
    over = presets.overlay(name)
    return [over.get(k.split(".")[0], {}).get(k.split(".")[1], p.gr.skip()) for k in keys]


def preset_keys() -> list[str]:
    """Every settings key some preset sets."""
    keys = {f"{section}.{name}" for over in presets.PRESETS.values() for section, values in over.items()
            for name in values}
    return [k for k in config.all_keys() if k in keys]


def sigma_views(p: Page, values: tuple) -> Any:
    # one snapshot of every field the preview reads; an error replaces the curves with its message
    return actions.sigma_views(p.root, dict(zip(SIGMA_KEYS, values)))
