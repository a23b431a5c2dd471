"""Who may talk to the page: a Host check against DNS rebinding and an Origin check on uploads.

A page on another site can make the browser send requests to http://127.0.0.1:7860 once its
own name resolves there (DNS rebinding); such requests carry the other site's name in their
Host header. So the page answers only requests whose Host is one of its own names:

- loopback names by default (127.0.0.1, localhost, ::1);
- with `--host NAME` that name too; with `--host 0.0.0.0` (or ::) this machine's own names and
  addresses;
- plus every `--allowed-host HOST[:PORT]` (a port limits the name to that port).

Uploads (multipart POSTs, which store files in the cache) must also come from the page itself:
their Origin header must name one of those hosts. Everything else gets 403 with one line.
This is an ASGI middleware, given to gradio's FastAPI app through `launch(app_kwargs=...)`.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def split_host(value: str) -> tuple[str, int | None]:
    """'Name:7860' -> ('name', 7860); '[::1]:80' -> ('::1', 80); a name without a port -> (name, None)."""
    v = value.strip().lower()
    if v.startswith("["):
        name, _, rest = v[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif v.count(":") == 1:
        name, _, port = v.partition(":")
    else:                                     # a bare IPv6 address or a plain name
        name, port = v, ""
    return name.rstrip("."), int(port) if port.isdigit() else None


def machine_names() -> set[str]:
    """This machine's host names and addresses (what a client on the network may call it)."""
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for name in list(names):
        try:
            for info in socket.getaddrinfo(name, None):
                names.add(str(info[4][0]).lower())
        except OSError:
            continue
    return {n for n in names if n}


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> set[tuple[str, int | None]]:
    """The (name, port or None) pairs the page answers to when served on `host`."""
    allowed: set[tuple[str, int | None]] = {(n, None) for n in LOOPBACK_NAMES}
    h = host.strip().lower().strip("[]")
    if h in WILDCARD_HOSTS:
        allowed |= {(n, None) for n in machine_names()}
    else:
        allowed.add((h, None))
    for item in extra:
        allowed.add(split_host(item))
    return allowed


def host_ok(header: str | None, allowed: set[tuple[str, int | None]]) -> bool:
    if not header:
        return False
    name, port = split_host(header)
    try:
        name = str(ipaddress.ip_address(name))     # one spelling for addresses
    except ValueError:
        pass
    return (name, None) in allowed or (name, port) in allowed


def origin_ok(origin: str | None, allowed: set[tuple[str, int | None]]) -> bool:
    """An Origin header ('http://127.0.0.1:7860') names an allowed host."""
    if not origin or origin == "null":
        return False
    netloc = urlsplit(origin).netloc
    return bool(netloc) and host_ok(netloc, allowed)


class HostGuard:
    """ASGI middleware: 403 for a foreign Host header, and for an upload without the page's Origin."""

    def __init__(self, app, allowed: set[tuple[str, int | None]]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        reason = None
        if not host_ok(headers.get("host"), self.allowed):
            reason = "this page answers only to its own host names; start it with --allowed-host NAME to add one"
        elif scope["type"] == "http" and scope.get("method") == "POST" and \
                headers.get("content-type", "").startswith("multipart/") and \
                not origin_ok(headers.get("origin"), self.allowed):
            reason = "uploads are accepted only from the page itself"
        if reason is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (reason + "\n").encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
