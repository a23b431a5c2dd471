"""The web page: the seed's five tabs as gradio widgets over `actions` (no pipeline logic here).

    vid2vid ui [--host 127.0.0.1] [--port 7860] [--cache DIR]

Layout: a status line with an Interrupt button and a progress bar; the cache folder (the only
place the page reads and writes), the workspace, allow-overwrite; then the tabs
1: Extract frames, 2: Make masks & tags, 3: Successive img2img, 4: Upscale & interpolate,
5: Export. Every settings widget is keyed by its settings name ("img2img.steps"); a button
turns the widget values into `Settings` (`form.settings_from_form`, which also applies the
path rules) and runs one action in the background (`runner.Runner`), while the page polls
its progress.
"""
from __future__ import annotations

import html
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import BadInput, Vid2VidError
from vid2vid.core.progress import stop_signals
from vid2vid.ui import actions, form, paths
from vid2vid.ui import controlnet_section as controlnet_ui
from vid2vid.ui.runner import Runner, Task, error_message

log = logging.getLogger("vid2vid.ui")

POLL_S = 0.3
STOP_WAIT_S = 30.0
MODES = [("Batch: every frame", "batch"), ("Single frame (debug)", "single")]
# Settings sections each button reads (and validates).
SECTIONS = {
    "extract": ("extract",), "delta": (), "depth": ("depth",), "tags": ("tags",),
    "img2img": ("img2img", "correct", "propagate", "ray"), "upscale": ("upscale",), "interpolate": ("interpolate",),
    "export": ("export",), "masks": ("correct",), "fdc": ("img2img", "correct"),
}


# The frame strips: the folder each shows and its title ("Frames: 8 of 24 frames" once filled).
STRIPS = {"frames": "Frames", "framedelta": "Frame delta ((d+1)/2)", "depthmask": "Depth masks",
          "img2img": "img2img frames", "resr": "Upscaled (resr/)", "rife": "Interpolated (rife/)"}


# The note each task's button writes, where the task's name is not the note's ("img2img" -> Generate's).
NOTE_OF_TASK = {"img2img": "generate", "FDC debugger": "fdc", "mask grid": "grid", "control images": "cn-preview"}


def progress_html(fraction: float | None, text: str = "") -> str:
    """A plain progress bar for the page (fraction None: idle, shows nothing)."""
    if fraction is None:
        return "<div id='v2v-progress' data-fraction=''></div>"
    pct = max(0.0, min(1.0, fraction)) * 100
    return (f"<div id='v2v-progress' data-fraction='{fraction:.3f}'>"
            f"<progress max='100' value='{pct:.1f}' style='width:100%'></progress>"
            f"<small>{html.escape(text)}</small></div>")


# The status line and progress bar stay at the top of the window while a long tab scrolls. Gradio's
# container has `overflow: hidden`, which makes it the box a sticky child sticks in (and it does not
# scroll, so nothing sticks); `overflow: clip` clips the same without being a scroll container.
CSS = """
.gradio-container { overflow: clip !important; }
html { scroll-padding-top: 150px; }   /* a control scrolled into view is not left under the header */
#v2v-head { position: sticky; top: 0; z-index: 100; background: var(--body-background-fill);
            padding: 4px 0; border-bottom: 1px solid var(--border-color-primary); }
.v2v-note textarea { font-size: 0.9em; }
"""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- page

