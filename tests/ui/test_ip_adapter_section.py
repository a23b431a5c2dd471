"""The page's IP-Adapter section: its hidden list field read like the other settings, and the reference preview."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gradio")

from vid2vid.config import IPAdapterSettings  # noqa: E402
from vid2vid.core.errors import BadInput  # noqa: E402
from vid2vid.core.imageops import write_image  # noqa: E402
from vid2vid.ui import app, form, paths  # noqa: E402
from vid2vid.ui import ip_adapter_section as ipui  # noqa: E402


@pytest.fixture
def root(tmp_path):
    r = paths.cache_root(tmp_path / "cache")
    (r / "refs").mkdir(parents=True)
    (r / "ipa").mkdir()                    # an adapter folder inside the cache (its files do not matter here)
    write_image(r / "refs" / "look.png", np.full((8, 8, 3), 0.5, np.float32))
    return r


def test_the_slot_becomes_settings_through_the_form(root):
    assert ipui.to_json(False, "ipa", "refs/look.png", 0.7, 0.0, 1.0) == "[]"
    text = ipui.to_json(True, "ipa", "refs/look.png", 0.7, 0, 1)
    got = ipui.from_json(text, root)
    assert got == [IPAdapterSettings(model=str(root / "ipa"), reference=str(root / "refs" / "look.png"), scale=0.7)]
    first = ipui.from_json(json.dumps([{"model": "ipa", "reference": "first-painted"}]), root)
    assert first[0].reference == "first-painted"
    with pytest.raises(BadInput, match="outside the cache folder"):
        ipui.from_json(ipui.to_json(True, "ipa", "/etc/passwd", 1.0, 0.0, 1.0), root)
    s = form.settings_from_form({"img2img.model": "owner/model", ipui.KEY: text}, root, sections=["img2img"])
    assert s.img2img.ip_adapter == got


def test_the_preview_shows_the_picture_or_the_stored_painting(root):
    from conftest import make_workspace
    from vid2vid.painting import references

    assert ipui.preview_path(root, None, "refs/look.png") == str(root / "refs" / "look.png")
    assert ipui.preview_path(root, None, "refs") == str(root / "refs" / "look.png")
    assert ipui.preview_path(root, None, "nothing.png") is None
    ws = make_workspace(root / "ws", [np.zeros((8, 8, 3), np.float32)])
    assert ipui.preview_path(root, "ws", "first-painted") is None          # before the first run
    painted = references.painted_file(ws.root, 1, "0" * 16)
    write_image(painted, np.ones((8, 8, 3), np.float32))
    assert ipui.preview_path(root, "ws", "first-painted") == str(painted)


def test_the_section_is_on_tab_3(tmp_path):
    page = app.build(paths.cache_root(tmp_path / "cache"))
    ids = [c["props"].get("elem_id") for c in page.get_config_file()["components"]]
    assert {"v2v-ip-adapter", "v2v-ip-preview", "v2v-ip-list"} <= set(ids)


def test_the_slot_stays_with_the_animatediff_painter(tmp_path, root):
    """The motion module's field hides nothing of the slot, and the AnimateDiff painter takes what it gives."""
    from vid2vid.painting import painters

    page = app.build(paths.cache_root(tmp_path / "cache"))
    parts = {c["props"].get("elem_id"): c["props"] for c in page.get_config_file()["components"]}
    assert all(parts[i].get("visible", True) is not False for i in ("v2v-ip-adapter", "v2v-ip-use", "v2v-ip-model",
                                                                    "v2v-ip-reference", "v2v-ip-preview"))
    (root / "mm_sd15_v2.ckpt").write_bytes(b"")
    text = ipui.to_json(True, "ipa", "first-painted", 0.7, 0, 1)
    s = form.settings_from_form({"img2img.model": "owner/model", "img2img.motion_module": "mm_sd15_v2.ckpt",
                                 ipui.KEY: text}, root, sections=["img2img"])
    painter = painters.choose(s)
    assert painter.NAME == "animatediff" and s.img2img.ip_adapter[0].reference == "first-painted"
    painter.refuse(s)                         # no line: the adapter is painted with the windows


def test_the_adapter_comes_from_the_users_model_folders(tmp_path, root):
    """A ComfyUI folder given with --models: its models/ipadapter files are listed in the slot's dropdown and
    read in place (given as listed or relative to the models folder); a path outside every root is refused."""
    from vid2vid.ui import modelroots

    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "ipadapter").mkdir(parents=True)
    adapter = comfy / "models" / "ipadapter" / "ip-adapter_sd15.safetensors"
    adapter.write_bytes(b"x")
    (comfy / "models" / "controlnet").mkdir()
    (comfy / "models" / "controlnet" / "canny.safetensors").write_bytes(b"x")
    roots = modelroots.check_roots([comfy])
    listed = modelroots.choices(roots, "ip_adapter")
    assert [value for _, value in listed] == [str(adapter.resolve())]
    for given in (listed[0][1], "ipadapter/ip-adapter_sd15.safetensors"):
        got = ipui.from_json(ipui.to_json(True, given, "first-painted", 0.6, 0.0, 1.0), root, roots)
        assert got[0].model == str(adapter.resolve())
    with pytest.raises(BadInput):
        ipui.from_json(ipui.to_json(True, str(tmp_path / "elsewhere.bin"), "first-painted", 0.6, 0.0, 1.0), root,
                       roots)
    page = app.build(root, [comfy])
    dropdown = next(c for c in page.get_config_file()["components"] if c["props"].get("elem_id") == "v2v-ip-model")
    assert [str(adapter.resolve())] == [v for _, v in dropdown["props"]["choices"]]
