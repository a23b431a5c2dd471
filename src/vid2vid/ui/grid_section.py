"""The page's Grid section in tab 3: a settings sweep (`vid2vid.pipeline.grid`) with the result shown.

Up to three axes (X columns, Y rows, Z pictures), each a dropdown of the settings a grid can sweep
with a box for its values (filled with a suggestion when a setting is picked); the frames (`40` or
`40-64`); "Paint grid". The picture (one frame) or video (a range) is shown with a table of the
cells; clicking a cell in the picture, or its row in the table, copies its settings into the form.
The gradio-free parts (`axis_choices`, `suggest`, `paint`, `cell_at`, `form_updates`) are what the
tests call; `section` builds the widgets inside tab 3, `wire` connects them.

    grid_w = section(p)        # inside tab 3 (p: the page's `app.Page`)
    wire(grid_w, p)            # once every settings widget exists
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.progress import Job
from vid2vid.pipeline.grid_axes import axis_keys, value_label
from vid2vid.pipeline.grid_plan import MAX_CELLS
from vid2vid.ui import form, paths

# Path-valued settings stay off the page's axes: their values would bypass the cache-folder rules.
PATH_KEYS = (*form.MODEL_FIELDS, *form.LIST_PATH_FIELDS, "img2img.vae")
AXES = ("X (columns)", "Y (rows)", "Z (one picture each)")
TASK = "settings-grid"     # the task's name, and its note's (the line beside the button)
TABLE_HEAD = ["cell", "settings", "warping error", "flicker", "PSNR (dB)", "painted"]


def axis_choices() -> list[tuple[str, str]]:
    """(label, settings key) of every setting the page offers as an axis (those on the page, no paths)."""
    return [("(none)", "")] + [(form.label_of(k), k) for k in axis_keys()
                               if k in form.LABELS and k not in PATH_KEYS]


def suggest(key: str) -> str:
    """Values to start from: every choice, on/off, or the default with its neighbours in range."""
    if not key:
        return ""
    m, hint = config.meta(key), config.field_type(key)
    if m.choices is not None:
        return ",".join(m.choices)
    if hint is bool:
        return "false,true"
    d = form.default(key)
    if hint in (int, float):
        step = 1 if hint is int else round(abs(d) * 0.2, 3) or 0.1
        values = [v for v in (d - step, d, d + step) if (m.lo is None or v >= m.lo) and (m.hi is None or v <= m.hi)]
        return ",".join(value_label(hint(round(v, 6))) for v in values)
    return value_label(d)


def paint(root: Path, ws_name: str, settings: config.Settings, axes: list[tuple[str, str]], at: str,
          name: str, yes: bool, job: Job, models: Any = None) -> dict:
    """Run the grid on a workspace of the cache: `axes` = (settings key, values text) for X, Y, Z
    (an empty key: no such axis); `models`: the page's model cache (cells reuse its loaded model).
    Returns the closing line, the files and the cells' records."""
    from vid2vid.core.errors import BadInput
    from vid2vid.pipeline.grid import run_grid
    from vid2vid.pipeline.grid_axes import parse_axis
    from vid2vid.pipeline.grid_plan import cell_count

    given = [(k, v) for k, v in axes if k]
    if not given or not axes[0][0]:
        raise BadInput("the grid needs a setting for X (its columns)")
    if axes[2][0] and not axes[1][0]:
        raise BadInput("the grid's Z axis needs a Y axis (rows) first")
    parsed = [parse_axis(f"{k}={v}") for k, v in given]
    count = cell_count(parsed)
    if count > MAX_CELLS and not yes:
        raise BadInput(f"this grid has {count} cells, more than {MAX_CELLS}; tick 'Paint more than {MAX_CELLS} "
                       "cells' or sweep fewer values")
    g = run_grid(paths.workspace(root, ws_name), settings, parsed, at, name=name, yes=yes, job=job, models=models)
    record = json.loads((g.folder / "grid.json").read_text(encoding="utf-8"))
    return {"line": g.line(), "files": [str(p) for p in g.files], "cells": record["cells"]}


def table(cells: list[dict]) -> list[list[Any]]:
    """One row per cell: number, its settings, its figures (a range), painted or reused."""
    rows = []
    for i, c in enumerate(cells, 1):
        said = ", ".join(f"{form.label_of(k)} {value_label(v)}" for k, v in c["settings"].items())
        fig = c.get("figures") or {}
        figures = [None if fig.get(k) is None else round(fig[k], 5) for k in ("warping_error", "flicker", "psnr")]
        rows.append([i, said, *figures, "painted" if c["painted"] else "reused"])
    return rows


