"""The page's state without a browser: reattaching to the running task, Interrupt from a reloaded page,
the sigma preview's snapshot, strip counts, rates as decimals, unreadable uploads, Ray and the model cache."""
from __future__ import annotations

import threading

import pytest

pytest.importorskip("gradio")

from conftest import make_workspace, moving_frames  # noqa: E402
from vid2vid import config  # noqa: E402
from vid2vid.diffusion import schedules  # noqa: E402
from vid2vid.ui import actions, app, form, paths  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = paths.cache_root(tmp_path_factory.mktemp("cache"))
    page = app.build(root)
    return page, page.v2v_page


def _frames_task(p: app.Page, started: threading.Event, total: int = 4):
    """A task that reports one frame, then works until cancelled, as a stage does (Tracker checks cancel)."""

    def work(job):
        tr = job.tracker("img2img", total)
        tr.advance(1)
        started.set()
        while True:
            job.cancel.wait(0.05)
            tr.advance(0)                 # raises Interrupted once Interrupt was pressed

    return p.runner.start("img2img", work)


def test_a_reloaded_page_shows_the_running_task_and_its_interrupt_reports_the_stop(built):
    page, p = built
    assert next(p.reattach())[:2] == ["Ready.", app.progress_html(None)]  # nothing ran yet
    started = threading.Event()
    task = _frames_task(p, started)
    assert started.wait(10)
    reattached = p.reattach()                 # the page load of a reloaded page
    status, bar, *notes = next(reattached)
    assert status.startswith("[img2img] 1/4 frames") and "data-fraction='0.250'" in bar
    by_name = dict(zip(p.notes, notes))
    assert by_name["generate"] == status                       # beside Generate too, no other note touched
    assert all(v is not status and not isinstance(v, str) for k, v in by_name.items() if k != "generate")
    stopping = p.interrupt()                  # Interrupt pressed on that page
    first, _ = next(stopping)
    assert first.startswith("Interrupting img2img")
    *_, (last, bar_after) = list(stopping)    # waits until the task has ended
    assert task.done.is_set()
    assert last.startswith("Interrupted:") and "after Interrupt" in last, last
    assert "data-fraction=''" in bar_after
    *_, (followed, _, *_) = list(reattached)  # the reloaded page's follow loop ends on the same outcome
    assert followed == task.final() and followed.startswith("Interrupted:")
    assert next(p.reattach())[0] == task.final()           # a later load shows the last outcome
    assert next(p.interrupt())[0] == "Nothing is running."


def test_a_finished_task_shows_what_its_button_wrote(built):
    _, p = built
    task = p.runner.run("export", lambda job: {"output": "x"}, timeout=10)
    assert task.final() == "Done: export"            # the page that started it was gone before it ended
    task.outcome = "Done: export, ws/synth-img2img.mp4 written"
    assert next(p.reattach())[0] == task.outcome


def test_the_sigma_preview_is_one_event_over_a_snapshot_of_all_its_fields(built):
    page, p = built
    cfg = page.get_config_file()
    by_id = {c["id"]: c["props"].get("elem_id") for c in cfg["components"]}
    deps = [d for d in cfg["dependencies"] if any(by_id.get(o) == "v2v-sigma-plot" for o in d["outputs"])]
    change = [d for d in deps if all(t[1] == "change" for t in d["targets"])]
    assert len(change) == 1                                   # not one event per field (they raced)
    dep = change[0]
    wanted = {p.W[k]._id for k in app.SIGMA_KEYS}
    assert {t[0] for t in dep["targets"]} == wanted == set(dep["inputs"])
    assert dep["trigger_mode"] == "always_last"
    assert page.fns[dep["id"]].concurrency_limit == 1         # one at a time, in order


def test_the_sigma_preview_says_the_error_instead_of_old_curves(tmp_path):
    root = paths.cache_root(tmp_path)
    good = {"img2img.sampler": "euler", "img2img.schedule": "exponential", "img2img.steps": 4,
            "img2img.denoise": 0.75, "img2img.sigma_min": 0.1, "img2img.sigma_max": 1.2}
    fig, text = actions.sigma_views(root, good)
    expected = schedules.real_sigmas("exponential", 4, 0.75, 0.1, 1.2, None)
    assert text == schedules.format_sigmas(expected)
    assert any(ax.lines for ax in fig.axes)
    fig, text = actions.sigma_views(root, {**good, "img2img.sigma_max": 0.05})
    assert text.startswith("Error:") and form.label_of("img2img.sigma_max") in text and "--" not in text
    assert not any(ax.lines for ax in fig.axes)                # no curves left over
    shown = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "No preview" in shown and "is below" in shown


