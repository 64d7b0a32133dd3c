"""Reaching a Ray cluster: its address, its token authentication, and errors that say what to do.

Ray (2.52 and later) can require a token on every connection (``RAY_AUTH_MODE=token``). A cluster
started with ``ray start --head`` requires one when this user already has a token: Ray keeps it in
``~/.ray/auth_token`` (a local ``ray.init()`` writes it there the first time; ``RAY_AUTH_TOKEN`` or
``RAY_AUTH_TOKEN_PATH`` take precedence). A driver uses the token only in token mode. Ray itself
turns token mode on for ``address="auto"`` (a cluster on this machine) when a token is there, but
never for an explicit address, so ``HOST:PORT`` of the very same cluster failed after a 20 s wait.

:func:`connect` asks the cluster first (one gRPC call, without a token; milliseconds):

- nothing answers: a :class:`DistributedError` at once (Ray would retry for minutes);
- a token is required and this process is not in token mode: for an address of this machine, the
  token Ray's own rule for local clusters would use (same user, same token file) is used; for
  another machine's address the token is never sent unasked (as Ray does), and the error names
  ``RAY_AUTH_MODE=token`` and where the token goes (``ray get-auth-token`` on the head node prints it).

Authentication is never turned off on the user's behalf. ``ray://HOST:PORT`` (Ray Client) gets the
same treatment through its client server's port.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
from typing import Optional, Tuple

from ..errors import DistributedError

logger = logging.getLogger(__name__)

AUTH_MODE_VAR = "RAY_AUTH_MODE"
#: how a driver gives Ray the cluster's token (Ray's documented sources, highest precedence first)
TOKEN_HELP = ("set RAY_AUTH_MODE=token and give this process the cluster's token: RAY_AUTH_TOKEN=<token>, "
              "RAY_AUTH_TOKEN_PATH=<file>, or the file ~/.ray/auth_token (`ray get-auth-token` on the cluster's "
              "head node prints it)")
#: a method each server answers (empty request = a valid empty message); a token check comes first
_GCS_PROBE = "/ray.rpc.NodeInfoGcsService/GetClusterId"
_CLIENT_PROBE = "/ray.rpc.RayletDriver/ClusterInfo"
PROBE_TIMEOUT_S = 5.0


def split_address(address: str) -> Tuple[bool, str, int]:
    """``(ray_client, host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``."""
    client = address.startswith("ray://")
    rest = address[len("ray://"):] if client else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DistributedError(f"Ray address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    return client, host.strip("[]"), int(port)


def is_this_machine(host: str) -> bool:
    """Whether ``host`` is an address of this machine (loopback, or an address a socket can bind)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    for family, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        if ipaddress.ip_address(ip.split("%")[0]).is_loopback:
            return True
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind((ip, 0))
            return True
        except OSError:
            continue
    return False


def probe(host: str, port: int, client: bool, timeout: float = PROBE_TIMEOUT_S) -> Optional[str]:
    """Ask the cluster without a token: ``"open"``, ``"token"`` (a token is required), ``"down"``
    (nothing answers) or ``None`` (cannot tell: TLS, no grpc, a timeout)."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return None
    try:
        import grpc
    except ImportError:
        return None
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary(_CLIENT_PROBE if client else _GCS_PROBE,
                                   request_serializer=lambda _: b"", response_deserializer=lambda data: data)
        call(None, timeout=timeout)
        return "open"
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return "token"
        if code == grpc.StatusCode.UNAVAILABLE:
            return "down"
        return None if code == grpc.StatusCode.DEADLINE_EXCEEDED else "open"
    finally:
        channel.close()


def token_mode() -> bool:
    return os.environ.get(AUTH_MODE_VAR, "").lower() == "token"


def use_local_token() -> bool:
    """Token mode with this user's token, as Ray does for a local cluster (``address="auto"``);
    ``False`` when no token is found or ``RAY_AUTH_MODE`` is set (then it is respected)."""
    if os.environ.get(AUTH_MODE_VAR) is not None:
        return token_mode()
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return False
    quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warning speaks of starting a cluster, not of a driver
    try:
        return bool(maybe_enable_token_auth_if_token_available(warn_if_disabled=False))
    finally:
        quiet.setLevel(level)


def prepare(address: str) -> Optional[str]:
    """Check an explicit address before ``ray.init`` and set up its token; the probe's answer."""
    client, host, port = split_address(address)
    state = probe(host, port, client)
    what = "Ray Client server" if client else "Ray cluster (GCS)"
    if state == "down":
        raise DistributedError(f"no {what} answers at {address}: is the cluster running (`ray status`), "
                               f"and is the port right?")
    if state == "token" and not token_mode():
        mode = os.environ.get(AUTH_MODE_VAR)
        if mode is not None:
            raise DistributedError(f"the Ray cluster at {address} requires token authentication, but "
                                   f"{AUTH_MODE_VAR}={mode} here: {TOKEN_HELP}")
        if not is_this_machine(host):
            raise DistributedError(f"the Ray cluster at {address} requires token authentication: {TOKEN_HELP}")
        if not use_local_token():
            raise DistributedError(f"the Ray cluster at {address} requires token authentication and no token "
                                   f"was found on this machine: {TOKEN_HELP}")
        logger.info("token authentication on for %s, with this user's Ray token", address)
    return state


def failure(address: Optional[str], error: BaseException, state: Optional[str] = None) -> DistributedError:
    """The :class:`DistributedError` for a ``ray.init`` that failed, with what to do about it."""
    where = address or "a local Ray"
    message = f"cannot start or reach {where}: {type(error).__name__}: {error}"
    if type(error).__name__ == "AuthenticationError":
        return DistributedError(f"cannot reach {where}: {error}")
    if address is not None and isinstance(error, ConnectionError):
        if state == "token":
            message += ("; the cluster requires a token and refused this one: use the cluster's token "
                        "(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; `ray get-auth-token` on its "
                        "head node prints it)")
        elif state is None:
            message += f"; if the cluster uses token authentication: {TOKEN_HELP}"
    return DistributedError(message)
