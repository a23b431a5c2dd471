"""The web UI in a real browser: upload -> extract -> single and batch img2img (tiny model) -> export.

Starts `vid2vid ui` on a free loopback port with a fresh cache folder and a model folder in the A1111
layout (`--models`: the tiny model is listed from it, runs, and nothing is written under it), drives
Debian's chromium
through Playwright (never a downloaded browser), and checks what the page shows against files
and formulas computed here. Leaves a screenshot in artifacts/ui.png.
"""
from __future__ import annotations

import io
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
                 if p and os.path.exists(p)), None)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "ui.png"


def _requirements() -> str | None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        return "gradio is not installed (pip install -e .[ui])"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[dev])"
    if CHROMIUM is None:
        return "no chromium binary (apt-get install chromium, or bash install.sh --browser)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"vid2vid ui exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    pytest.fail(f"vid2vid ui did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    import torch

    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.video.democlip import make_clip

    base = tmp_path_factory.mktemp("ui")
    cache = base / "cache"
    cache.mkdir()
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    # the server runs in a temp folder: a relative PYTHONPATH (src) would silently load another checkout
    env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                        if p)
    log = base / "server.log"
    webui = base / "webui"            # an A1111 install folder, read-only for the page
    model = webui / "models" / "Stable-diffusion" / "tiny"
    # the model is written before the server starts: the page lists the model folder when it is built
    torch.set_num_threads(1)
    make_tiny_model(model)
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "vid2vid", "ui", "--host", "127.0.0.1", "--port", str(port),
                                 "--cache", str(cache), "--models", str(webui)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=base)
    try:
        # while the server starts: a 1 s clip outside the cache (it gets uploaded) and a tiny model inside it
        outside = base / "outside"
        clip = make_clip(outside / "my clip; rm -rf.mp4", width=64, height=64, fps=8, seconds=1.0)
        (outside / "secret.txt").write_text("not for the page")
        make_tiny_model(cache / "tiny")
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc, log, 90)
        yield {"url": url, "cache": cache.resolve(), "clip": clip, "outside": outside, "log": log,
               "webui": webui.resolve(), "model": model.resolve()}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _status(page) -> str:
    return page.locator("#v2v-status textarea").input_value()


def _click_and_wait(page, button: str, done: str, timeout: float = 60) -> str:
    """Click, then wait until the status line starts with `done` (or shows a new error)."""
    before = _status(page)
    page.click(button)
    page.wait_for_function(
        """([done, before]) => { const v = document.querySelector('#v2v-status textarea').value;
            return v.startsWith(done) || ((v.startsWith('Error') || v.startsWith('Failed')) && v !== before); }""",
        arg=[done, before], timeout=timeout * 1000)
    text = _status(page)
    assert text.startswith(done), text
    assert "Traceback" not in text
    return text


def _note(page, name: str) -> str:
    return page.locator(f"#v2v-{name}-note").locator("textarea, input").first.input_value()


def _in_view(page, selector: str) -> bool:
    return page.evaluate("""(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight; }""", selector)


def _model(page, value: str) -> None:
    """Type a model into the model field (a dropdown that takes any typed path or hub id)."""
    box = page.locator("#v2v-model input")
    box.fill(value)
    box.press("Enter")
    box.blur()


def _snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _img2img_settings(page, steps: int) -> None:
    """Tab 3 with the test's settings."""
    page.get_by_role("tab", name="3: Successive img2img").click()
    _model(page, "tiny")
    page.locator("#v2v-prompt textarea").fill("a yellow square")
    _fill_number(page, "#v2v-width input", 64)
    _fill_number(page, "#v2v-height input", 64)
    _fill_number(page, "#v2v-steps input[type=number]", steps)


def _fill_number(page, selector: str, value) -> None:
    box = page.locator(selector)
    box.fill(str(value))
    box.blur()


def _image_at(page, src: str) -> np.ndarray:
    from PIL import Image

    resp = page.request.get(src)
    assert resp.ok, src
    return np.asarray(Image.open(io.BytesIO(resp.body())).convert("RGB"))


def _sigmas_in(text: str) -> list[float]:
    inside = text[text.index("[") + 1:text.index("]")]
    return [float(v) for v in inside.split(",")]


