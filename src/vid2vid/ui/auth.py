"""The credential a page served beyond the loopback asks of every client (loopback clients included).

Two kinds, either enough:

- a token made at start and printed in the page's URL (`http://HOST:PORT/?token=...`, as Jupyter
  does); the first request that carries it gets a cookie, so the page's own requests carry it after;
- fixed logins (`--auth USER:PASS`, repeatable, or `--auth-file FILE` with one USER:PASS a line),
  sent by the browser as HTTP Basic authentication after it asks for them.

A page served on the loopback only needs none (unless logins are given). Comparisons take constant
time (`hmac.compare_digest`).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from vid2vid.core.errors import BadInput

COOKIE = "vid2vid_token"


def parse_login(text: str, where: str = "--auth") -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise BadInput(f"{where} '{text.strip()}' is not USER:PASSWORD; give e.g. --auth me:a-long-password")
    return user, password


def read_logins(path: str | Path) -> list[tuple[str, str]]:
    """USER:PASS lines of an auth file (blank lines and # comments skipped)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"auth file {p} cannot be read ({exc}); give a text file with one USER:PASSWORD a line") \
            from exc
    logins = [parse_login(line, f"auth file {p}: line") for line in lines
              if line.strip() and not line.lstrip().startswith("#")]
    if not logins:
        raise BadInput(f"auth file {p} holds no USER:PASSWORD line")
    return logins


@dataclass
class Credential:
    """What a client must show: the token (None: no token) or one of the logins."""

    token: str | None = None
    logins: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def make(cls, exposed: bool, logins: Iterable[tuple[str, str]] = ()) -> Credential | None:
        """The credential of a page: a fresh token when it is served beyond the loopback, plus the logins;
        None when neither applies (a loopback page stays open)."""
        logins = list(logins)
        if not exposed and not logins:
            return None
        return cls(secrets.token_urlsafe(24) if exposed else None, logins)

    def _token_ok(self, value: str | None) -> bool:
        return bool(self.token and value and hmac.compare_digest(value.encode(), self.token.encode()))

    def _login_ok(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return any(hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(password.encode(), pw.encode())
                   for u, pw in self.logins)

    def check(self, headers: Mapping[str, str], query: str) -> tuple[bool, bool]:
        """(allowed, set the cookie) for a request's headers (lower-case names) and query string."""
        if self._token_ok(cookies(headers.get("cookie", "")).get(COOKIE)):
            return True, False
        if self._token_ok(next(iter(parse_qs(query).get("token", [])), None)):
            return True, True
        return self._login_ok(headers.get("authorization")), False

    def set_cookie(self) -> bytes:
        return f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()

    def refusal(self) -> tuple[str, list[tuple[bytes, bytes]]]:
        """The 401's one line and its extra headers (a login prompt when there are logins)."""
        ways = []
        if self.token:
            ways.append("open the URL with ?token=... that `vid2vid ui` printed at start")
        if self.logins:
            ways.append("log in with a user of --auth")
        headers = [(b"www-authenticate", b'Basic realm="vid2vid", charset="UTF-8"')] if self.logins else []
        return "this page needs a credential: " + " or ".join(ways), headers


def cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out
