"""The served page: beyond the loopback every client needs the credential, loopback clients included; a
state-changing call from another origin is refused by the server itself; the Interrupt button keeps its
API name `interrupt`."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

pytest.importorskip("gradio")

from vid2vid.ui import launch  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = _free_port()
    page = launch.launch(host="0.0.0.0", port=port, cache=tmp_path_factory.mktemp("cache"), block=False)
    try:
        yield page, f"http://127.0.0.1:{port}"
    finally:
        page.close()


def test_beyond_the_loopback_a_loopback_client_without_the_credential_is_refused(served):
    page, url = served
    token = page.v2v_credential.token
    assert token and launch.page_url("0.0.0.0", 7860, token).endswith(f"/?token={token}")
    assert _request(url + "/")[0] == 401
    assert _request(url + "/gradio_api/call/interrupt", {"data": []})[0] == 401
    status, text = _request(f"{url}/?token={token}")
    assert status == 200 and "<html" in text.lower()


def test_a_cross_origin_call_is_refused_and_a_script_may_interrupt(served):
    page, url = served
    cookie = {"cookie": f"vid2vid_token={page.v2v_credential.token}"}
    call = url + "/gradio_api/call/interrupt"
    assert _request(call, {"data": []}, {**cookie, "origin": "http://evil.example"})[0] == 403
    assert _request(call, {"data": []}, {**cookie, "origin": "http://localhost:1"})[0] == 403
    status, text = _request(call, {"data": []}, cookie)                # a script: no Origin
    assert status == 200 and "event_id" in text
    status, text = _request(f"{call}/{json.loads(text)['event_id']}", headers=cookie)
    assert status == 200 and "Nothing is running." in text


def test_loopback_serving_stays_open():
    assert launch.is_loopback("127.0.0.1") and launch.is_loopback("::1") and launch.is_loopback("localhost")
    assert not launch.is_loopback("0.0.0.0") and not launch.is_loopback("192.168.1.5")
