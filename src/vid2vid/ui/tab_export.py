"""Tab 5: export the chosen folder as a video and play it; the side-by-side comparison."""
from __future__ import annotations

from pathlib import Path

from vid2vid.ui import actions, form, paths
from vid2vid.ui.page import Page
from vid2vid.ui.widgets import place


def tab_export(p: Page):
    """Build tab 5; returns the function that wires its events."""
    gr, root = p.gr, p.root
    with gr.Tab("5: Export", id="tab-export", elem_id="tab-export"):
        with gr.Row():
            place(p, "export.source", elem_id="v2v-export-source")
            place(p, "export.format", elem_id="v2v-export-format")
            place(p, "export.audio", "export.crf", "export.allow_partial")
        export_btn = gr.Button("Export", variant="primary", elem_id="v2v-export-btn")
        export_note = p.note("export")
        export_info = gr.Textbox(label="Exported video", lines=2, interactive=False, elem_id="v2v-export-info")
        result_video = gr.Video(label="Exported video (mp4 / webm play here)", interactive=False, height=400,
                                elem_id="v2v-result-video")
        result_gif = gr.Image(label="Exported video (gif)", type="filepath", interactive=False, visible=False)
        result_file = gr.File(label="Download", interactive=False, elem_id="v2v-result-file")
        compare_btn = gr.Button("Compare stages side by side", elem_id="v2v-compare-btn")
        compare_note = p.note("compare")
        compare_video = gr.Video(label="Source, img2img, flow and final frames side by side",
                                 interactive=False, height=400, elem_id="v2v-compare-video")

    def on_export(ws_name, *values):
        def work(job):
            return actions.export(root, ws_name, p.settings_of(values, "export"), job)

        def render(info):
            out = info["output"]
            fmt = Path(out).suffix.lower()
            text = (f"{paths.relative(root, out)}: {info.get('frames')} frames, {form.fps_text(info.get('fps'))} fps, "
                    f"{float(info.get('duration', 0)):.2f} s, {info.get('width')}x{info.get('height')}"
                    + (", with audio" if info.get("audio") else ""))
            if fmt in (".mp4", ".webm"):
                shown = [out, gr.update(value=None, visible=False)]
            elif fmt == ".gif":
                shown = [None, gr.update(value=out, visible=True)]
            else:
                text += " (browsers do not play AVI: download it below)"
                shown = [None, gr.update(value=None, visible=False)]
            return f"Done: export, {paths.relative(root, out)} written", [text] + shown + [out]
        # a failed export clears the previous result: what is shown is never an older video
        cleared = ["", None, gr.update(value=None, visible=False), None]
        yield from p.drive("export", work, render, 4, on_error=cleared)

    def on_compare(ws_name):
        def render(info):
            return (f"Done: compare, {paths.relative(root, info['output'])} ({', '.join(info['panels'])})",
                    [info["output"]])
        yield from p.drive("compare", lambda job: actions.compare(root, ws_name, job), render, 1, on_error=[None])

    def wire() -> None:
        export_btn.click(on_export, [p.ws_dd] + p.widgets,
                         p.head(export_note) + [export_info, result_video, result_gif, result_file])
        compare_btn.click(on_compare, [p.ws_dd], p.head(compare_note) + [compare_video])
    return wire
