"""Settings that survive: what a page action starts a stage with is saved in the workspace, opening the
workspace (or reloading the page) fills the fields from it, changed fields are named; extracting into a
workspace that later stages used asks first."""
from __future__ import annotations

import pytest

from conftest import make_workspace, moving_frames
from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline.runner import SETTINGS_FILE
from vid2vid.ui import actions, form, paths, restore


@pytest.fixture
def root(tmp_path):
    return paths.cache_root(tmp_path / "cache")


def test_a_stage_started_on_the_page_saves_its_settings_and_they_come_back(root):
    make_workspace(root / "ws", moving_frames(3, 16, 16))
    values = {"img2img.prompt": "a red fox", "img2img.width": 64.0, "img2img.height": 48.0, "img2img.steps": 7.0,
              "correct.motion_lowcut": 20.0}
    s = form.settings_from_form(values, root, sections=())
    actions.run_stage(root, "ws", "delta", s, Job())
    ws = Workspace(root / "ws")
    assert ws.path(SETTINGS_FILE).is_file()
    back = restore.load(ws)
    i = back.img2img
    assert (i.prompt, i.width, i.height, i.steps) == ("a red fox", 64, 48, 7)
    keys = list(values) + ["img2img.loras"]
    shown = dict(zip(keys, restore.field_values(back, keys)))
    assert shown["img2img.prompt"] == "a red fox" and shown["img2img.width"] == 64 and shown["img2img.loras"] == []
    assert restore.changed(values, back, root) == []
    assert restore.changed({**values, "img2img.prompt": "a blue fox", "img2img.steps": 8}, back, root) == \
        ["img2img.prompt", "img2img.steps"]
    text = restore.changed_text(["img2img.prompt"], True)
    assert form.label_of("img2img.prompt") in text and "Changed since the last run" in text


def test_a_settings_file_that_does_not_read_is_ignored_on_open_and_refused_on_load(root, tmp_path):
    make_workspace(root / "ws", moving_frames(2, 16, 16))
    ws = Workspace(root / "ws")
    ws.path(SETTINGS_FILE).write_text("[img2img]\nsteps = 'many'\n")
    assert restore.load(ws) is None
    with pytest.raises(BadInput, match="wrong type"):
        restore.read_file(ws.path(SETTINGS_FILE))


def _clip(tmp_path, root):
    from vid2vid.video.democlip import make_clip

    clip = make_clip(root / "uploads" / "clip.mp4", width=32, height=32, fps=8, seconds=1.0)
    return paths.relative(root, clip)


def test_extracting_again_into_a_used_workspace_asks_first(root, tmp_path):
    video = _clip(tmp_path, root)
    s = config.Settings()
    s.extract.fps = 4.0
    info = actions.extract(root, video, s, Job(), name="mine")
    assert info["workspace"] == "mine" and info["frames"] == 4
    actions.run_stage(root, "mine", "delta", s, Job())            # a later stage used the frames
    before = sorted(p.name for p in (root / "mine" / "frames").iterdir())
    s.extract.fps = 2.0
    with pytest.raises(BadInput, match="Replace the frames of a used workspace"):
        actions.extract(root, video, s, Job(), name="mine")
    assert sorted(p.name for p in (root / "mine" / "frames").iterdir()) == before          # nothing replaced
    assert restore.load(Workspace(root / "mine")).extract.fps == 4.0                       # nor its settings
    assert actions.extract(root, video, s, Job(), name="mine-2fps")["frames"] == 2        # a new workspace
    assert actions.extract(root, video, s, Job(), name="mine", replace_used=True)["frames"] == 2
    with pytest.raises(BadInput, match="may hold only"):
        actions.extract(root, video, s, Job(), name="../up")


def _two_lists() -> config.Settings:
    s = config.Settings()
    s.img2img.controlnet = [config.ControlNetSettings(model="cn/canny", control="canny", scale=0.6, low=50),
                            config.ControlNetSettings(model="cn/depth", control="depth", end=0.7),
                            config.ControlNetSettings(model="cn/third", control="softedge"),
                            config.ControlNetSettings(model="cn/fourth", control="lineart")]
    s.img2img.ip_adapter = [config.IPAdapterSettings(model="ip/sd15", reference="first-painted", scale=0.4)]
    return s


def test_the_slots_show_the_saved_lists_and_write_them_back_unchanged(root):
    from vid2vid.ui import controlnet_list, ip_adapter_section

    s = _two_lists()
    cn = controlnet_list.slot_values(s)
    per = 1 + len(controlnet_list.FIELDS)
    assert len(cn) == controlnet_list.SLOTS * per
    assert cn[0] is True and cn[1:4] == ["cn/canny", "canny", 0.6] and cn[per:per + 3] == [True, "cn/depth", "depth"]
    # the slots' values go back through the page's own writer to the same tables (the first SLOTS of them)
    back = [dict(t) for t in controlnet_list.list_items(controlnet_list.to_json(*cn), "ControlNet",
                                                         controlnet_list.FIELDS)]
    assert back == [{f: getattr(c, f) for f in controlnet_list.FIELDS}
                    for c in s.img2img.controlnet[:controlnet_list.SLOTS]]
    assert len(back) == controlnet_list.SLOTS < len(s.img2img.controlnet)
    ip = ip_adapter_section.slot_values(s)
    assert ip == [True, "ip/sd15", "first-painted", 0.4, 0.0, 1.0]
    empty = controlnet_list.slot_values(config.Settings())
    d = config.ControlNetSettings()
    assert empty[:per] == [False] + [getattr(d, f) for f in controlnet_list.FIELDS]
    assert ip_adapter_section.slot_values(config.Settings())[0] is False


def test_opening_a_workspace_refills_the_controlnet_and_ip_adapter_slots(root):
    pytest.importorskip("gradio")
    from vid2vid.ui import app, header

    make_workspace(root / "ws", moving_frames(2, 16, 16))
    s = _two_lists()
    Workspace(root / "ws").path(SETTINGS_FILE).write_text(config.dumps_toml(s))
    p = app.build(root).v2v_page
    keys = list(p.W)
    out = header.on_open(p, keys, "ws")
    assert len(out) == len(keys) + len(p.slot_widgets) + 1
    slots = out[len(keys):-1]
    assert slots == p.slot_values(s) and slots[0] is True and "cn/canny" in slots
    assert out[keys.index("img2img.controlnet")] == form.form_values(s, ["img2img.controlnet"])["img2img.controlnet"]
    nothing = header.on_open(p, keys, None)
    assert len(nothing) == len(out)
