"""The web page: the seed's five tabs as gradio widgets over `actions` (no pipeline logic here).

    vid2vid ui [--host 127.0.0.1] [--port 7860] [--cache DIR] [--models DIR ...]   (`ui.launch`)

Layout: a status line with an Interrupt button and a progress bar; the cache folder (the only
place the page writes), the workspace, allow-overwrite, the saved settings; then the tabs
1: Extract frames, 2: Make masks & tags, 3: Successive img2img, 4: Upscale & interpolate,
5: Export, one module each. Every settings widget is keyed by its settings name
("img2img.steps"); a button turns the widget values into `Settings` (`form.settings_from_form`,
which also applies the path rules) and runs one action in the background (`runner.Runner`),
while the page polls its progress.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vid2vid.ui import paths
from vid2vid.ui.header import header
from vid2vid.ui.img2img_sections import SIGMA_KEYS
from vid2vid.ui.page import SECTIONS, Page, progress_html, said
from vid2vid.ui.tab_export import tab_export
from vid2vid.ui.tab_extract import tab_extract
from vid2vid.ui.tab_img2img import tab_img2img
from vid2vid.ui.tab_masks import tab_masks
from vid2vid.ui.tab_post import tab_post

__all__ = ["CSS", "SECTIONS", "SIGMA_KEYS", "TABS", "Page", "build", "progress_html", "said"]

# The status line and progress bar stay at the top of the window while a long tab scrolls. Gradio's
# container has `overflow: hidden`, which makes it the box a sticky child sticks in (and it does not
# scroll, so nothing sticks); `overflow: clip` clips the same without being a scroll container.
CSS = """
.gradio-container { overflow: clip !important; }
html { scroll-padding-top: 150px; }   /* a control scrolled into view is not left under the header */
#v2v-head { position: sticky; top: 0; z-index: 100; background: var(--body-background-fill);
            padding: 4px 0; border-bottom: 1px solid var(--border-color-primary); }
.v2v-note textarea { font-size: 0.9em; }
.v2v-error textarea, .v2v-error input { color: var(--error-text-color, #b91c1c) !important;
            border-color: var(--error-border-color, #ef4444) !important; font-weight: 600; }
#v2v-changed { font-size: 0.9em; }
"""

TABS = (tab_extract, tab_masks, tab_img2img, tab_post, tab_export)


def build(cache: str | Path, model_roots: Sequence[str | Path] = ()):
    """The gradio Blocks of the page, working on the cache folder `cache` and reading models also from
    `model_roots`: the header, then one function per tab (`TABS`), whose events are wired once every
    settings widget exists."""
    import gradio as gr

    from vid2vid.ui import modelroots

    p = Page(gr, paths.cache_root(cache), modelroots.check_roots(model_roots))
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])   # no web fonts: works offline
    with gr.Blocks(title="vid2vid", analytics_enabled=False) as page:
        page.v2v_theme = theme
        page.v2v_css = CSS
        page.v2v_runner = p.runner
        page.v2v_page = p
        p.page = page
        wires = [header(p)]
        with gr.Tabs():
            wires += [tab(p) for tab in TABS]
        for wire in wires:
            wire()
        page.load(p.reattach, None, [p.status, p.bar, *p.notes.values()], concurrency_limit=None,
                  show_progress="hidden")
    return page
