"""Tab 6: live. A camera, a stream or a video of the cache folder restyled as it plays (`vid2vid.live`),
the newest painted frame shown beside its source with the figures; the header's Interrupt stops it.
The painting settings are tab 3's (the fast preset suits live)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vid2vid.core.errors import BadInput
from vid2vid.live.sinks import LiveView
from vid2vid.live.sources import URL_SCHEMES
from vid2vid.ui.page import Page


def source_spec(root: Path, text: str) -> str:
    """The live source the field names: a camera, a stream URL, or a video inside the cache folder."""
    text = (text or "").strip()
    if not text:
        raise BadInput("Live source is empty; give a camera (/dev/video0), a stream URL or a video of the cache folder")
    if text.startswith("/dev/video") or ("://" in text and text.split("://", 1)[0].lower() in URL_SCHEMES):
        return text
    path = (root / text).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise BadInput(f"Live source {text} is not a video of the cache folder; upload it in tab 1, or give a "
                       "camera or a stream URL")
    return str(path)


class Poll:
    """What the page's timer shows: the newest pair and the figures, or nothing new."""

    def __init__(self, view: LiveView, skip: Any):
        self.view, self.skip, self.seen = view, skip, -1

    def __call__(self) -> list[Any]:
        source, painted, shown = self.view.latest()
        if shown == self.seen:
            return [self.skip] * 3
        self.seen = shown
        figures = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.view.stats.items())
        return [source, painted, f"{shown} frames shown" + (f"; last run: {figures}" if figures else "")]


def tab_live(p: Page):
    """Build tab 6; returns the function that wires its events."""
    gr = p.gr
    view = LiveView()
    with gr.Tab("6: Live", id="tab-live", elem_id="tab-live"):
        with gr.Row():
            src = gr.Textbox(label="Live source", elem_id="v2v-stream-source",
                             placeholder="/dev/video0, rtsp://host/stream, or a video of the cache folder")
            start = gr.Button("Start live", variant="primary", elem_id="v2v-stream-btn")
        note = p.note("live")
        with gr.Row():
            src_img = gr.Image(label="Source", type="numpy", interactive=False, elem_id="v2v-stream-src")
            out_img = gr.Image(label="Painted", type="numpy", interactive=False, elem_id="v2v-stream-out")
        figures = gr.Markdown(elem_id="v2v-stream-figures")

    def wire() -> None:
        def handler(text, *values):
            def work(job):
                from vid2vid import live

                settings = p.settings_of(values, "img2img")
                return live.run(settings, source_spec(p.root, text), job, view=view).summary()

            def render(summary):
                return "Done: live (" + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()) + ")", []
            yield from p.drive("live", work, render, 0)

        start.click(handler, [src] + p.widgets, p.head(note))
        p.timer.tick(Poll(view, gr.skip()), None, [src_img, out_img, figures], show_progress="hidden")
    return wire