def cell_at(cells: list[dict], page: int, x: int, y: int) -> int | None:
    """The index of the cell whose painting covers pixel (x, y) of picture `page`, or None."""
    for i, c in enumerate(cells):
        bx, by, bw, bh = c.get("box") or (0, 0, 0, 0)
        if c.get("page", 1) == page and bx <= x < bx + bw and by <= y < by + bh:
            return i
    return None


def form_updates(cell: dict) -> dict[str, Any]:
    """{settings key: widget value} that put the cell's settings into the form."""
    s = config.Settings()
    for key, value in cell["settings"].items():
        section, field = key.split(".")
        setattr(getattr(s, section), field, value)
    return form.form_values(s, cell["settings"])


def section(p: Any) -> dict:
    """Build the section (inside tab 3). Returns its widgets."""
    gr = p.gr
    w: dict[str, Any] = {"keys": [], "values": []}
    with gr.Accordion("Grid: a settings sweep (X/Y/Z)", open=False, elem_id="v2v-sweep"):
        for n, title in enumerate(AXES):
            with gr.Row():
                w["keys"].append(gr.Dropdown(axis_choices(), value="", label=f"{title}: setting",
                                             elem_id=f"v2v-sweep-key-{n}"))
                w["values"].append(gr.Textbox(label="values (comma-separated; numbers also lo:hi:step)",
                                              elem_id=f"v2v-sweep-values-{n}"))
        with gr.Row():
            w["at"] = gr.Textbox(value="1", label="Frames: one (40) or a range (40-64)", elem_id="v2v-sweep-at")
            w["name"] = gr.Textbox(label="Grid name (empty: from the axes and frames)")
            w["yes"] = gr.Checkbox(value=False, label=f"Paint more than {MAX_CELLS} cells")
            w["button"] = gr.Button("Paint grid", variant="primary", elem_id="v2v-sweep-btn")
        w["note"] = p.note(TASK)
        w["image"] = gr.Image(label="Grid (click a cell to copy its settings into the form)", type="filepath",
                              interactive=False, elem_id="v2v-sweep-image")
        w["video"] = gr.Video(label="Grid video", interactive=False, elem_id="v2v-sweep-video")
        w["table"] = gr.Dataframe(headers=TABLE_HEAD, interactive=False, elem_id="v2v-sweep-table")
        w["cells"] = gr.State([])
    return w


def wire(w: dict, p: Any) -> None:
    """Connect the section: suggestions, Paint grid, and a click on a cell or a row."""
    gr, root = p.gr, p.root
    for key_dd, values_box in zip(w["keys"], w["values"]):
        key_dd.change(suggest, [key_dd], [values_box])

    def on_paint(ws_name, k0, v0, k1, v1, k2, v2, at, name, yes, *values):
        def work(job):
            s = p.settings_of(values, "img2img")
            return paint(root, ws_name, s, [(k0, v0), (k1, v1), (k2, v2)], str(at), str(name or ""), bool(yes), job,
                         p.models)

        def render(info):
            first = info["files"][0]
            video = first if first.endswith(".mp4") else None
            picture = str(Path(first).with_suffix(".png"))
            return info["line"], [picture, video, table(info["cells"]), info["cells"]]
        yield from p.drive(TASK, work, render, 4)

    inputs = [p.ws_dd, *[x for pair in zip(w["keys"], w["values"]) for x in pair], w["at"], w["name"], w["yes"]]
    w["button"].click(on_paint, inputs + p.widgets,
                      p.head(w["note"]) + [w["image"], w["video"], w["table"], w["cells"]])
    keys = list(p.W)

    def copy_cell(cells: list[dict], index: int | None) -> list[Any]:
        if index is None or not cells:
            return [gr.skip()] * len(keys)
        values = form_updates(cells[index])
        return [gr.update(value=values[k]) if k in values else gr.skip() for k in keys]

    def on_image(cells, evt):
        x, y = evt.index
        return copy_cell(cells, cell_at(cells, 1, int(x), int(y)))

    def on_row(cells, evt):
        return copy_cell(cells, evt.index[0] if cells else None)

    for handler in (on_image, on_row):       # gradio hands the click to the argument annotated so
        handler.__annotations__["evt"] = gr.SelectData

    w["image"].select(on_image, [w["cells"]], p.widgets)
    w["table"].select(on_row, [w["cells"]], p.widgets)