class Page:
    """What the tabs share: the cache folder, the runner, the model cache and the settings widgets.

    Every settings widget is registered in `W` under its settings key; a button reads all of them
    (`widgets`) and validates the sections it needs (`SECTIONS`)."""

    def __init__(self, gr: Any, root: Path) -> None:
        self.gr = gr
        self.root = root
        self.runner = Runner()
        self.models = actions.ModelCache()
        self.W: dict[str, Any] = {}         # settings key -> widget
        self.defaults = config.Settings()
        self.status: Any = None
        self.bar: Any = None
        self.ws_dd: Any = None
        self.page: Any = None
        self.notes: dict[str, Any] = {}     # note name -> the line beside its button

    def head(self, note: Any) -> list[Any]:
        """The outputs every action writes first: status line, progress bar, the note beside its button."""
        return [self.status, self.bar, note]

    def note(self, name: str) -> Any:
        """The line beside the button `name` that shows what its action did (or why it failed)."""
        box = self.gr.Textbox(value="", label="Result", interactive=False, elem_id=f"v2v-{name}-note",
                              elem_classes=["v2v-note"])
        self.notes[name] = box
        return box

    @property
    def widgets(self) -> list[Any]:
        return list(self.W.values())

    def d(self, key: str) -> Any:
        return form.form_values(self.defaults, [key])[key]

    @staticmethod
    def lab(key: str) -> str:
        return form.LABELS.get(key, key)

    def settings_of(self, values: Iterable[Any], what: str) -> config.Settings:
        return form.settings_from_form(dict(zip(self.W.keys(), values)), self.root, sections=SECTIONS[what])

    def slider(self, key: str, step: float, **kw: Any):
        """A slider over the setting's own range (its metadata), with its label and default."""
        m = config.meta(key)
        return self.gr.Slider(m.lo, m.hi, value=self.d(key), step=step, label=self.lab(key), **kw)

    def workspaces(self, selected: str | None = None):
        names = paths.list_workspaces(self.root)
        value = selected if selected in names else (names[0] if names else None)
        return self.gr.update(choices=names, value=value)

    def gallery(self, folder: str, elem_id: str | None = None, height: int = 160):
        """The strip of a workspace folder's frames (filled by `strip`)."""
        return self.gr.Gallery(object_fit="contain", label=STRIPS[folder], columns=8, height=height,
                               elem_id=elem_id)

    def strip(self, ws_name: str | None, folder: str):
        """The strip's new frames and its title with the count ("n of N frames")."""
        if not ws_name:
            return self.gr.update(value=[], label=STRIPS[folder])
        shown, total = actions.frame_strip_counted(self.root, ws_name, folder)
        return self.gr.update(value=[str(p) for p in shown],
                              label=actions.strip_label(STRIPS[folder], len(shown), total))

    def follow(self, task: Task) -> Iterator[list[str]]:
        """[status, progress] of a running task every POLL_S until it ends (the end is not yielded)."""
        while not task.done.wait(POLL_S):
            yield [task.status(), progress_html(task.fraction or 0.0, task.name)]

    def reattach(self) -> Iterator[list[Any]]:
        """On page load: the server's current task, followed to its end if it still runs (a reload during a
        run shows its progress, not "Ready."); the last task's outcome if it has ended. Yields [status,
        progress, *notes]: the note beside the task's button says the same as the status line."""
        task = self.runner.current
        if task is None:
            yield ["Ready.", progress_html(None)] + [self.gr.skip()] * len(self.notes)
            return
        mine = NOTE_OF_TASK.get(task.name, task.name)

        def shown(status: str, bar: str) -> list[Any]:
            return [status, bar] + [status if name == mine else self.gr.skip() for name in self.notes]

        if not task.done.is_set():
            yield shown(task.status(), progress_html(task.fraction or 0.0, task.name))
            for status, bar in self.follow(task):
                yield shown(status, bar)
        yield shown(task.final(), progress_html(None if task.error else 1.0, "done"))

    def interrupt(self) -> Iterator[list[str]]:
        """Interrupt the current task (whichever page started it), then wait for it and say when it stopped."""
        task = self.runner.current
        said_now = self.runner.interrupt()
        if task is None or task.done.is_set():
            yield [said_now, self.gr.skip()]
            return
        yield [said_now, progress_html(task.fraction or 0.0, task.name)]
        while not task.done.wait(POLL_S):
            yield [said_now, progress_html(task.fraction or 0.0, task.name)]
        yield [task.final(), progress_html(None)]

    def drive(self, name: str, work: Callable[[Any], Any], render: Callable[[Any], tuple[str, list]],
              n_out: int) -> Iterator[list]:
        """Start `work(job)` and stream [status, progress, note, *outputs] until it ends (the note is
        the line beside the button that started it: the same message as the status line)."""
        gr = self.gr
        skip = [gr.skip()] * n_out
        try:
            task: Task = self.runner.start(name, work)
        except Vid2VidError as exc:
            yield said(error_message(exc)) + skip
            return
        for status, bar in self.follow(task):
            yield said(status, bar) + skip
        if task.error is not None:
            yield said(task.final()) + skip
            return
        try:
            status, outs = render(task.result)
        except Vid2VidError as exc:
            yield said(error_message(exc)) + skip
            return
        task.outcome = status               # what a page reloaded after the end shows
        yield said(status, progress_html(1.0, "done")) + outs

    def stage_handler(self, stage: str, folder: str | None,
                      extra: Callable[[str, dict, config.Settings], list] | None = None, n_extra: int = 0):
        """The click handler of a button that runs one stage of the stage table, then shows its frames."""
        def handler(ws_name, *values):
            state: dict[str, config.Settings] = {}

            def work(job):
                state["s"] = s = self.settings_of(values, stage)
                return actions.run_stage(self.root, ws_name, stage, s, job)

            def render(info):
                outs = [self.strip(ws_name, folder)] if folder else []
                if extra is not None:
                    outs += extra(ws_name, info, state["s"])
                summary = ", ".join(f"{k} {form.fps_text(v) if 'fps' in k else v}" for k, v in info.items()
                                    if isinstance(v, (int, float, str)) and k not in ("prompt", "folder", "seconds"))
                return f"Done: {stage} ({summary})", outs
            yield from self.drive(stage, work, render, (1 if folder else 0) + n_extra)
        return handler


