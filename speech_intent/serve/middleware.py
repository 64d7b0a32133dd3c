"""ASGI layers in front of the routes, outermost first: the guard (host, API key and origin, checked
before any body is read), the body-size limit, and the count of requests on their way to the model
worker. Errors are the service's JSON: ``{"error": {"type": ..., "message": ...}}``."""
from __future__ import annotations

from typing import Any, Dict, Optional

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from .auth import host_ok, key_ok, origin_ok, request_key
from .batcher import ARRIVAL_KEY
from .options import ServeOptions

#: Methods a page of another site cannot use to change anything (no Origin check for them).
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def error_response(status: int, kind: str, message: str, headers: Optional[Dict[str, str]] = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status_code=status, headers=headers)


async def send_error(send, status: int, kind: str, message: str) -> None:
    """Answer an HTTP request with :func:`error_response` from a middleware, before any route."""
    await error_response(status, kind, message)({"type": "http"}, None, send)


def route_path(scope) -> str:
    """The path the routes see: the request's path without the ``root_path`` it is served under
    (``uvicorn --root-path``, or the service mounted in a larger app keep the prefix in ``path``)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] == "/":
        return path[len(root):]
    return path


# ---------------------------------------------------------------------------- guard
class RequestGuard:
    """ASGI middleware, before any route or body: refuses a request

    - whose ``Host`` is not a name of this service (:func:`~speech_intent.serve.auth.host_ok`): a page
      whose domain was re-pointed at 127.0.0.1 (DNS rebinding) would otherwise count as same-origin;
    - to ``/v1/*`` without the API key, when one is set (401, the body left unread);
    - to ``/v1/*`` with a method other than GET / HEAD / OPTIONS from a browser page of another origin
      (:func:`~speech_intent.serve.auth.origin_ok`; 403): without an API key any site the user visits
      could otherwise make the service work (CORS only keeps such a page from reading the answer).

    The WebSocket stream checks its own key and origin (browsers give no headers there); the host is
    checked here for it too (closed with 1008, which clients see as HTTP 403)."""

    def __init__(self, app, config: ServeOptions) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if not host_ok(self.config, headers.get("host")):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008, "reason": "unknown host"})
            return await send_error(send, 400, "InvalidHost",
                                    f"Host {headers.get('host')!r} is not a name of this service (see --allowed-host)")
        if scope["type"] == "http" and route_path(scope).startswith("/v1/") and scope.get("method") != "OPTIONS":
            if not key_ok(self.config, request_key(headers)):
                return await send_error(send, 401, "Unauthorized",
                                        "a valid API key is required (Authorization: Bearer KEY or X-API-Key)")
            if scope.get("method") not in SAFE_METHODS and not origin_ok(self.config, headers):
                return await send_error(send, 403, "Forbidden",
                                        f"origin {headers.get('origin')!r} may not call this service (see --cors-origin)")
        return await self.app(scope, receive, send)


# ---------------------------------------------------------------------------- body size
class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413, whether or not it declares its length."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        state = {"read": 0, "over": False, "started": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.limit:
                    state["over"] = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message):
            if state["over"]:
                return  # the 413 is sent instead
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._too_large(send)

    async def _too_large(self, send):
        await send_error(send, 413, "RequestTooLarge", f"request body over the {self.limit} byte limit")


# ---------------------------------------------------------------------------- arrivals
class CountArrivals:
    """ASGI middleware: each ``POST /v1/...`` is counted as on its way to the model worker from its first
    byte (the body is still being received and decoded) until it submits its job or ends, so the
    worker's batch waits for it only while it is coming (:class:`~speech_intent.serve.batcher.MicroBatcher`)."""

    def __init__(self, app, batcher) -> None:
        self.app, self.batcher = app, batcher

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not route_path(scope).startswith("/v1/"):
            return await self.app(scope, receive, send)
        arrival = scope[ARRIVAL_KEY] = self.batcher.arrival()
        try:
            await self.app(scope, receive, send)
        finally:
            arrival.done()
