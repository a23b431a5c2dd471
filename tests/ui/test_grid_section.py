"""The page's Grid section: its axes, a grid painted through it, a clicked cell back into the form."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from conftest import make_workspace, moving_frames
from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline.runner import run_stage
from vid2vid.ui import form, grid_section
from vid2vid.ui.actions import ModelCache

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_axes_offered_are_the_page_settings_without_paths():
    keys = [k for _, k in grid_section.axis_choices()]
    assert keys[0] == "" and {"img2img.denoise", "img2img.schedule", "correct.fdc", "propagate.fill"} <= set(keys)
    assert not {"img2img.model", "img2img.loras", "img2img.vae", "depth.model", "img2img.single"} & set(keys)
    assert all(k in form.LABELS for k in keys[1:])


@pytest.mark.parametrize("key, says", [("img2img.schedule", ",".join(config.SCHEDULES)),
                                       ("img2img.denoise", "0.6,0.75,0.9"), ("img2img.steps", "19,20,21"),
                                       ("img2img.compile", "false,true"), ("", "")])
def test_picking_a_setting_suggests_values_the_axis_accepts(key, says):
    assert grid_section.suggest(key) == says
    if key:
        from vid2vid.pipeline.grid_axes import parse_axis

        assert len(parse_axis(f"{key}={says}").values) == len(says.split(","))


def test_a_grid_painted_from_the_page_and_a_clicked_cell_copied_into_the_form(tiny_model, tmp_path):
    root = tmp_path / "cache"
    make_workspace(root / "clip", moving_frames(4))
    s = config.Settings()
    s.img2img.model, s.img2img.prompt = str(tiny_model), "a cat"
    s.img2img.width, s.img2img.height, s.img2img.steps = 64, 48, 3
    axes = [("img2img.denoise", "0.5,0.75"), ("img2img.schedule", "linear,karras"), ("", "")]
    said: list[str] = []
    info = grid_section.paint(root, "clip", s, axes, "2", "", False, Job(log=said.append), models=ModelCache())
    assert info["line"].startswith("grid: 4 cells (4 painted, 0 reused) -> ")
    assert sum("loading model" in line for line in said) == 1               # the page's model, loaded once
    cells = info["cells"]
    with Image.open(info["files"][0]) as im:
        picture = np.asarray(im.convert("RGB"))
    for i, c in enumerate(cells):
        x, y, w, h = c["box"]
        assert grid_section.cell_at(cells, 1, x + w // 2, y + h // 2) == i
        debug = np.asarray(Image.open(root / "clip" / "grid" / "denoise-schedule-f2" / c["folder"] /
                                      "img2img.debug" / "00002.png").convert("RGB"))
        np.testing.assert_array_equal(picture[y:y + h, x:x + w], debug)
    assert grid_section.cell_at(cells, 1, 0, 0) is None                      # the margin is no cell
    last = dataclasses.replace(s, img2img=dataclasses.replace(s.img2img, denoise=0.75, schedule="karras", single=2))
    run_stage("img2img", Workspace(root / "clip"), last)      # the stage loading its own model, as the CLI does
    x, y, w, h = cells[3]["box"]
    np.testing.assert_array_equal(picture[y:y + h, x:x + w], np.asarray(Image.open(root / "clip" / "img2img.debug" /
                                                                                    "00002.png").convert("RGB")))
    assert grid_section.form_updates(cells[3]) == {"img2img.denoise": 0.75, "img2img.schedule": "karras"}
    rows = grid_section.table(cells)
    assert [r[0] for r in rows] == [1, 2, 3, 4] and rows[0][-1] == "painted"
    assert form.LABELS["img2img.denoise"] in rows[0][1]
    again = grid_section.paint(root, "clip", s, axes, "2", "", False, Job())
    assert again["line"].startswith("grid: 4 cells (0 painted, 4 reused)")
    grid_json = json.loads((root / "clip" / "grid" / "denoise-schedule-f2" / "grid.json").read_text())
    assert grid_json["cells"] == again["cells"]


def test_the_page_refuses_a_grid_without_x_a_z_without_y_or_too_many_cells_unticked(tmp_path):
    with pytest.raises(BadInput, match="needs a setting for X"):
        grid_section.paint(tmp_path, "ws", config.Settings(), [("", ""), ("img2img.cfg", "5"), ("", "")], "1", "",
                           False, Job())
    with pytest.raises(BadInput, match=r"77 cells, more than 64; tick 'Paint more than 64 cells'") as info:
        grid_section.paint(tmp_path, "ws", config.Settings(), [("img2img.denoise", "0:1:0.1"),
                                                               ("img2img.cfg", "1:7:1"), ("", "")], "1", "", False,
                           Job())
    assert "--" not in form.error_text(info.value)
    with pytest.raises(BadInput, match="Z axis needs a Y axis"):
        grid_section.paint(tmp_path, "ws", config.Settings(), [("img2img.cfg", "5"), ("", ""),
                                                               ("img2img.seed", "1")], "1", "", False, Job())


def test_the_section_is_in_tab_3_and_its_button_writes_its_note(tmp_path):
    pytest.importorskip("gradio")
    from vid2vid.ui import app

    cfg = app.build(tmp_path / "cache").get_config_file()
    ids = [c["props"].get("elem_id") for c in cfg["components"]]
    for elem_id in ("v2v-sweep", "v2v-sweep-key-0", "v2v-sweep-values-2", "v2v-sweep-at", "v2v-sweep-btn",
                    "v2v-sweep-image", "v2v-sweep-video", "v2v-sweep-table"):
        assert ids.count(elem_id) == 1, elem_id
    by_id = {c["id"]: c["props"].get("elem_id") for c in cfg["components"]}
    written = {by_id[o] for dep in cfg["dependencies"] for o in dep["outputs"]}
    assert f"v2v-{grid_section.TASK}-note" in written
    for source in ("v2v-sweep-image", "v2v-sweep-table"):           # a click on a cell or a row fills the form
        deps = [d for d in cfg["dependencies"] if [(by_id.get(i), e) for i, e in d["targets"]] == [(source, "select")]]
        assert len(deps) == 1 and {"v2v-denoise", "v2v-schedule"} <= {by_id[o] for o in deps[0]["outputs"]}
