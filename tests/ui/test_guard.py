"""The page's own rules: only its host names (no DNS rebinding), uploads only from the page,
and no symbolic link on the way out of the cache folder."""
from __future__ import annotations

import numpy as np
import pytest

from vid2vid.core.errors import BadInput
from vid2vid.ui import guard, paths

pytest.importorskip("starlette")


def _client(host="127.0.0.1", extra=()):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def ok(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", ok), Route("/upload", ok, methods=["POST"])],
                    middleware=[Middleware(guard.HostGuard, allowed=guard.allowed_hosts(host, extra))])
    return TestClient(app)


def test_foreign_host_is_refused_and_loopback_names_answer():
    c = _client()
    assert c.get("/", headers={"host": "127.0.0.1:7861"}).status_code == 200
    assert c.get("/", headers={"host": "localhost:7861"}).status_code == 200
    assert c.get("/", headers={"host": "[::1]:7861"}).status_code == 200
    r = c.get("/", headers={"host": "evil.example:7861", "origin": "http://evil.example:7861"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    assert "--allowed-host" in r.text


def test_allowed_host_and_served_name():
    c = _client(host="studio.lan", extra=["proxy.example:443"])
    assert c.get("/", headers={"host": "studio.lan:7860"}).status_code == 200
    assert c.get("/", headers={"host": "proxy.example:443"}).status_code == 200
    assert c.get("/", headers={"host": "proxy.example:8080"}).status_code == 403
    assert guard.split_host("[::1]:80") == ("::1", 80) and guard.split_host("Name.:7860") == ("name", 7860)


def test_uploads_need_the_pages_own_origin():
    c = _client()
    files = {"files": ("clip.mp4", b"\x00" * 16, "video/mp4")}
    host = {"host": "127.0.0.1:7860"}
    assert c.post("/upload", files=files, headers={**host, "origin": "http://127.0.0.1:7860"}).status_code == 200
    assert c.post("/upload", files=files, headers={**host, "origin": "http://evil.example"}).status_code == 403
    assert c.post("/upload", files=files, headers=host).status_code == 403          # no Origin at all
    assert c.post("/upload", json={"x": 1}, headers=host).status_code == 200         # not an upload


def test_workspace_subfolder_linked_outside_is_refused(tmp_path):
    from conftest import make_workspace, moving_frames
    from vid2vid.core.progress import Job
    from vid2vid.ui import actions
    from vid2vid.ui.form import settings_from_form

    root = paths.cache_root(tmp_path / "cache")
    outside = tmp_path / "outside"
    outside.mkdir()
    make_workspace(root / "w", moving_frames(4))
    (root / "w" / "framedelta").symlink_to(outside, target_is_directory=True)
    s = settings_from_form({}, root)
    with pytest.raises(BadInput, match="symbolic link"):
        actions.run_stage(root, "w", "delta", s, Job())
    assert list(outside.iterdir()) == []
    # a link deeper down is found too, and so is a linked workspace folder itself
    (root / "w" / "framedelta").unlink()
    (root / "w" / "control").mkdir()
    (root / "w" / "control" / "1-canny").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BadInput, match="control/1-canny"):
        paths.workspace(root, "w")
    (root / "w2").symlink_to(root / "w", target_is_directory=True)
    with pytest.raises(BadInput):
        paths.workspace(root, "w2")
    assert np.asarray(list(outside.iterdir())).size == 0