def said(message: str, bar: str | None = None) -> list[str]:
    """[status, progress, note] for one message (no bar: the idle bar)."""
    return [message, progress_html(None) if bar is None else bar, message]


# Each tab function builds its widgets (inside the open `gr.Tabs`) and returns the function that wires
# its events; wiring waits until every tab is built, since a button reads the settings of all tabs.
Wire = Callable[[], None]


def header(p: Page) -> Wire:
    """Title, status line, Interrupt, progress bar, cache folder, workspace and allow-overwrite."""
    gr = p.gr
    gr.Markdown("## vid2vid: video to video with Stable Diffusion and frame delta correction")
    with gr.Column(elem_id="v2v-head"):
        with gr.Row():
            p.status = gr.Textbox(label="Status", value="Ready.", interactive=False, elem_id="v2v-status",
                                  scale=5)
            interrupt = gr.Button("Interrupt", variant="stop", elem_id="v2v-interrupt", scale=1)
        p.bar = gr.HTML(progress_html(None), elem_id="v2v-bar")
    with gr.Row():
        gr.Textbox(label="Cache folder (the page reads and writes only inside it)", value=str(p.root),
                   interactive=False, elem_id="v2v-cache", scale=3)
        names = paths.list_workspaces(p.root)
        p.ws_dd = gr.Dropdown(label="Workspace", choices=names, value=names[0] if names else None,
                              elem_id="v2v-workspace", scale=3)
        refresh = gr.Button("Refresh", scale=1)
        p.W["run.overwrite"] = gr.Checkbox(label=p.lab("run.overwrite"), value=p.d("run.overwrite"),
                                           elem_id="v2v-overwrite", scale=1)

    def wire() -> None:
        interrupt.click(p.interrupt, None, [p.status, p.bar], concurrency_limit=None, show_progress="hidden")
        refresh.click(lambda v: p.workspaces(v), p.ws_dd, p.ws_dd)
    return wire


def tab_extract(p: Page) -> Wire:
    """1: upload or name a video, probe it, extract its frames into a new workspace."""
    gr, W, d, lab, root = p.gr, p.W, p.d, p.lab, p.root
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
            W["extract.frames"] = gr.Radio(form.choices(config.FRAME_MODES), value=d("extract.frames"),
                                           label=lab("extract.frames"), elem_id="v2v-frames")
            W["extract.fps"] = gr.Number(value=d("extract.fps"), label=lab("extract.fps"), elem_id="v2v-fps")
            W["extract.format"] = gr.Radio(form.choices(config.IMAGE_FORMATS), value=d("extract.format"),
                                           label=lab("extract.format"))
            W["extract.audio"] = gr.Checkbox(value=d("extract.audio"), label=lab("extract.audio"))
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
            return [error_message(exc), error_message(exc), gr.skip(), gr.skip()]

    def on_probe(v):
        try:
            return [*said("Probed."), actions.probe_text(root, v)]
        except Vid2VidError as exc:
            return [*said(error_message(exc)), ""]

    def on_extract(v, *values):
        def work(job):
            return actions.extract(root, v, p.settings_of(values, "extract"), job)

        def render(info):
            name = info["workspace"]
            return (f"Done: extract, {info.get('frames')} frames in workspace {name}",
                    [p.workspaces(name), p.strip(name, "frames")])
        yield from p.drive("extract", work, render, 2)

    def wire() -> None:
        upload.upload(on_upload, upload, [p.status, probe_note, video, probe_out])
        probe_btn.click(on_probe, video, p.head(probe_note) + [probe_out])
        extract_btn.click(on_extract, [video] + p.widgets, p.head(extract_note) + [p.ws_dd, frames_gal])
    return wire


