"""Free TCP ports on loopback, for servers started on demand (tests, benchmarks)."""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago, below the ephemeral range.

    Below it because a server that restarts (the fault tests restart brokers and Redis on
    their ports) must find its port free again: the kernel hands ports of the ephemeral
    range to every outgoing connection on the machine, and one of them may take a port in
    the moment its server is down. The sockets stay bound until all ports are chosen, so
    the ports differ; another process choosing the same way may still take one before the
    server binds it (unlikely: the choice is random over thousands of ports).
    """
    lowest, highest = LOWEST, _ephemeral_low() - 1
    with ExitStack() as stack:
        ports: list[int] = []
        for port in random.sample(range(lowest, highest + 1), highest - lowest + 1):
            if len(ports) == count:
                break
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            ports.append(port)
        if len(ports) < count:
            raise OSError(f"fewer than {count} free ports in {lowest}-{highest}")
        return ports


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768
    return low if low > LOWEST + 1000 else 32_768


def free_port() -> int:
    return free_ports(1)[0]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