def test_the_few_step_samplers_change_the_preview(tmp_path):
    root = paths.cache_root(tmp_path)
    values = {"img2img.sampler": "lcm", "img2img.schedule": "default", "img2img.steps": 4,
              "img2img.denoise": 0.75, "img2img.sigma_min": 0.1, "img2img.sigma_max": 1.2}
    assert "img2img.sampler" in app.SIGMA_KEYS
    assert "at timesteps" in actions.sigma_views(root, values)[1]


def test_strips_show_the_real_count_and_page_through_it(tmp_path):
    from vid2vid.core.workspace import Workspace
    from vid2vid.ui import frames

    root = paths.cache_root(tmp_path)
    make_workspace(root / "ws", moving_frames(30, 16, 16))
    ws = Workspace(root / "ws")
    files, first, total = frames.strip_page(ws, "frames", 1)
    assert (first, total, len(files)) == (1, 30, frames.PAGE) and files[0].name == "00001.png"
    files, first, total = frames.strip_page(ws, "frames", 2)
    assert (first, len(files)) == (25, 6) and [f.name for f in files][-1] == "00030.png"
    assert frames.strip_page(ws, "frames", 99)[1] == 25 and frames.strip_page(ws, "frames", "x")[1] == 1
    assert frames.strip_label("Frames", 25, 6, 30) == "Frames: 25-30 of 30 frames"
    assert frames.strip_label("Frames", 1, 1, 1) == "Frames: 1 frame"
    p = app.Page(pytest.importorskip("gradio"), root)
    update = p.strip("ws", "frames", 2)
    assert update["label"] == "Frames: 25-30 of 30 frames" and len(update["value"]) == 6
    assert p.strip("ws", "img2img")["label"] == "img2img frames: 0 of 0 frames"


@pytest.mark.parametrize("fps,text", [("4/1", "4"), ("30000/1001", "29.97"), (12.5, "12.5"), (24.0, "24"),
                                      ("25", "25"), (None, "?")])
def test_rates_are_decimals(fps, text):
    assert form.fps_text(fps) == text


def test_an_unreadable_upload_is_removed_and_a_video_kept(tmp_path):
    from vid2vid.core.errors import BadInput
    from vid2vid.video.democlip import make_clip

    root = paths.cache_root(tmp_path / "cache")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 2048)
    with pytest.raises(BadInput) as info:
        actions.take_upload(root, broken, "broken.mp4")
    assert "was removed" in str(info.value)
    assert not (root / "uploads" / "broken.mp4").exists()
    clip = make_clip(tmp_path / "clip.mp4", width=32, height=32, fps=4, seconds=0.5)
    rel, probed = actions.take_upload(root, clip, "clip.mp4")
    assert rel == "uploads/clip.mp4" and (root / rel).read_bytes() == clip.read_bytes() and "32x32" in probed


def test_a_ray_run_does_not_get_the_pages_local_model(tmp_path):
    from vid2vid.core.progress import Job

    s = config.Settings()
    s.img2img.model = str(tmp_path / "no-such-model")      # loading it would fail: it is not even tried
    s.ray.enabled = True
    cache = actions.ModelCache()
    assert actions.preloaded_model(cache, s, Job()) is None and cache._model is None
    assert actions.preloaded_model(None, config.Settings(), Job()) is None


def test_the_ray_settings_are_on_the_page(built):
    _, p = built
    assert {k for k in config.all_keys() if k.startswith("ray.")} <= set(p.W)
    assert "ray" in app.SECTIONS["img2img"]                 # Generate reads (and validates) the Ray settings
    for key in ("ray.enabled", "ray.address", "ray.actors", "ray.threads"):
        assert form.label_of(key) != key                    # named by a label in the page's messages


def test_frame_numbers_are_checked_by_the_handlers_not_by_gradio(built):
    """A gradio `minimum` answers a bad number with a toast only; the handlers' messages go beside the button."""
    page, _ = built
    cfg = page.get_config_file()
    for c in cfg["components"]:
        if c["props"].get("elem_id") in ("v2v-debug-frame", "v2v-fdc-frame", "v2v-grid-frame"):
            assert c["props"].get("minimum") is None, c["props"]["elem_id"]