def tab_masks(p: Page) -> Wire:
    """2: frame delta, depth masks, tags and the motion-mask grid of one frame."""
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


SIGMA_KEYS = ["img2img.sampler", "img2img.schedule", "img2img.steps", "img2img.denoise", "img2img.sigma_min",
              "img2img.sigma_max"]


def tab_img2img(p: Page) -> Wire:
    """3: model, prompt, sampler, sigma override (live preview), frame delta correction; Generate and
    the FDC debugger."""
    gr, W, d, lab, root = p.gr, p.W, p.d, p.lab, p.root
    slider = p.slider
    with gr.Tab("3: Successive img2img", id="tab-img2img", elem_id="tab-img2img"):
        W["img2img.model"] = gr.Textbox(label=lab("img2img.model") + " (file or folder inside the cache, "
                                        "or a hub id)", elem_id="v2v-model")
        W["img2img.loras"] = gr.Textbox(label=lab("img2img.loras"), lines=1)
        W["img2img.prompt"] = gr.Textbox(label=lab("img2img.prompt"), lines=2, elem_id="v2v-prompt")
        W["img2img.negative"] = gr.Textbox(label=lab("img2img.negative"), lines=1)
        with gr.Row():
            W["img2img.sampler"] = gr.Dropdown(form.choices(config.SAMPLERS), value=d("img2img.sampler"),
                                               label=lab("img2img.sampler"))
            W["img2img.steps"] = slider("img2img.steps", 1, elem_id="v2v-steps")
            W["img2img.denoise"] = slider("img2img.denoise", 0.01, elem_id="v2v-denoise")
        with gr.Row():
            W["img2img.width"] = gr.Number(value=d("img2img.width"), precision=0, step=8,
                                           label=lab("img2img.width"), elem_id="v2v-width")
            W["img2img.height"] = gr.Number(value=d("img2img.height"), precision=0, step=8,
                                            label=lab("img2img.height"), elem_id="v2v-height")
            W["img2img.resize"] = gr.Radio(form.choices(config.RESIZE_MODES), value=d("img2img.resize"),
                                           label=lab("img2img.resize"))
        with gr.Row():
            W["img2img.seed"] = gr.Number(value=d("img2img.seed"), precision=0, label=lab("img2img.seed"))
            W["img2img.cfg"] = slider("img2img.cfg", 0.5)
            W["img2img.batch_size"] = slider("img2img.batch_size", 1)
            W["img2img.workers"] = slider("img2img.workers", 1)
        with gr.Accordion("Sigma override and init noise", open=True):
            with gr.Row():
                W["img2img.schedule"] = gr.Dropdown(form.choices(config.SCHEDULES),
                                                    value=d("img2img.schedule"),
                                                    label=lab("img2img.schedule"), elem_id="v2v-schedule")
                W["img2img.sigma_min"] = gr.Number(value=d("img2img.sigma_min"), label=lab("img2img.sigma_min"),
                                                   step=0.01)
                W["img2img.sigma_max"] = gr.Number(value=d("img2img.sigma_max"), label=lab("img2img.sigma_max"),
                                                   step=0.01)
                W["img2img.init_noise"] = slider("img2img.init_noise", 0.01)
            with gr.Row():
                sigma_plot = gr.Plot(label="Sigma schedules (img2img runs right of the line)", show_label=False,
                                     elem_id="v2v-sigma-plot")
                sigma_preview = gr.Textbox(label="Real sigmas with these settings", lines=3,
                                           interactive=False, elem_id="v2v-sigma-preview")
        # cross-frame attention and flow-guided init (issue 15)
        with gr.Accordion("Frames that agree while painted", open=False):
            with gr.Row():
                W["img2img.cross_frame"] = gr.Radio(form.choices(config.CROSS_FRAME_MODES),
                                                    value=d("img2img.cross_frame"),
                                                    label=lab("img2img.cross_frame"))
                W["img2img.cross_frame_blocks"] = gr.Radio([("up blocks", "up"), ("all blocks", "all")],
                                                           value=d("img2img.cross_frame_blocks"),
                                                           label=lab("img2img.cross_frame_blocks"))
                W["img2img.cross_frame_bank"] = slider("img2img.cross_frame_bank", 1)
                W["img2img.flow_init"] = slider("img2img.flow_init", 0.05)
            gr.Markdown("anchor + previous frame, the bank and flow init paint one frame at a time "
                        "(batch 1, one model worker).")
        with gr.Accordion("Motion module (AnimateDiff): windows of frames painted together", open=False):
            with gr.Row():
                W["img2img.motion_module"] = gr.Textbox(label=lab("img2img.motion_module"), lines=1)
                W["img2img.motion_scale"] = slider("img2img.motion_scale", 0.05)
            with gr.Row():
                W["img2img.context_length"] = slider("img2img.context_length", 1)
                W["img2img.context_overlap"] = slider("img2img.context_overlap", 1)
                W["img2img.context_weighting"] = gr.Radio(form.choices(config.CONTEXT_WEIGHTINGS),
                                                          value=d("img2img.context_weighting"),
                                                          label=lab("img2img.context_weighting"))
                W["img2img.shuffle_noise"] = gr.Checkbox(value=d("img2img.shuffle_noise"),
                                                         label=lab("img2img.shuffle_noise"))
        # issue 17: the fast path (separate / tiny VAE, still frames, TCD's gamma, torch.compile)
        with gr.Accordion("Fast path", open=False):
            with gr.Row():
                W["img2img.vae"] = gr.Textbox(label=lab("img2img.vae"), lines=1)
                W["img2img.skip_still"] = slider("img2img.skip_still", 0.001)
                W["img2img.tcd_gamma"] = slider("img2img.tcd_gamma", 0.05)
                W["img2img.compile"] = gr.Checkbox(value=d("img2img.compile"), label=lab("img2img.compile"))
            W["img2img.accel"] = gr.Textbox(label=lab("img2img.accel"), lines=2)
            gr.Markdown("Accelerators trade picture for speed: tome:0.5 merges half the full-resolution "
                        "self-attention tokens, cache:N reuses deep UNet features for N calls, cache-frames "
                        "reuses a still frame's deep features from the frame before (the README gives the "
                        "papers' quality figures; compare on the X/Y/Z grid with an accel axis).")
        with gr.Accordion("Video model (Wan VACE): windows of 4n+1 frames", open=False):
            with gr.Row():
                W["img2img.video_model"] = gr.Textbox(label=lab("img2img.video_model"), lines=1)
                W["img2img.video_reference"] = gr.Textbox(label=lab("img2img.video_reference"), lines=1)
            with gr.Row():
                W["img2img.video_control"] = gr.Dropdown(form.choices(config.CONTROL_SOURCES),
                                                         value=d("img2img.video_control"),
                                                         label=lab("img2img.video_control"))
                W["img2img.video_control_folder"] = gr.Textbox(label=lab("img2img.video_control_folder"), lines=1)
                W["img2img.video_control_scale"] = slider("img2img.video_control_scale", 0.05)
                W["img2img.flow_shift"] = slider("img2img.flow_shift", 0.1)
            gr.Markdown("Windows: the context length and overlap above, 4n+1 frames with the length minus the "
                        "overlap a multiple of 4; left at 16 / 4 they become 81 / 17 on a GPU, 17 / 5 on a CPU.")
        with gr.Accordion("Frame delta correction", open=True):
            with gr.Row():
                W["correct.method"] = gr.Radio(form.choices(config.CORRECT_METHODS), value=d("correct.method"),
                                               label=lab("correct.method"))
                W["correct.fdc"] = gr.Dropdown(form.choices(config.FDC_METHODS), value=d("correct.fdc"),
                                               label=lab("correct.fdc"))
                W["correct.delta_mask"] = gr.Radio(form.choices(config.DELTA_MASKS),
                                                   value=d("correct.delta_mask"),
                                                   label=lab("correct.delta_mask"))
                W["correct.spatial_mask"] = gr.Radio(form.choices(config.SPATIAL_MASKS),
                                                     value=d("correct.spatial_mask"),
                                                     label=lab("correct.spatial_mask"))
            with gr.Row():
                W["correct.motion_highext"] = slider("correct.motion_highext", 2)
                W["correct.motion_lowcut"] = slider("correct.motion_lowcut", 1)
                W["correct.depth_lowcut"] = slider("correct.depth_lowcut", 1)
            with gr.Row():
                W["correct.flow_strength"] = slider("correct.flow_strength", 0.01)
                W["correct.flow_mask"] = gr.Radio(form.choices(config.DELTA_MASKS),
                                                  value=d("correct.flow_mask"), label=lab("correct.flow_mask"))
        with gr.Accordion("Key frames", open=False):
            with gr.Row():
                W["propagate.keyframes"] = gr.Textbox(value=d("propagate.keyframes"),
                                                      label=lab("propagate.keyframes"),
                                                      placeholder="off, every:4 or motion:24",
                                                      elem_id="v2v-keyframes")
                W["propagate.fill"] = gr.Radio(form.choices(config.KEY_FILLS), value=d("propagate.fill"),
                                               label=lab("propagate.fill"))
                W["propagate.fill_denoise"] = slider("propagate.fill_denoise", 0.01)
                W["propagate.steady_keys"] = gr.Checkbox(value=d("propagate.steady_keys"),
                                                         label=lab("propagate.steady_keys"))
        cn_ui = controlnet_ui.section(gr, W, lab, note=p.note)   # ControlNet (issue 14): ui/controlnet.py
        with gr.Accordion("Ray: img2img on Ray actors", open=False, elem_id="v2v-ray"):
            with gr.Row():
                W["ray.enabled"] = gr.Checkbox(value=d("ray.enabled"), label=lab("ray.enabled"),
                                               elem_id="v2v-ray-enabled")
                W["ray.address"] = gr.Textbox(value=d("ray.address"), label=lab("ray.address"),
                                              placeholder="empty: a local Ray on this machine",
                                              elem_id="v2v-ray-address")
                W["ray.actors"] = gr.Number(value=d("ray.actors"), precision=0, label=lab("ray.actors"))
                W["ray.threads"] = gr.Number(value=d("ray.threads"), precision=0, label=lab("ray.threads"))
            gr.Markdown("Batch mode only (a debug frame is painted here). Interrupt lets each actor finish the "
                        "block of frames it holds; those frames are kept.")
        with gr.Row():
            mode = gr.Radio(MODES, value="batch", label="Mode", elem_id="v2v-mode")
            debug_frame = gr.Number(value=1, precision=0, label="Debug frame (single mode)",
                                    elem_id="v2v-debug-frame")
            gen_btn = gr.Button("Generate", variant="primary", elem_id="v2v-generate-btn")
        gen_note = p.note("generate")
        with gr.Row():
            single_img = gr.Image(label="Debug frame (raw generated)", type="filepath", interactive=False,
                                  elem_id="v2v-single-image")
            real_sigmas = gr.Textbox(label="Real sigmas used", lines=4, interactive=False,
                                     elem_id="v2v-real-sigmas")
        gen_gal = p.gallery("img2img", "v2v-img2img-strip", 180)
        with gr.Row():
            fdc_frame = gr.Number(value=2, precision=0, label="FDC debugger: frame (2 or later)",
                                  elem_id="v2v-fdc-frame")
            fdc_btn = gr.Button("FDC debugger sheet", elem_id="v2v-fdc-btn")
        fdc_note = p.note("fdc")
        fdc_img = gr.Image(label="FDC debugger", type="numpy", interactive=False, elem_id="v2v-fdc")

    def on_sigmas(*values):
        # one snapshot of every field the preview reads; an error replaces the curves with its message
        return actions.sigma_views(root, dict(zip(SIGMA_KEYS, values)))

    def on_generate(ws_name, mode_value, frame, *values):
        single = int(frame or 0) if mode_value == "single" else 0
        if mode_value == "single" and single < 1:
            yield said(error_message(BadInput(f"debug frame {single} is not a frame; frames count from 1"))) \
                + [gr.skip()] * 3
            return

        def work(job):
            s = p.settings_of(values, "img2img")
            return actions.img2img(root, ws_name, s, job, p.models, single=single)

        def render(info):
            from vid2vid.diffusion.schedules import format_sigmas
            sig = format_sigmas(info.get("real_sigmas", []))
            if single:
                return (f"Done: img2img single frame {single}, {info.get('sampler_steps')} sampler steps",
                        [info["output"], sig, gr.skip()])
            return (f"Done: img2img batch, {info.get('frames')} frames",
                    [gr.skip(), sig, p.strip(ws_name, "img2img")])
        yield from p.drive("img2img", work, render, 3)

    def on_fdc(ws_name, frame, *values):
        def work(job):
            return actions.fdc_sheet(root, ws_name, int(frame or 0), p.settings_of(values, "fdc"))
        yield from p.drive("FDC debugger", work,
                           lambda sheet: (f"Done: FDC debugger sheet of frame {int(frame)}", [sheet]), 1)

    def wire() -> None:
        sigma_inputs = [W[k] for k in SIGMA_KEYS]
        # one event for all the fields: runs one at a time and, while one runs, only the latest change waits
        # (always_last), so the preview ends on the fields' last values, never on an older change
        gr.on([W[k].change for k in SIGMA_KEYS], on_sigmas, sigma_inputs, [sigma_plot, sigma_preview],
              trigger_mode="always_last", concurrency_limit=1, show_progress="hidden")
        p.page.load(on_sigmas, sigma_inputs, [sigma_plot, sigma_preview])
        gen_btn.click(on_generate, [p.ws_dd, mode, debug_frame] + p.widgets,
                      p.head(gen_note) + [single_img, real_sigmas, gen_gal])
        fdc_btn.click(on_fdc, [p.ws_dd, fdc_frame] + p.widgets, p.head(fdc_note) + [fdc_img])
        controlnet_ui.wire(cn_ui, root=root, ws=p.ws_dd, frame=debug_frame, widgets=p.widgets,
                           settings_of=p.settings_of, drive=p.drive, head=p.head(cn_ui["note"]))
    return wire


