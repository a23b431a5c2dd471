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


# ---------------------------------------------------------------- every write, whatever its spelling

def _api_client(host="127.0.0.1", credential=None):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def ok(request):
        return PlainTextResponse("ok")

    routes = [Route("/", ok), Route("/upload", ok, methods=["POST"]),
              Route("/gradio_api/call/interrupt", ok, methods=["POST"])]
    app = Starlette(routes=routes, middleware=[Middleware(guard.HostGuard, allowed=guard.allowed_hosts(host),
                                                          credential=credential)])
    return TestClient(app, base_url="http://127.0.0.1:7860")


@pytest.mark.parametrize("spelling", ["Multipart/form-data", "MULTIPART/FORM-DATA", "multiPart/Form-Data",
                                      " multipart/form-data"])
def test_an_upload_is_known_however_its_media_type_is_spelled(spelling):
    c = _api_client()
    body = b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.mp4\"\r\n\r\nxx\r\n--x--\r\n"
    headers = {"content-type": f"{spelling}; boundary=x"}
    assert c.post("/upload", content=body, headers={**headers, "origin": "http://evil.example"}).status_code == 403
    assert c.post("/upload", content=body, headers=headers).status_code == 403                 # no Origin
    assert c.post("/upload", content=body, headers={**headers, "origin": "http://127.0.0.1:7860"}).status_code == 200


def test_only_the_pages_own_origin_may_upload_not_another_local_port_or_scheme():
    c = _api_client()
    files = {"files": ("clip.mp4", b"\x00" * 16, "video/mp4")}
    for origin in ("http://localhost:7861", "http://127.0.0.1:8080", "https://127.0.0.1:7860", "http://127.0.0.1"):
        assert c.post("/upload", files=files, headers={"origin": origin}).status_code == 403, origin
    assert c.post("/upload", files=files, headers={"origin": "http://127.0.0.1:7860"}).status_code == 200


def test_a_cross_origin_api_call_is_refused_by_the_server():
    c = _api_client()
    call = "/gradio_api/call/interrupt"
    assert c.post(call, json={"data": []}, headers={"origin": "http://evil.example"}).status_code == 403
    assert c.post(call, json={"data": []}, headers={"origin": "http://localhost:7860"}).status_code == 403
    assert c.post(call, json={"data": []}, headers={"origin": "http://127.0.0.1:7860"}).status_code == 200
    assert c.post(call, json={"data": []}).status_code == 200        # a script (no Origin) keeps its API


def test_a_page_beyond_the_loopback_asks_every_client_for_the_credential():
    import base64

    from vid2vid.ui.auth import COOKIE, Credential

    cred = Credential.make(True, [("ann", "s3cret")])
    c = _api_client(credential=cred)
    r = c.get("/")                                           # a loopback client, no credential
    assert r.status_code == 401 and "token" in r.text and r.headers["www-authenticate"].startswith("Basic")
    assert c.post("/gradio_api/call/interrupt", json={"data": []}).status_code == 401
    assert c.get("/?token=wrong").status_code == 401
    r = c.get(f"/?token={cred.token}")
    assert r.status_code == 200 and f"{COOKIE}={cred.token}" in r.headers["set-cookie"]
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    assert c.post("/gradio_api/call/interrupt", json={"data": []}).status_code == 200    # the cookie now
    c.cookies.clear()
    good = base64.b64encode(b"ann:s3cret").decode()
    bad = base64.b64encode(b"ann:guess").decode()
    assert c.get("/", headers={"authorization": f"Basic {good}"}).status_code == 200
    assert c.get("/", headers={"authorization": f"Basic {bad}"}).status_code == 401
    assert Credential.make(False) is None                    # a loopback page stays open
    assert Credential.make(False, [("a", "b")]).token is None


def test_logins_from_the_command_line_and_a_file(tmp_path):
    from vid2vid.ui import auth

    assert auth.parse_login("ann:pa:ss") == ("ann", "pa:ss")
    with pytest.raises(BadInput, match="USER:PASSWORD"):
        auth.parse_login("ann")
    f = tmp_path / "logins"
    f.write_text("# team\nann:one\n\nbob:two\n")
    assert auth.read_logins(f) == [("ann", "one"), ("bob", "two")]
    f.write_text("# nobody\n")
    with pytest.raises(BadInput, match="no USER:PASSWORD"):
        auth.read_logins(f)
