"""The page's header: status line, Interrupt, progress bar, cache folder, workspace, and the settings
that survive (restored when a workspace is opened or the page loads, loaded from or saved as a TOML,
fields changed since the last run named)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import BadInput, Vid2VidError
from vid2vid.ui import paths, restore
from vid2vid.ui.page import LIVE_S, Page, progress_html, shown
from vid2vid.ui.runner import error_message


def header(p: Page):
    """Build the header; returns the function that wires its events (once every settings widget exists)."""
    gr = p.gr
    gr.Markdown("## vid2vid: video to video with Stable Diffusion and frame delta correction")
    with gr.Column(elem_id="v2v-head"):
        with gr.Row():
            p.status = gr.Textbox(label="Status", value="Ready.", interactive=False, elem_id="v2v-status",
                                  scale=5)
            interrupt = gr.Button("Interrupt", variant="stop", elem_id="v2v-interrupt", scale=1)
        p.bar = gr.HTML(progress_html(None), elem_id="v2v-bar")
        p.timer = gr.Timer(LIVE_S)
    with gr.Row():
        gr.Textbox(label="Cache folder (the page writes only inside it)", value=str(p.root),
                   interactive=False, elem_id="v2v-cache", scale=3)
        names = paths.list_workspaces(p.root)
        p.ws_dd = gr.Dropdown(label="Workspace (its saved settings fill the fields)", choices=names,
                              value=names[0] if names else None, elem_id="v2v-workspace", scale=3)
        refresh = gr.Button("Refresh", scale=1)
        p.W["run.overwrite"] = gr.Checkbox(label=p.lab("run.overwrite"), value=p.d("run.overwrite"),
                                           elem_id="v2v-overwrite", scale=1)
    with gr.Row():
        changed = gr.Markdown("", elem_id="v2v-changed")
        load_btn = gr.UploadButton("Load settings (.toml)", file_types=[".toml"], type="filepath", size="sm",
                                   elem_id="v2v-settings-load", scale=0)
        save_btn = gr.Button("Settings as a .toml file", size="sm", elem_id="v2v-settings-save", scale=0)
        save_file = gr.File(label="Settings file", interactive=False, height=60, elem_id="v2v-settings-file",
                            scale=1)

    def wire() -> None:
        keys = list(p.W)
        fields = list(p.W.values())
        interrupt.click(p.interrupt, None, [p.status, p.bar], concurrency_limit=None, show_progress="hidden",
                        api_name="interrupt")
        refresh.click(lambda v: p.workspaces(v), p.ws_dd, p.ws_dd)
        shown_fields = fields + p.slot_widgets        # the slots show what the hidden list fields hold
        p.ws_dd.input(lambda ws: on_open(p, keys, ws), p.ws_dd, shown_fields + [changed])
        p.page.load(lambda: on_reload(p, keys), None, [p.ws_dd] + shown_fields + [changed])
        gr.on([w.change for w in fields], lambda ws, *v: changed_line(p, keys, ws, v), [p.ws_dd] + fields,
              changed, show_progress="hidden", trigger_mode="always_last")
        load_btn.upload(lambda f: on_load(p, keys, f), load_btn, [p.status] + shown_fields)
        save_btn.click(lambda *v: on_save(p, keys, v), fields, save_file)
        strips = [gallery for gallery, _ in p.strips.values()]
        p.ws_dd.change(p.all_strips, p.ws_dd, strips, show_progress="hidden")
        p.page.load(lambda: p.all_strips(p.current_ws or next(iter(paths.list_workspaces(p.root)), None)), None,
                    strips, show_progress="hidden")
    return wire


def on_reload(p: Page, keys: list[str]) -> list[Any]:
    """A page (re)loaded: the workspace last opened on this server (else the newest) and its saved settings."""
    names = paths.list_workspaces(p.root)
    name = p.current_ws if p.current_ws in names else (names[0] if names else None)
    return [p.gr.update(choices=names, value=name)] + on_open(p, keys, name)


def on_open(p: Page, keys: list[str], ws_name: str | None) -> list[Any]:
    """The fields and slots from the workspace's saved settings (left as they are when it has none)."""
    p.current_ws = ws_name or p.current_ws
    skip = [p.gr.skip()] * (len(keys) + len(p.slot_widgets))
    if not ws_name:
        return skip + [""]
    try:
        ws = paths.workspace(p.root, ws_name)
    except Vid2VidError:
        return skip + [""]
    s = restore.load(ws)
    if s is None:
        return skip + [restore.changed_text([], False)]
    values = restore.field_values(s, keys)
    # one-offs (allow overwrite, export's frame source) keep what the page shows: they are not remembered
    kept = [v if config.meta(k).remember else p.gr.skip() for k, v in zip(keys, values)]
    return kept + p.slot_values(s) + [restore.changed_text([], True)]


def changed_line(p: Page, keys: list[str], ws_name: str | None, values: tuple) -> str:
    try:
        s = restore.load(paths.workspace(p.root, ws_name)) if ws_name else None
    except Vid2VidError:
        s = None
    if s is None:
        return restore.changed_text([], False) if ws_name else ""
    return restore.changed_text(restore.changed(dict(zip(keys, values)), s, p.root, p.model_roots), True)


def on_load(p: Page, keys: list[str], file: str | None) -> list[Any]:
    """A settings TOML the user picked, into the fields."""
    if not file:
        return [p.gr.skip()] * (1 + len(keys) + len(p.slot_widgets))
    try:
        s = restore.read_file(file)
    except BadInput as exc:
        return ([shown(error_message(BadInput(f"{Path(file).name}: {exc}")))]
                + [p.gr.skip()] * (len(keys) + len(p.slot_widgets)))
    return [f"Loaded settings from {Path(file).name}."] + restore.field_values(s, keys) + p.slot_values(s)


def on_save(p: Page, keys: list[str], values: tuple) -> Any:
    """The fields as a settings TOML to download (fields that do not read keep their defaults)."""
    from vid2vid.ui import form

    s = form.settings_from_form(dict(zip(keys, values)), p.root, sections=(), roots=p.model_roots)
    (p.root / paths.GRADIO_DIR).mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="settings-", dir=p.root / paths.GRADIO_DIR))
    out = folder / "vid2vid-settings.toml"
    out.write_text(config.dumps_toml(s), encoding="utf-8")
    return str(out)
