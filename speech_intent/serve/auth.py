"""Who may use the service: the API key (``Authorization: Bearer KEY`` or ``X-API-Key``, and
``?api_key=`` on the WebSocket, which browsers cannot give headers; no key configured: open, loopback
only), the origin of browser pages (the service's own pages and ``cors_origins``), and the ``Host``
names the service answers to. :class:`~speech_intent.serve.middleware.RequestGuard` applies them to
HTTP requests before any body is read; the WebSocket route applies them on connect."""
from __future__ import annotations

import hmac
from typing import Mapping, Optional
from urllib.parse import urlsplit

from fastapi import WebSocket

from .options import ServeOptions, is_loopback

#: Names of this machine's loopback interface, always accepted as ``Host``.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def key_ok(config: ServeOptions, given: Optional[str]) -> bool:
    return config.api_key is None or (given is not None and hmac.compare_digest(given.encode(), config.api_key.encode()))


def request_key(headers: Mapping[str, str], query: Optional[Mapping[str, str]] = None) -> Optional[str]:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-api-key") or (query.get("api_key") if query is not None else None)


def origin_ok(config: ServeOptions, headers: Mapping[str, str]) -> bool:
    """Whether the browser page behind a request may use the service: the service's own pages (the demo)
    and the origins of ``cors_origins`` may, any other site may not. Clients that send no ``Origin``
    (not a browser page: curl, SDKs) pass."""
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in config.cors_origins or origin in config.cors_origins:
        return True
    return _same_host_and_port(origin, headers.get("host"))


def _same_host_and_port(origin: str, host: Optional[str]) -> bool:
    """Whether the page ``origin`` is at the ``host`` a request was sent to, a port left out being the
    origin scheme's default (browsers leave 80 / 443 out of both; a proxy may forward ``NAME:443``)."""
    if not host:
        return False
    default = {"http": 80, "https": 443}
    try:
        page, target = urlsplit(origin), urlsplit(f"//{host}")
        page_port = page.port or default.get(page.scheme)
        target_port = target.port or default.get(page.scheme)
    except ValueError:  # a port that is not a number, an unclosed "["
        return False
    return page.hostname is not None and page.hostname == target.hostname and page_port == target_port


def host_ok(config: ServeOptions, host: Optional[str]) -> bool:
    """Whether ``host`` (a request's ``Host`` header) names this service.

    Bound to loopback: the loopback names, the bound host and ``allowed_hosts``; any other name means a
    page of some site whose domain was pointed at this machine (DNS rebinding), which browsers treat as
    that site's own. Bound elsewhere (an API key is required there): any name, unless ``allowed_hosts``
    lists some (then those, the loopback names and the bound host). ``"*"`` in ``allowed_hosts``: any name."""
    allowed = config.allowed_hosts
    if "*" in allowed or (not allowed and not is_loopback(config.host)):
        return True
    try:
        name = urlsplit(f"//{host}").hostname if host else None
    except ValueError:  # e.g. an unclosed "[" in the header
        return False
    name = (name or "").rstrip(".")  # "localhost." is localhost written in full
    if not name:
        return False
    names = {config.host.lower(), *LOOPBACK_NAMES, *(h.lower().strip("[]").rstrip(".") for h in allowed)}
    return name in names or is_loopback(name)


def websocket_key_ok(websocket: WebSocket) -> bool:
    return key_ok(websocket.app.state.service.config, request_key(websocket.headers, websocket.query_params))


def websocket_origin_ok(websocket: WebSocket) -> bool:
    """:func:`origin_ok` for a stream: browsers apply no CORS to WebSockets, so without it any site the
    user visits could stream to a service on the user's machine."""
    return origin_ok(websocket.app.state.service.config, websocket.headers)
