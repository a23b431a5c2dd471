"""What the page's sections share: the cache folder, the model roots, the runner and the settings widgets.

Every settings widget is registered in `Page.W` under its settings key ("img2img.steps"); a button
reads all of them and validates the sections it needs (`SECTIONS`). `Page.drive` starts one action
in the background (`runner.Runner`) and streams [status, progress, note, *outputs] while the page
polls its progress. No section's layout is here: each section is its own module.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.errors import Vid2VidError
from vid2vid.ui import actions, form, frames, paths
from vid2vid.ui.runner import Runner, Task, error_message

POLL_S = 0.3
LIVE_S = 2.0           # how often an open page looks for newer frames of a running stage (`Page.timer`)
# Settings sections each button reads (and validates).
SECTIONS = {
    "extract": ("extract",), "delta": (), "depth": ("depth",), "tags": ("tags",),
    "img2img": ("img2img", "correct", "propagate", "ray"), "upscale": ("upscale",), "interpolate": ("interpolate",),
    "export": ("export",), "masks": ("correct",), "fdc": ("img2img", "correct"),
}
# The frame strips: the folder each shows and its title ("Frames: 1-24 of 204 frames" once filled).
STRIPS = {"frames": "Frames", "framedelta": "Frame delta ((d+1)/2)", "depthmask": "Depth masks",
          "img2img": "img2img frames", "propagate": "Propagated frames (key-frame mode)",
          "resr": "Upscaled (resr/)", "rife": "Interpolated (rife/)"}
# The note each task's button writes, where the task's name is not the note's ("img2img" -> Generate's).
NOTE_OF_TASK = {"img2img": "generate", "FDC debugger": "fdc", "mask grid": "grid", "control images": "cn-preview"}
# Values the page starts with where they differ from the settings' defaults (the command line keeps those).
PAGE_DEFAULTS = {"extract.audio": True, "export.audio": True, "export.source": "img2img"}


def progress_html(fraction: float | None, text: str = "") -> str:
    """A plain progress bar for the page (fraction None: idle, shows nothing)."""
    if fraction is None:
        return "<div id='v2v-progress' data-fraction=''></div>"
    pct = max(0.0, min(1.0, fraction)) * 100
    return (f"<div id='v2v-progress' data-fraction='{fraction:.3f}'>"
            f"<progress max='100' value='{pct:.1f}' style='width:100%'></progress>"
            f"<small>{html.escape(text)}</small></div>")


def is_error(message: str) -> bool:
    return message.startswith(("Error:", "Failed:"))


def said(message: str, bar: str | None = None) -> list[Any]:
    """[status, progress, note] for one message (no bar: the idle bar); an error is shown as one (red)."""
    return [shown(message), progress_html(None) if bar is None else bar, shown(message)]


def shown(message: str) -> Any:
    """A status line or note value: plain text, or an update that also marks it as an error."""
    import gradio as gr

    return gr.update(value=message, elem_classes=["v2v-error"] if is_error(message) else [])


class Page:
    """The page's shared state; the sections add their widgets to `W` and their notes to `notes`."""

    def __init__(self, gr: Any, root: Path, model_roots: Sequence[Path] = ()) -> None:
        self.gr = gr
        self.root = root
        self.model_roots = list(model_roots)
        self.runner = Runner()
        self.models = actions.ModelCache()
        self.W: dict[str, Any] = {}         # settings key -> widget
        self.defaults = config.Settings()
        self.status: Any = None
        self.bar: Any = None
        self.ws_dd: Any = None
        self.page: Any = None
        self.notes: dict[str, Any] = {}     # note name -> the line beside its button
        self.model_fields: dict[str, str] = {}   # settings key -> model kind, for the refresh button
        self.strips: dict[str, Any] = {}    # folder -> (gallery, page number) of the pageable strips
        self.current_ws: str | None = None  # the workspace last opened or made (a reloaded page opens it)
        self.timer: Any = None              # ticks every LIVE_S in every tab (a timer inside a hidden tab stops)
        # the slot widgets of the list sections (ControlNet, IP-Adapter) and how settings fill them
        self.slots: list[tuple[list[Any], Callable[[config.Settings], list[Any]]]] = []

    @property
    def slot_widgets(self) -> list[Any]:
        return [w for widgets, _ in self.slots for w in widgets]

    def slot_values(self, settings: config.Settings) -> list[Any]:
        """The values that show `settings` in every slot widget, in `slot_widgets` order."""
        return [v for _, fill in self.slots for v in fill(settings)]

    def head(self, note: Any) -> list[Any]:
        """The outputs every action writes first: status line, progress bar, the note beside its button."""
        return [self.status, self.bar, note]

    def note(self, name: str, label: str = "Result") -> Any:
        """The line beside the button `name` that shows what its action did (or why it failed)."""
        box = self.gr.Textbox(value="", label=label, interactive=False, elem_id=f"v2v-{name}-note",
                              elem_classes=["v2v-note"])
        self.notes[name] = box
        return box

    @property
    def widgets(self) -> list[Any]:
        return list(self.W.values())

    def d(self, key: str) -> Any:
        if key in PAGE_DEFAULTS:
            return PAGE_DEFAULTS[key]
        return form.form_values(self.defaults, [key])[key]

    @staticmethod
    def lab(key: str) -> str:
        return form.LABELS.get(key, key)

    def settings_of(self, values: Iterable[Any], what: str) -> config.Settings:
        return form.settings_from_form(dict(zip(self.W.keys(), values)), self.root, sections=SECTIONS[what],
                                       roots=self.model_roots)

    def slider(self, key: str, step: float, **kw: Any):
        """A slider over the setting's own range (its metadata), with its label and default."""
        m = config.meta(key)
        return self.gr.Slider(m.lo, m.hi, value=self.d(key), step=step, label=self.lab(key), **kw)

    def workspaces(self, selected: str | None = None):
        self.current_ws = selected or self.current_ws
        names = paths.list_workspaces(self.root)
        value = selected if selected in names else (names[0] if names else None)
        return self.gr.update(choices=names, value=value)

    def gallery(self, folder: str, elem_id: str | None = None, height: int = 160):
        """The pageable strip of a workspace folder's frames (filled by `strip`): the gallery, then a page
        number beside it (`frames.PAGE` frames a page)."""
        gr = self.gr
        gal = gr.Gallery(object_fit="contain", label=STRIPS[folder], columns=8, height=height, elem_id=elem_id)
        with gr.Row():
            number = gr.Number(value=1, precision=0, label="Page", minimum=1, scale=1,
                               elem_id=f"{elem_id}-page" if elem_id else None)
            gr.HTML("", scale=5)
        self.strips[folder] = (gal, number)
        number.change(lambda ws, n: self.strip(ws, folder, n), [self.ws_dd, number], gal, show_progress="hidden")
        return gal

    def strip(self, ws_name: str | None, folder: str, page: Any = 1):
        """One page of a strip's frames and its title with the range and the real count."""
        if not ws_name:
            return self.gr.update(value=[], label=STRIPS[folder])
        try:
            shown_files, first, total = frames.strip_page(paths.workspace(self.root, ws_name), folder, page)
        except Vid2VidError:
            return self.gr.update(value=[], label=STRIPS[folder])
        return self.gr.update(value=[str(p) for p in shown_files],
                              label=frames.strip_label(STRIPS[folder], first, len(shown_files), total))

    def all_strips(self, ws_name: str | None) -> list[Any]:
        """Every strip's first page for a workspace (when it is opened, and when the page loads)."""
        return [self.strip(ws_name, folder) for folder in self.strips]

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

        def out(status: str, bar: str) -> list[Any]:
            return [status, bar] + [status if name == mine else self.gr.skip() for name in self.notes]

        if not task.done.is_set():
            yield out(task.status(), progress_html(task.fraction or 0.0, task.name))
            for status, bar in self.follow(task):
                yield out(status, bar)
        yield out(task.final(), progress_html(None if task.error else 1.0, "done"))

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
              n_out: int, on_error: list | None = None) -> Iterator[list]:
        """Start `work(job)` and stream [status, progress, note, *outputs] until it ends (the note is
        the line beside the button that started it: the same message as the status line). `on_error`:
        the outputs' values after a failure (default: left as they are)."""
        failed = on_error if on_error is not None else [self.gr.skip()] * n_out
        skip = [self.gr.skip()] * n_out
        try:
            task: Task = self.runner.start(name, work)
        except Vid2VidError as exc:
            yield said(error_message(exc)) + failed
            return
        for status, bar in self.follow(task):
            yield said(status, bar) + skip
        if task.error is not None:
            yield said(task.final()) + failed
            return
        try:
            status, outs = render(task.result)
        except Vid2VidError as exc:
            yield said(error_message(exc)) + failed
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
