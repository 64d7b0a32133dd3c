"""API-key checks: ``Authorization: Bearer KEY`` or ``X-API-Key`` (and ``?api_key=`` on the WebSocket,
which browsers cannot give headers). No key configured: everything is open (loopback only). And the
WebSocket's ``Origin`` check: browsers apply no CORS to WebSockets."""
from __future__ import annotations

import hmac
from typing import Optional
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, WebSocket

from .config import ServeConfig


def _key_ok(config: ServeConfig, given: Optional[str]) -> bool:
    return config.api_key is None or (given is not None and hmac.compare_digest(given.encode(), config.api_key.encode()))


def request_key(headers, query=None) -> Optional[str]:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-api-key") or (query.get("api_key") if query is not None else None)


async def require_key(request: Request) -> None:
    if not _key_ok(request.app.state.service.config, request_key(request.headers)):
        raise HTTPException(401, "a valid API key is required (Authorization: Bearer KEY or X-API-Key)")


def websocket_key_ok(websocket: WebSocket) -> bool:
    return _key_ok(websocket.app.state.service.config, request_key(websocket.headers, websocket.query_params))


def websocket_origin_ok(websocket: WebSocket) -> bool:
    """Whether a browser page may open this stream: the service's own pages (the demo) and the origins of
    ``cors_origins`` may; any other site the user visits may not (it could otherwise use a service on the
    user's machine, since browsers apply no CORS to WebSockets). Clients that send no ``Origin`` pass."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    allowed = websocket.app.state.service.config.cors_origins
    if "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == (websocket.headers.get("host") or "").lower()