def tab_post(p: Page) -> Wire:
    """4: upscale and interpolate."""
    gr, W, d, lab = p.gr, p.W, p.d, p.lab
    from vid2vid.models.interpolators import available_interpolators
    from vid2vid.models.upscalers import available_upscalers
    with gr.Tab("4: Upscale & interpolate", id="tab-post", elem_id="tab-post"):
        with gr.Row():
            W["upscale.model"] = gr.Dropdown(available_upscalers(), value=d("upscale.model"),
                                             allow_custom_value=True, label=lab("upscale.model"))
            W["upscale.tile"] = gr.Number(value=d("upscale.tile"), precision=0, label=lab("upscale.tile"))
            up_btn = gr.Button("Upscale", elem_id="v2v-upscale-btn")
        up_note = p.note("upscale")
        up_gal = p.gallery("resr", "v2v-upscale-strip")
        with gr.Row():
            W["interpolate.model"] = gr.Dropdown(available_interpolators(), value=d("interpolate.model"),
                                                 allow_custom_value=True, label=lab("interpolate.model"))
            W["interpolate.ratio"] = p.slider("interpolate.ratio", 0.5)
            W["interpolate.scene_cut"] = p.slider("interpolate.scene_cut", 0.01)
            ip_btn = gr.Button("Interpolate", elem_id="v2v-interpolate-btn")
        ip_note = p.note("interpolate")
        ip_gal = p.gallery("rife", "v2v-interpolate-strip")

    def wire() -> None:
        up_btn.click(p.stage_handler("upscale", "resr"), [p.ws_dd] + p.widgets, p.head(up_note) + [up_gal])
        ip_btn.click(p.stage_handler("interpolate", "rife"), [p.ws_dd] + p.widgets, p.head(ip_note) + [ip_gal])
    return wire


