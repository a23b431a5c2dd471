"""Serving the page: `vid2vid ui` (see `launch`).

    vid2vid ui [--host 127.0.0.1] [--port 7860] [--cache DIR] [--models DIR ...] [--auth USER:PASS]
"""
from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Iterable
from pathlib import Path

from vid2vid.core.errors import BadInput
from vid2vid.core.progress import stop_signals
from vid2vid.ui import paths

log = logging.getLogger("vid2vid.ui")

STOP_WAIT_S = 30.0


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def prepare_environment(root: Path) -> None:
    """Keep gradio's uploads and caches inside the cache folder, and gradio off the network."""
    gdir = root / paths.GRADIO_DIR
    os.environ["GRADIO_TEMP_DIR"] = str(gdir / "uploads")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(gdir / "examples")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def page_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def launch(host: str = "127.0.0.1", port: int = 7860, cache: str | Path = "vid2vid-cache",
           block: bool = True, allowed_hosts: Iterable[str] = (), models: Iterable[str | Path] = (),
           logins: Iterable[tuple[str, str]] = ()):
    """Serve the page on http://host:port; loopback only unless another host is asked for.

    Requests whose Host header is not one of the page's names are refused, and state-changing ones
    must come from the page itself (`ui.guard`); `allowed_hosts` adds names (HOST or HOST:PORT). A
    page served beyond the loopback asks every client for a credential (`ui.auth`): the token in
    the URL printed here, or one of `logins`. `models`: read-only model folders (`ui.modelroots`)."""
    root = paths.cache_root(cache)
    prepare_environment(root)
    try:
        import gradio  # noqa: F401
    except ImportError as exc:
        raise BadInput("the web UI needs gradio; install it with `pip install -e .[ui]` "
                       "(or `bash install.sh --ui`)") from exc
    from starlette.middleware import Middleware

    from vid2vid.ui.app import build
    from vid2vid.ui.auth import Credential
    from vid2vid.ui.guard import HostGuard
    from vid2vid.ui.guard import allowed_hosts as page_hosts

    credential = Credential.make(not is_loopback(host), logins)
    page = build(root, list(models))
    page.queue(default_concurrency_limit=4)
    page.v2v_credential = credential
    guard = Middleware(HostGuard, allowed=page_hosts(host, allowed_hosts), credential=credential)
    if block and threading.current_thread() is threading.main_thread():
        _stop_on_signals()
    roots = page.v2v_page.model_roots
    print(f"vid2vid web UI: {page_url(host, port, credential.token if credential else None)}  (cache folder "
          f"{root}{'; model folders ' + ', '.join(map(str, roots)) if roots else ''})", flush=True)
    result = page.launch(server_name=host, server_port=port, allowed_paths=[str(root)],
                         theme=page.v2v_theme, css=page.v2v_css, ssr_mode=False, show_error=False, quiet=True,
                         inbrowser=False, share=False, prevent_thread_lock=not block, footer_links=["settings"],
                         app_kwargs={"middleware": [guard]})
    if not block:
        return page                # serving in the background (tests): page.close() stops it
    # the server has stopped: let a running task finish its current frame
    page.v2v_runner.interrupt()
    task = page.v2v_runner.current
    if task is not None and not task.done.wait(STOP_WAIT_S):
        log.warning("%s did not stop within %s s; finished frames are kept", task.name, STOP_WAIT_S)
    return result


def _stop_on_signals() -> None:
    """Ctrl+C, Ctrl+Break or SIGTERM stops the server at once (the CLI's handlers wait for a frame that the
    server's main thread never works on)."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    for sig in stop_signals():
        signal.signal(sig, stop)
