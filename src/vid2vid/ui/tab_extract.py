"""Tab 1: upload or name a video, probe it, extract its frames into a workspace (named, or after the video)."""
from __future__ import annotations

from pathlib import Path

from vid2vid.core.errors import Vid2VidError
from vid2vid.ui import actions
from vid2vid.ui.page import Page, said, shown
from vid2vid.ui.runner import error_message
from vid2vid.ui.widgets import place


def tab_extract(p: Page):
    """Build tab 1; returns the function that wires its events."""
    gr, root = p.gr, p.root
    with gr.Tab("1: Extract frames", id="tab-extract", elem_id="tab-extract"):
        with gr.Row():
            upload = gr.File(label="Upload a video (stored in the cache under a safe name)",
                             file_types=["video"], type="filepath", elem_id="v2v-upload")
            with gr.Column():
                video = gr.Textbox(label="Video path inside the cache folder", elem_id="v2v-video",
                                   placeholder="uploads/clip.mp4")
                probe_btn = gr.Button("Probe", elem_id="v2v-probe-btn")
                probe_note = p.note("probe")
        probe_out = gr.Textbox(label="Video info", lines=4, interactive=False, elem_id="v2v-probe")
        with gr.Row():
            place(p, "extract.frames", elem_id="v2v-frames")
            p.W["extract.fps"] = gr.Number(value=p.d("extract.fps"), label=p.lab("extract.fps"), elem_id="v2v-fps")
            place(p, "extract.format", "extract.audio")
        with gr.Row():
            ws_name = gr.Textbox(label="Workspace name (empty: named after the video)", elem_id="v2v-ws-name",
                                 placeholder="my-clip-6fps", scale=3)
            replace_used = gr.Checkbox(value=False, label="Replace the frames of a used workspace",
                                       elem_id="v2v-replace-used", scale=2)
        extract_btn = gr.Button("Extract frames", variant="primary", elem_id="v2v-extract-btn")
        extract_note = p.note("extract")
        frames_gal = p.gallery("frames", "v2v-frames-strip", 180)

    def on_upload(file):
        if not file:
            return [gr.skip()] * 4
        try:
            rel, probed = actions.take_upload(root, file, Path(file).name)
            msg = f"Uploaded as {rel}."
            return [msg, msg, rel, probed]
        except Vid2VidError as exc:
            return [shown(error_message(exc)), shown(error_message(exc)), gr.skip(), gr.skip()]

    def on_probe(v):
        try:
            return [*said("Probed."), actions.probe_text(root, v)]
        except Vid2VidError as exc:
            return [*said(error_message(exc)), ""]

    def on_extract(v, name, replace, *values):
        def work(job):
            return actions.extract(root, v, p.settings_of(values, "extract"), job, name=name or "",
                                   replace_used=bool(replace))

        def render(info):
            made = info["workspace"]
            return (f"Done: extract, {info.get('frames')} frames in workspace {made}",
                    [p.workspaces(made), p.strip(made, "frames")])
        yield from p.drive("extract", work, render, 2)

    def wire() -> None:
        upload.upload(on_upload, upload, [p.status, probe_note, video, probe_out])
        probe_btn.click(on_probe, video, p.head(probe_note) + [probe_out])
        extract_btn.click(on_extract, [video, ws_name, replace_used] + p.widgets,
                          p.head(extract_note) + [p.ws_dd, frames_gal])
    return wire