def tab_export(p: Page) -> Wire:
    """5: export the chosen folder as a video and play it."""
    gr, W, d, lab, root = p.gr, p.W, p.d, p.lab, p.root
    with gr.Tab("5: Export", id="tab-export", elem_id="tab-export"):
        with gr.Row():
            W["export.source"] = gr.Radio(form.choices(config.EXPORT_SOURCES), value="img2img",
                                          label=lab("export.source"), elem_id="v2v-export-source")
            W["export.format"] = gr.Radio(form.choices(config.EXPORT_FORMATS), value=d("export.format"),
                                          label=lab("export.format"), elem_id="v2v-export-format")
            W["export.audio"] = gr.Checkbox(value=d("export.audio"), label=lab("export.audio"))
            W["export.crf"] = p.slider("export.crf", 1)
        export_btn = gr.Button("Export", variant="primary", elem_id="v2v-export-btn")
        export_note = p.note("export")
        export_info = gr.Textbox(label="Result", lines=2, interactive=False, elem_id="v2v-export-info")
        result_video = gr.Video(label="Result (mp4 / webm play here)", interactive=False, height=400,
                                elem_id="v2v-result-video")
        result_gif = gr.Image(label="Result (gif)", type="filepath", interactive=False, visible=False)
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
        yield from p.drive("export", work, render, 4)

    def on_compare(ws_name):
        def render(info):
            return (f"Done: compare, {paths.relative(root, info['output'])} ({', '.join(info['panels'])})",
                    [info["output"]])
        yield from p.drive("compare", lambda job: actions.compare(root, ws_name, job), render, 1)

    def wire() -> None:
        export_btn.click(on_export, [p.ws_dd] + p.widgets,
                         p.head(export_note) + [export_info, result_video, result_gif, result_file])
        compare_btn.click(on_compare, [p.ws_dd], p.head(compare_note) + [compare_video])
    return wire


