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


def test_every_labelled_painting_setting_is_on_the_page_by_its_metadata(page):
    """A setting added to img2img / correct / propagate with a label appears in tab 3 without a hand-written
    widget (`widgets.more`); its widget kind follows its metadata."""
    from vid2vid import config
    from vid2vid.ui import widgets

    p = page.v2v_page
    wanted = [k for k in config.all_keys() if k.split(".")[0] in ("img2img", "correct", "propagate", "ray")
              and config.meta(k).label and k != "img2img.single"]
    assert set(wanted) <= set(p.W)
    assert widgets.unplaced(p, ("img2img", "correct", "propagate"), ("img2img.single",)) == []
    gr = p.gr
    assert isinstance(p.W["img2img.compile"], gr.Checkbox) and isinstance(p.W["img2img.steps"], gr.Slider)
    assert isinstance(p.W["correct.fdc"], gr.Dropdown) and isinstance(p.W["img2img.resize"], gr.Radio)
    assert isinstance(p.W["img2img.vae"], gr.Dropdown) and p.model_fields["img2img.vae"] == "vae"
    assert p.W["img2img.loras"].multiselect


def test_model_fields_list_the_model_folders(tmp_path):
    root = tmp_path / "webui" / "models"
    for f in ("Stable-diffusion/a.safetensors", "VAE/v.safetensors", "ControlNet/c.pth", "Lora/l.safetensors"):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"w")
    built = app.build(tmp_path / "cache", [tmp_path / "webui"])
    p = built.v2v_page
    assert [v for _, v in p.W["img2img.model"].choices] == [str(root / "Stable-diffusion/a.safetensors")]
    assert [v for _, v in p.W["img2img.vae"].choices] == [str(root / "VAE/v.safetensors")]
    assert [v for _, v in p.W["img2img.loras"].choices] == [str(root / "Lora/l.safetensors")]
    (root / "Stable-diffusion/b.safetensors").write_bytes(b"w")          # the refresh button finds a new one
    from vid2vid.ui import img2img_sections

    cn = {"models": []}
    updates = img2img_sections.refresh_models(p, cn)
    first = updates[list(p.model_fields).index("img2img.model")]
    assert [v for _, v in first["choices"]][-1] == str(root / "Stable-diffusion/b.safetensors")
    ids = _ids(built)
    for elem in ("v2v-models-refresh", "v2v-preset", "v2v-live-source", "v2v-live-painted", "v2v-propagate-strip",
                 "v2v-ws-name", "v2v-replace-used", "v2v-settings-load", "v2v-settings-save", "v2v-changed"):
        assert ids.count(elem) == 1, elem


def test_the_interrupt_button_keeps_its_api_name(page):
    cfg = page.get_config_file()
    assert any(d.get("api_name") == "interrupt" for d in cfg["dependencies"])


def test_the_fast_preset_and_audio_are_on_the_page(page):
    from vid2vid.ui import img2img_sections

    p = page.v2v_page
    keys = img2img_sections.preset_keys()
    assert dict(zip(keys, img2img_sections.preset_values(p, "fast"))) == \
        {"img2img.sampler": "lcm", "img2img.steps": 4, "img2img.cfg": 1.0}
    assert p.W["extract.audio"].value is True and p.W["export.audio"].value is True
