"""Loaded by every Python process started with this folder first on ``PYTHONPATH`` (tests/test_offline.py):
refuses, and records, every attempt to reach a host other than this machine.

A connection, a datagram or a name lookup whose destination is not loopback raises ``OSError(ENETUNREACH)``
and appends ``<pid> <what> <destination>`` to the file named by ``SPEECH_INTENT_NETWORK_LOG``. Unix sockets
and loopback (127.0.0.0/8, ::1, ``localhost``) pass.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket

_LOG = os.environ.get("SPEECH_INTENT_NETWORK_LOG")
_LOCAL_NAMES = {"localhost", "localhost.", "ip6-localhost", "ip6-loopback", ""}


def _loopback(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: resolving it is already reaching out
    return address.is_loopback or address.is_unspecified


def _refuse(what: str, destination) -> None:
    if _LOG:
        with open(_LOG, "a") as handle:
            handle.write(f"{os.getpid()} {what} {destination!r}\n")
    raise OSError(errno.ENETUNREACH, f"offline test: {what} to {destination!r} refused")


def _checked(what: str, original, address_index: int):
    def wrapper(self, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6) and len(args) > address_index:
            address = args[address_index]
            if isinstance(address, tuple) and address and not _loopback(address[0]):
                _refuse(what, address)
        return original(self, *args, **kwargs)

    return wrapper


_getaddrinfo = socket.getaddrinfo


def _checked_getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        _refuse("getaddrinfo", host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _checked("connect", socket.socket.connect, 0)
socket.socket.connect_ex = _checked("connect_ex", socket.socket.connect_ex, 0)
socket.socket.sendto = _checked("sendto", socket.socket.sendto, -1)
socket.getaddrinfo = _checked_getaddrinfo
