"""The page's structure without a browser: one function per tab, each keeping its element ids."""
from __future__ import annotations

import pytest

pytest.importorskip("gradio")

from vid2vid.ui import app  # noqa: E402

# Element ids the browser test and users' scripts rely on, by the tab (or header) that owns them.
IDS = {
    "header": ["v2v-status", "v2v-interrupt", "v2v-bar", "v2v-cache", "v2v-workspace", "v2v-overwrite"],
    "tab_extract": ["tab-extract", "v2v-upload", "v2v-video", "v2v-probe-btn", "v2v-probe", "v2v-frames",
                    "v2v-fps", "v2v-extract-btn", "v2v-frames-strip"],
    "tab_masks": ["tab-masks", "v2v-delta-btn", "v2v-delta-strip", "v2v-depth-model", "v2v-depth-btn",
                  "v2v-tags-btn", "v2v-tags", "v2v-grid-btn", "v2v-grid"],
    "tab_img2img": ["tab-img2img", "v2v-model", "v2v-prompt", "v2v-steps", "v2v-denoise", "v2v-width",
                    "v2v-height", "v2v-schedule", "v2v-sigma-plot", "v2v-sigma-preview", "v2v-mode",
                    "v2v-debug-frame", "v2v-generate-btn", "v2v-single-image", "v2v-real-sigmas",
                    "v2v-img2img-strip", "v2v-fdc-btn", "v2v-fdc", "v2v-keyframes", "v2v-controlnet",
                    "v2v-cn-preview-btn", "v2v-ray", "v2v-ray-enabled", "v2v-ray-address"],
    "tab_post": ["tab-post", "v2v-upscale-btn", "v2v-interpolate-btn", "v2v-upscale-strip", "v2v-interpolate-strip"],
    "tab_export": ["tab-export", "v2v-export-source", "v2v-export-format", "v2v-export-btn",
                   "v2v-export-info", "v2v-result-video", "v2v-result-file", "v2v-compare-btn",
                   "v2v-compare-video"],
}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    return app.build(tmp_path_factory.mktemp("cache"))


def _ids(page) -> list[str]:
    return [c["props"].get("elem_id") for c in page.get_config_file()["components"]]


def test_the_page_is_built_by_one_function_per_tab():
    assert [t.__name__ for t in app.TABS] == [k for k in IDS if k != "header"]


def test_every_tab_keeps_its_element_ids_once(page):
    ids = _ids(page)
    for owner, wanted in IDS.items():
        for elem_id in wanted:
            assert ids.count(elem_id) == 1, (owner, elem_id)



NOTES = ["probe", "extract", "delta", "depth", "tags", "grid", "generate", "fdc", "cn-preview", "upscale",
         "interpolate", "export", "compare"]


def test_every_action_button_has_its_note_and_writes_it(page):
    """Each action writes its result or error into the note beside its button, as well as the status line."""
    cfg = page.get_config_file()
    by_id = {c["id"]: c["props"].get("elem_id") for c in cfg["components"]}
    written = {by_id[o] for dep in cfg["dependencies"] for o in dep["outputs"]}
    for name in NOTES:
        assert f"v2v-{name}-note" in written, name
    assert "v2v-head" in by_id.values()                 # the sticky header holding status and progress
    assert "#v2v-head" in app.CSS and "sticky" in app.CSS


def test_said_fills_status_and_note_alike_and_marks_errors():
    status, bar, note = app.said("Error: no model given")
    assert status == note and status["value"] == "Error: no model given" and "data-fraction=''" in bar
    assert status["elem_classes"] == ["v2v-error"]                 # errors do not look like normal text
    assert app.said("Done: extract")[0]["elem_classes"] == []
    assert ".v2v-error" in app.CSS
