"""Helpers for tests and benchmarks that start daemons on this machine: free loopback ports, Ray node
port flags, and stopping a process group."""
from __future__ import annotations

import os
import signal
import socket
import time
from typing import List

#: the ports a ``ray start`` node opens besides the head's GCS and client-server ports
RAY_NODE_PORT_FLAGS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                       "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")


def free_ports(n: int) -> List[int]:
    """``n`` distinct loopback ports free right now (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def ray_node_port_args() -> List[str]:
    """``--<port flag>=PORT`` for each of a Ray node's own ports, on free ports."""
    return [f"{flag}={port}" for flag, port in zip(RAY_NODE_PORT_FLAGS, free_ports(len(RAY_NODE_PORT_FLAGS)))]


def stop_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, the process group ``pgid`` (e.g. a Ray node's daemons), waiting for it to go."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
