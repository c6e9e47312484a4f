"""Free loopback ports for the servers the benchmark and the tests start."""

from __future__ import annotations

import random
import socket

HOST = "127.0.0.1"
#: Ports below this are left to well-known services.
_LOWEST = 20000


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(n) for n in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody uses right now.

    Taken below the ephemeral range when possible: the kernel never hands
    such a port to an outgoing connection, so it stays free for a restart
    of the server and is not taken by a load generator's clients.
    """
    low, _ = ephemeral_range()
    for port in random.sample(range(_LOWEST, low), min(100, max(0, low - _LOWEST))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        any_port: int = s.getsockname()[1]
        return any_port