TABS = (tab_extract, tab_masks, tab_img2img, tab_post, tab_export)


def build(cache: str | Path):
    """The gradio Blocks of the page, working on the cache folder `cache`: the header, then one
    function per tab (`TABS`), whose events are wired once every settings widget exists."""
    import gradio as gr

    p = Page(gr, paths.cache_root(cache))
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
        page.load(lambda: p.workspaces(None), None, p.ws_dd)
        page.load(p.reattach, None, [p.status, p.bar, *p.notes.values()], concurrency_limit=None,
                  show_progress="hidden")
    return page


# ---------------------------------------------------------------- launch

def prepare_environment(root: Path) -> None:
    """Keep gradio's uploads and caches inside the cache folder, and gradio off the network."""
    gdir = root / paths.GRADIO_DIR
    os.environ["GRADIO_TEMP_DIR"] = str(gdir / "uploads")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(gdir / "examples")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def launch(host: str = "127.0.0.1", port: int = 7860, cache: str | Path = "vid2vid-cache",
           block: bool = True, allowed_hosts: Iterable[str] = ()):
    """Serve the page on http://host:port; loopback only unless another host is asked for.

    Requests whose Host header is not one of the page's names are refused, and uploads must come
    from the page itself (`ui.guard`); `allowed_hosts` adds names (HOST or HOST:PORT)."""
    root = paths.cache_root(cache)
    prepare_environment(root)
    try:
        import gradio  # noqa: F401
    except ImportError as exc:
        raise BadInput("the web UI needs gradio; install it with `pip install -e .[ui]` "
                       "(or `bash install.sh --ui`)") from exc
    if not is_loopback(host):
        log.warning("serving on %s: anyone who can reach this address can use the page and the cache folder %s",
                    host, root)
    from starlette.middleware import Middleware

    from vid2vid.ui.guard import HostGuard
    from vid2vid.ui.guard import allowed_hosts as page_hosts

    page = build(root)
    page.queue(default_concurrency_limit=4)
    guard = Middleware(HostGuard, allowed=page_hosts(host, allowed_hosts))
    if block and threading.current_thread() is threading.main_thread():
        _stop_on_signals()
    print(f"vid2vid web UI: http://{host}:{port}  (cache folder {root})", flush=True)
    result = page.launch(server_name=host, server_port=port, allowed_paths=[str(root)], theme=page.v2v_theme,
                         css=page.v2v_css, ssr_mode=False, show_error=False, quiet=True, inbrowser=False, share=False,
                         prevent_thread_lock=not block, footer_links=["settings"],
                         app_kwargs={"middleware": [guard]})
    if block:                      # the server has stopped: let a running task finish its current frame
        page.v2v_runner.interrupt()
        task = page.v2v_runner.current
        if task is not None and not task.done.wait(STOP_WAIT_S):
            log.warning("%s did not stop within %s s; finished frames are kept", task.name, STOP_WAIT_S)
    return result


def _stop_on_signals() -> None:
    """Ctrl+C, Ctrl+Break or SIGTERM stops the server at once (the CLI's handlers wait for a frame that the
    server's main thread never works on)."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    for sig in stop_signals():
        signal.signal(sig, stop)