def test_ui_in_browser(server):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    cache = server["cache"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(server["url"])
            page.wait_for_selector("#v2v-status textarea")
            assert _status(page) == "Ready."
            assert page.locator("#v2v-cache textarea").input_value() == str(cache)

            # 1. upload: the file lands in the cache under a sanitised name and is probed
            page.locator("#v2v-upload input[type=file]").set_input_files(str(server["clip"]))
            page.wait_for_function("document.querySelector('#v2v-video textarea').value !== ''", timeout=30000)
            assert page.locator("#v2v-video textarea").input_value() == "uploads/my_clip_rm_-rf.mp4"
            assert (cache / "uploads" / "my_clip_rm_-rf.mp4").read_bytes() == server["clip"].read_bytes()
            page.wait_for_function("document.querySelector('#v2v-probe textarea').value.includes('64x64')",
                                   timeout=30000)

            # paths outside the cache folder are refused, through the page and through gradio's file route
            page.locator("#v2v-video textarea").fill("../outside/my clip; rm -rf.mp4")
            text = _click_and_wait(page, "#v2v-probe-btn", "Error:")
            assert "outside the cache folder" in text
            assert _http_status(f"{server['url']}gradio_api/file={server['outside'] / 'secret.txt'}") == 403
            assert _http_status(f"{server['url']}gradio_api/file=/etc/passwd") == 403

            # 2. extract at 4 fps: 4 frames, shown in the strip
            page.locator("#v2v-video textarea").fill("uploads/my_clip_rm_-rf.mp4")
            _fill_number(page, "#v2v-fps input", 4)
            text = _click_and_wait(page, "#v2v-extract-btn", "Done: extract")
            assert "4 frames" in text
            ws_name = text.rsplit(" ", 1)[-1]
            ws = cache / ws_name
            assert len(list((ws / "frames").glob("*.png"))) == 4
            page.wait_for_function("document.querySelectorAll('#v2v-frames-strip img').length === 4", timeout=20000)
            assert page.locator("#v2v-progress").get_attribute("data-fraction") == "1.000"   # the bar is full
            page.click("#v2v-interrupt")                      # nothing runs now: the page says so
            page.wait_for_function("document.querySelector('#v2v-status textarea').value === 'Nothing is running.'",
                                   timeout=10000)

            # 3. img2img settings; the live sigma preview follows the steps widget
            page.get_by_role("tab", name="3: Successive img2img").click()
            _model(page, "no-such-model")
            page.locator("#v2v-prompt textarea").fill("a yellow square")
            _fill_number(page, "#v2v-width input", 64)
            _fill_number(page, "#v2v-height input", 64)
            _fill_number(page, "#v2v-steps input[type=number]", 4)
            page.wait_for_function(
                "document.querySelector('#v2v-sigma-preview textarea').value.endsWith('(4 steps)')", timeout=20000)
            assert page.locator("#v2v-sigma-plot img").count() == 1
            # exponential schedule, 4 steps, sigma 0.1..1.2, denoise 0.75: t_enc = 3, all 4 steps run
            expected = [1.2 * (0.1 / 1.2) ** (i / 3) for i in range(4)] + [0.0]
            shown = _sigmas_in(page.locator("#v2v-sigma-preview textarea").input_value())
            assert np.allclose(shown, expected, atol=1e-4)

            # a model that is not there: a readable one-line error, no traceback
            page.get_by_label("Single frame (debug)").check()
            _fill_number(page, "#v2v-debug-frame input", 2)
            text = _click_and_wait(page, "#v2v-generate-btn", "Error:")
            assert "no-such-model" in text
            assert "--" not in text and "vid2vid " not in text            # the page's words, not the CLI's
            # ... shown beside the button too, and the status line stays in view down at the Generate button
            assert _note(page, "generate") == text
            page.locator("#v2v-generate-btn").scroll_into_view_if_needed()
            assert _in_view(page, "#v2v-status") and _in_view(page, "#v2v-generate-btn")

            # single (debug) frame 2: the image and the real sigmas the sampler used
            _model(page, "tiny")
            _click_and_wait(page, "#v2v-generate-btn", "Done: img2img single frame 2", timeout=90)
            # debug frame 0: a message beside Generate (no toast), and the status line drops the old "Done:"
            _fill_number(page, "#v2v-debug-frame input", 0)
            text = _click_and_wait(page, "#v2v-generate-btn", "Error:")
            assert "debug frame 0" in text and _note(page, "generate") == text
            _fill_number(page, "#v2v-debug-frame input", 2)
            _click_and_wait(page, "#v2v-generate-btn", "Done: img2img single frame 2", timeout=90)
            assert np.allclose(_sigmas_in(page.locator("#v2v-real-sigmas textarea").input_value()), expected,
                               atol=1e-4)
            debug_file = ws / "img2img.debug" / "00002.png"
            page.wait_for_selector("#v2v-single-image img", timeout=20000)
            src = page.locator("#v2v-single-image img").get_attribute("src")
            assert np.array_equal(_image_at(page, src), np.asarray(Image.open(debug_file).convert("RGB")))

            # batch, interrupted: slow settings (150 steps), Interrupt once the first frame is written; the
            # model is picked from the list of the model folder (--models), not typed
            page.get_by_label("Batch: every frame").check()
            page.locator("#v2v-model input").click()
            listed = page.get_by_role("option", name="Stable-diffusion/tiny (webui)")
            listed.wait_for(timeout=10000)
            listed.click()
            assert page.locator("#v2v-model input").input_value() == "Stable-diffusion/tiny (webui)"
            before_root = _snapshot(server["webui"])
            _fill_number(page, "#v2v-steps input[type=number]", 150)
            _fill_number(page, "#v2v-width input", 384)          # slower still: the reload must find it running
            _fill_number(page, "#v2v-height input", 384)
            page.wait_for_function(
                "document.querySelector('#v2v-sigma-preview textarea').value.endsWith('(113 steps)')", timeout=20000)
            page.click("#v2v-generate-btn")
            # the live preview: the first painted frame beside its source while the batch runs
            page.wait_for_selector("#v2v-live-painted img", timeout=120000)
            first_live = page.locator("#v2v-live-painted img").get_attribute("src")
            assert page.locator("#v2v-live-source img").count() == 1
            page.wait_for_function("/^\\[img2img\\] [123]\\/4/"
                                   ".test(document.querySelector('#v2v-status textarea').value)", timeout=90000)
            # a reload during the run: the page finds the running job (progress, not "Ready." and an empty
            # bar), its live preview moves on to the next frame, and its Interrupt stops the job and says so
            # (not stuck at "Interrupting ..."); the fields keep the prompt, the model and the size the run
            # started with (the workspace's saved settings)
            page.reload()
            page.wait_for_selector("#v2v-status textarea")
            page.wait_for_function("/^\\[img2img\\] [0-9]+\\/4/"
                                   ".test(document.querySelector('#v2v-status textarea').value)", timeout=30000)
            assert page.locator("#v2v-progress").get_attribute("data-fraction") not in ("", None)
            page.get_by_role("tab", name="3: Successive img2img").click()
            page.wait_for_function("""(first) => { const i = document.querySelector('#v2v-live-painted img');
                return i && i.getAttribute('src') !== first; }""", arg=first_live, timeout=120000)
            assert "painted" in page.locator("#v2v-live-caption").inner_text()
            page.click("#v2v-interrupt")          # the frame being painted is finished first (384x384, 150 steps)
            page.wait_for_function("document.querySelector('#v2v-status textarea').value.startsWith('Interrupted:')",
                                   timeout=300000)
            assert "after Interrupt" in _status(page), _status(page)
            page.get_by_role("tab", name="3: Successive img2img").click()
            page.wait_for_function("document.querySelector('#v2v-prompt textarea').value === 'a yellow square'",
                                   timeout=20000)
            assert page.locator("#v2v-width input").input_value() == "384"
            assert page.locator("#v2v-height input").input_value() == "384"
            assert page.locator("#v2v-model input").input_value() == "Stable-diffusion/tiny (webui)"

            kept = len(list((ws / "img2img").glob("0*.png")))
            assert 1 <= kept < 4                              # stopped early; finished frames kept
            assert _snapshot(server["webui"]) == before_root  # read, never written
            from vid2vid.pipeline.saved import saved_settings

            assert saved_settings(ws).img2img.model == str(server["model"])      # the run used the listed model
            # after the interrupt the strip shows the frames that exist
            page.wait_for_function(f"document.querySelectorAll('#v2v-img2img-strip img').length === {kept}",
                                   timeout=20000)

            # batch: every frame (other settings: the interrupted frames are replaced)
            _img2img_settings(page, 4)
            page.wait_for_function(
                "document.querySelector('#v2v-sigma-preview textarea').value.endsWith('(4 steps)')", timeout=20000)
            text = _click_and_wait(page, "#v2v-generate-btn", "Done: img2img batch", timeout=90)
            assert "4 frames" in text
            made = sorted(p.name for p in (ws / "img2img").glob("*.png"))
            assert made == ["00001.png", "00002.png", "00003.png", "00004.png"]
            page.wait_for_function("document.querySelectorAll('#v2v-img2img-strip img').length === 4", timeout=20000)
            assert page.locator("#v2v-img2img-strip").get_by_text("img2img frames: 4 frames").count() >= 1
            first = page.locator("#v2v-img2img-strip img").first.get_attribute("src")
            assert _image_at(page, first).shape == (64, 64, 3)

            # the FDC debugger sheet of frame 2
            _click_and_wait(page, "#v2v-fdc-btn", "Done: FDC debugger sheet of frame 2")
            page.wait_for_selector("#v2v-fdc img", timeout=20000)

            # 5. export the generated frames as WebM and play it in the page
            page.get_by_role("tab", name="5: Export").click()
            page.get_by_label("webm").check()
            text = _click_and_wait(page, "#v2v-export-btn", "Done: export")
            out = ws / "synth-img2img.webm"
            assert out.is_file() and f"{ws_name}/synth-img2img.webm" in text
            info = page.locator("#v2v-export-info textarea").input_value()
            assert " 4 fps" in info and "/1 fps" not in info, info          # a decimal rate, not "4/1"
            page.wait_for_selector("#v2v-result-video video", timeout=20000)
            meta = page.evaluate("""async () => {
                const v = document.querySelector('#v2v-result-video video');
                if (v.readyState < 1) await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
                return {duration: v.duration, width: v.videoWidth, height: v.videoHeight, error: v.error}; }""")
            assert meta["error"] is None
            assert (meta["width"], meta["height"]) == (64, 64)
            assert math.isclose(meta["duration"], 1.0, abs_tol=0.1)   # lasts as long as the 1 s source
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT.with_name("ui-export.png")), full_page=True)

            page.get_by_role("tab", name="3: Successive img2img").click()
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            browser.close()
    log = server["log"].read_text()
    assert "Traceback" not in log, log[-3000:]     # bad input is a message, not a crash
