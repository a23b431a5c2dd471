"""Who may talk to the page: a Host check against DNS rebinding, an Origin check on everything that
changes state, and the credential of a page served beyond the loopback (`auth`).

A page on another site can make the browser send requests to http://127.0.0.1:7860 once its
own name resolves there (DNS rebinding); such requests carry the other site's name in their
Host header. So the page answers only requests whose Host is one of its own names:

- loopback names by default (127.0.0.1, localhost, ::1);
- with `--host NAME` that name too; with `--host 0.0.0.0` (or ::) this machine's own names and
  addresses;
- plus every `--allowed-host HOST[:PORT]` (a port limits the name to that port).

A request that may change anything (every method but GET and HEAD: uploads, `/gradio_api/call/*`,
the queue) is refused when it carries an Origin other than the page's own (scheme, host and port
of the request itself); an upload (a multipart body, whatever the spelling of its media type) must
carry the page's Origin. Scripts that send no Origin may call the API (`interrupt` included).
Refusals get 403 with one line; a missing credential 401.
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


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# gradio's launch calls this once over the loopback to start the app; it does nothing after that first call
# and answers no data, so it needs no credential (else a page beyond the loopback could not start).
OPEN_PATHS = ("/gradio_api/startup-events",)
SAFE_METHODS = ("GET", "HEAD")


def _origin_of(scheme: str, netloc: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; addresses in one spelling."""
    name, port = split_host(netloc)
    try:
        name = str(ipaddress.ip_address(name))
    except ValueError:
        pass
    scheme = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme.lower())
    return scheme, name, port if port is not None else DEFAULT_PORTS.get(scheme)


def origin_ok(origin: str | None, scheme: str, host: str | None,
              extra: set[tuple[str, int | None]] = frozenset()) -> bool:  # type: ignore[assignment]
    """The Origin header names the page itself: the scheme, host and port the request was sent to (its
    Host header), or an `--allowed-host HOST:PORT` given with its port (a proxy in front of the page)."""
    if not origin or origin == "null" or not host:
        return False
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.netloc:
        return False
    mine = _origin_of(parts.scheme, parts.netloc)
    if mine == _origin_of(scheme, host):
        return True
    return (mine[1], mine[2]) in extra


def is_multipart(content_type: str | None) -> bool:
    """A form upload, however its media type is spelled (media types are case-insensitive, RFC 9110)."""
    return (content_type or "").strip().lower().startswith("multipart/")


class HostGuard:
    """ASGI middleware: 403 for a foreign Host header, for a state-changing request from a foreign Origin
    and for an upload without the page's own Origin; 401 without the credential (`auth.Credential`)
    where one is asked."""

    def __init__(self, app, allowed: set[tuple[str, int | None]], credential=None):
        self.app, self.allowed, self.credential = app, allowed, credential
        self.extra = {a for a in allowed if a[1] is not None}

    def refusal(self, scope, headers: dict[str, str]) -> str | None:
        """Why a request is refused with 403 (None: it is not)."""
        if not host_ok(headers.get("host"), self.allowed):
            return "this page answers only to its own host names; start it with --allowed-host NAME to add one"
        origin = headers.get("origin")
        scheme = scope.get("scheme", "http")
        same = origin_ok(origin, scheme, headers.get("host"), self.extra)
        if scope["type"] == "websocket":
            return None if origin is None or same else "connections are accepted only from the page itself"
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        if origin is not None and not same:
            return "requests that change anything are accepted only from the page itself"
        if is_multipart(headers.get("content-type")) and not same:
            return "uploads are accepted only from the page itself"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        reason, status, extra_headers = self.refusal(scope, headers), 403, []
        set_cookie = False
        if reason is None and self.credential is not None and \
                not (scope.get("path") in OPEN_PATHS and scope.get("method") == "GET"):
            allowed, set_cookie = self.credential.check(headers, scope.get("query_string", b"").decode("latin-1"))
            if not allowed:
                (reason, extra_headers), status = self.credential.refusal(), 401
        if reason is None:
            if not set_cookie:
                return await self.app(scope, receive, send)
            return await self.app(scope, receive, self._with_cookie(send))
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (reason + "\n").encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *extra_headers]})
        await send({"type": "http.response.body", "body": body})

    def _with_cookie(self, send):
        async def sending(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"set-cookie", self.credential.set_cookie())]}
            await send(message)
        return sending
