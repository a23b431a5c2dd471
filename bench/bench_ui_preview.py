"""Does an open page slow the img2img stage? frames/s with and without a browser watching it.

The page is served (`ui.launch`, loopback), the img2img batch runs through the page's own runner
(as Generate starts it), once with no browser and once with headless Chromium showing tab 3, whose
live preview and strips poll every `tab_img2img.LIVE_S` seconds. The two alternate (`--rounds`
pairs) so a change in the machine's load hits both; the figures are frames/s of the stage and the
ratio page/no page.

    python bench/bench_ui_preview.py                       # tiny random model, 48 frames 128x128
    python bench/bench_ui_preview.py --frames 96 --size 192 --rounds 3

Needs gradio and playwright with Debian's chromium (`bash install.sh --ui --browser`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from bench_img2img import make_workspace  # one place that makes a bench workspace from frames
from machine import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(p, root: Path, ws_name: str, settings, browser, url: str) -> float:
    """One batch through the page's runner -> frames/s (a browser page on tab 3 while it runs, if given)."""
    from vid2vid.ui import actions

    view = None
    if browser is not None:
        view = browser.new_page(viewport={"width": 1280, "height": 1400})
        view.goto(url)
        view.get_by_role("tab", name="3: Successive img2img").click()
        view.wait_for_selector("#v2v-live")
    t0 = time.monotonic()
    task = p.runner.start("img2img", lambda job: actions.img2img(root, ws_name, settings, job, p.models))
    task.done.wait()
    seconds = time.monotonic() - t0
    if task.error is not None:
        raise task.error
    shown = view.locator("#v2v-live-painted img").count() if view is not None else 0
    if view is not None:
        view.close()
    return task.result["frames"] / seconds, shown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np
    import torch
    from playwright.sync_api import sync_playwright

    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.ui import form, launch

    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    root = tmp / "cache"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    frames = [np.roll(base, 3 * i, axis=1) for i in range(args.frames)]
    model = make_tiny_model(root / "tiny")
    port = _free_port()
    page = launch.launch(port=port, cache=root, block=False)
    p = page.v2v_page
    values = {"img2img.model": str(model), "img2img.prompt": "a square", "img2img.width": args.size,
              "img2img.height": args.size, "img2img.steps": args.steps}
    settings = form.settings_from_form(values, root, sections=("img2img",))
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    rates: dict[str, list[float]] = {"no page": [], "page open": []}
    make_workspace(root / "warm-up", frames[:2])      # loads the model into the page's cache, untimed
    _run(p, root, "warm-up", settings, None, "")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        for r in range(args.rounds):
            for label, b in (("no page", None), ("page open", browser)):
                name = f"ws-{r}-{label.replace(' ', '-')}"
                make_workspace(root / name, frames)
                p.current_ws = name          # the page opens the workspace the run is in
                rate, shown = _run(p, root, name, settings, b, f"http://127.0.0.1:{port}/")
                rates[label].append(rate)
                print(f"round {r + 1} {label:9s}: {rate:6.2f} frames/s" + (f" (live preview shown: {shown})" if b
                                                                            else ""), flush=True)
        browser.close()
    page.close()
    a, b = np.mean(rates["no page"]), np.mean(rates["page open"])
    print(f"img2img {args.frames} frames {args.size}x{args.size}, {args.steps} steps, tiny model, 2 threads")
    print(f"no page {a:.2f} frames/s, page open {b:.2f} frames/s: page/no page = {b / a:.3f} "
          f"(load average {os.getloadavg()[0]:.2f})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
