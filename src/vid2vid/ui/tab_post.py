"""Tab 4: upscale and interpolate."""
from __future__ import annotations

from vid2vid.ui.page import Page
from vid2vid.ui.widgets import place


def tab_post(p: Page):
    """Build tab 4; returns the function that wires its events."""
    gr, W, d, lab = p.gr, p.W, p.d, p.lab
    from vid2vid.models.interpolators import available_interpolators
    from vid2vid.models.upscalers import available_upscalers
    with gr.Tab("4: Upscale & interpolate", id="tab-post", elem_id="tab-post"):
        with gr.Row():
            W["upscale.model"] = gr.Dropdown(available_upscalers(), value=d("upscale.model"),
                                             allow_custom_value=True, label=lab("upscale.model"))
            place(p, "upscale.tile")
            up_btn = gr.Button("Upscale", elem_id="v2v-upscale-btn")
        up_note = p.note("upscale")
        up_gal = p.gallery("resr", "v2v-upscale-strip")
        with gr.Row():
            W["interpolate.model"] = gr.Dropdown(available_interpolators(), value=d("interpolate.model"),
                                                 allow_custom_value=True, label=lab("interpolate.model"))
            place(p, "interpolate.ratio", step=0.5)
            place(p, "interpolate.scene_cut", step=0.01)
            ip_btn = gr.Button("Interpolate", elem_id="v2v-interpolate-btn")
        ip_note = p.note("interpolate")
        ip_gal = p.gallery("rife", "v2v-interpolate-strip")

    def wire() -> None:
        up_btn.click(p.stage_handler("upscale", "resr"), [p.ws_dd] + p.widgets, p.head(up_note) + [up_gal])
        ip_btn.click(p.stage_handler("interpolate", "rife"), [p.ws_dd] + p.widgets, p.head(ip_note) + [ip_gal])
    return wire
