"""Tab 2: frame delta, depth masks, tags and the motion-mask grid of one frame."""
from __future__ import annotations

from vid2vid.ui import actions
from vid2vid.ui.page import Page


def tab_masks(p: Page):
    """Build tab 2; returns the function that wires its events."""
    gr, W, d, lab, root = p.gr, p.W, p.d, p.lab, p.root
    from vid2vid.models.depth.registry import DEPTH_MODELS
    from vid2vid.models.taggers.registry import TAGGERS
    with gr.Tab("2: Make masks & tags", id="tab-masks", elem_id="tab-masks"):
        with gr.Row():
            delta_btn = gr.Button("Frame delta", elem_id="v2v-delta-btn")
            delta_note = p.note("delta")
        delta_gal = p.gallery("framedelta", "v2v-delta-strip")
        with gr.Row():
            W["depth.model"] = gr.Dropdown(list(DEPTH_MODELS), value=d("depth.model"), allow_custom_value=True,
                                           label=lab("depth.model") + " (name, hub id or folder in the cache)",
                                           elem_id="v2v-depth-model")
            depth_btn = gr.Button("Depth masks", elem_id="v2v-depth-btn")
        depth_note = p.note("depth")
        depth_gal = p.gallery("depthmask", "v2v-depth-strip")
        with gr.Row():
            W["tags.model"] = gr.Dropdown(list(TAGGERS), value=d("tags.model"), allow_custom_value=True,
                                          label=lab("tags.model"))
            W["tags.topk"] = p.slider("tags.topk", 1)
            W["tags.threshold"] = p.slider("tags.threshold", 0.01)
            tags_btn = gr.Button("Tags", elem_id="v2v-tags-btn")
        tags_note = p.note("tags")
        tags_out = gr.Textbox(label="Top-k tags (prompt line, then tag: score)", lines=6,
                              interactive=False, elem_id="v2v-tags")
        with gr.Row():
            grid_frame = gr.Number(value=2, precision=0, label="Mask grid: frame (2 or later)",
                                   elem_id="v2v-grid-frame")
            grid_btn = gr.Button("Motion mask grid", elem_id="v2v-grid-btn")
        grid_note = p.note("grid")
        grid_img = gr.Image(label="Motion mask over low-cut 0..255", type="numpy", interactive=False,
                            elem_id="v2v-grid")

    def tags_extra(ws_name, info, s):
        top = actions.top_tags(root, ws_name, s.tags.topk)
        lines = [info.get("prompt", "")] + [f"{name}: {score:.3f}" for name, score in top]
        return ["\n".join(lines)]

    def on_grid(ws_name, frame, *values):
        def work(job):
            s = p.settings_of(values, "masks")
            return actions.mask_grid(root, ws_name, int(frame or 0), s.correct)
        yield from p.drive("mask grid", work, lambda sheet: (f"Done: mask grid of frame {int(frame)}", [sheet]), 1)

    def wire() -> None:
        ins = [p.ws_dd] + p.widgets
        delta_btn.click(p.stage_handler("delta", "framedelta"), ins, p.head(delta_note) + [delta_gal])
        depth_btn.click(p.stage_handler("depth", "depthmask"), ins, p.head(depth_note) + [depth_gal])
        tags_btn.click(p.stage_handler("tags", None, tags_extra, 1), ins, p.head(tags_note) + [tags_out])
        grid_btn.click(on_grid, [p.ws_dd, grid_frame] + p.widgets, p.head(grid_note) + [grid_img])
    return wire
