"""Checks against drive-by requests from a browser (core layer, used by the server and the router).

A page the user visits can send requests to a server on the user's own machine: a ``text/plain`` POST
is a CORS "simple request" (no preflight), and DNS rebinding makes ``evil.example`` resolve to
127.0.0.1. Three checks close that door, before any body is read:

- **Host**: a server bound to a loopback address answers only to the loopback names (``127.0.0.1``,
  ``localhost``, ``::1``, any port) and to the names in ``serving.allowed_hosts``. A server bound
  elsewhere needs a bearer token (a browser cannot add one to a simple request), so it accepts any
  Host unless ``allowed_hosts`` names some.
- **Origin**: a request that carries an ``Origin`` header (every cross-site browser POST does) must
  come from an allowed host.
- **Content-Type**: a body must be ``application/json`` (415 otherwise), so a form or ``text/plain``
  POST never reaches the JSON parser.

:func:`bearer_refusal` is the bearer-token check both apps run after these (constant-time compare).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(headers: Mapping[str, str]) -> str:
    """The client's ``x-request-id`` when it is a safe id (letters, digits, ``._:-``, at most 64),
    else a new random one."""
    import uuid

    rid = headers.get("x-request-id", "")
    return rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex


async def read_body(request: Any, limit: int) -> tuple[bytes | None, str]:
    """``(body, "")``, or ``(None, why)`` for a body over `limit` bytes (the 413 detail): refused
    from the Content-Length first, else counted while it streams in (a chunked body)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None, (f"the body ({int(length)} bytes) exceeds the limit of {limit} bytes "
                      "(serving.max_body_mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None, f"the body exceeds the limit of {limit} bytes (serving.max_body_mb)"
        chunks.append(chunk)
    return b"".join(chunks), ""


def is_loopback(host: str) -> bool:
    """True for a loopback address or the name ``localhost``."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The Host names a server bound to `bind_host` answers to; None means any (token-protected)."""
    names = frozenset(h.strip().lower().strip("[]") for h in extra if h and h.strip())
    if is_loopback(bind_host):
        return LOOPBACK_NAMES | names | {bind_host.strip("[]").lower()}
    return names or None


def host_name(value: str) -> str:
    """The host part of a Host header value (no port, no brackets, lower case)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def refusal(headers: Mapping[str, str], hosts: frozenset[str] | None,
            body: bool) -> tuple[int, str] | None:
    """``(status, message)`` when a request must be refused before it is read, else None.

    `headers` are the request headers (lower-case names); `hosts` comes from :func:`allowed_hosts`;
    `body` is True for the endpoints that read a JSON body."""
    if hosts is not None:
        host = host_name(headers.get("host", ""))
        if host not in hosts:
            return 421, (f"Host '{host[:80]}' is not an allowed name for this server; allowed: "
                         f"{', '.join(sorted(hosts))} (add names with serving.allowed_hosts)")
        origin = headers.get("origin")
        if origin is not None:
            origin_host = (urlsplit(origin).hostname or origin).lower()
            if origin_host not in hosts:
                return 403, (f"requests from the web origin '{origin[:80]}' are not allowed (a "
                             f"browser page may not call this server; add its host to "
                             f"serving.allowed_hosts if it should)")
    if body:
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            shown = f"'{kind[:60]}'" if kind else "no Content-Type"
            return 415, f"the body must be sent as Content-Type: application/json, got {shown}"
    return None


BEARER_HEADERS = {"WWW-Authenticate": "Bearer"}
BEARER_MISSING = "missing or wrong bearer token (Authorization: Bearer ...)"


def bearer_refusal(headers: Mapping[str, str], token: str | None,
                   detail: str = BEARER_MISSING) -> tuple[int, str] | None:
    """``(401, detail)`` unless `token` is None (no token configured) or the ``Authorization`` header
    is ``Bearer <token>``, compared in constant time; send it with :data:`BEARER_HEADERS`."""
    if token is None:
        return None
    given = headers.get("authorization", "").encode()
    if hmac.compare_digest(given, f"Bearer {token}".encode()):
        return None
    return 401, detail
