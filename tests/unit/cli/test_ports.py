"""Free ports for servers started on demand: distinct, free, and out of the kernel's way."""

from __future__ import annotations

import socket

import pytest

from services.cli.local.ports import LOOPBACK, free_ports, port_is_free
from services.cli.local.ports import _ephemeral_low as ephemeral_low

pytestmark = pytest.mark.unit


def test_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    ports = free_ports(12)
    assert len(set(ports)) == 12
    assert all(10_000 <= p < ephemeral_low() for p in ports)
    assert all(port_is_free(p) for p in ports)


def test_a_port_a_server_holds_is_never_chosen() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        [port] = free_ports(1)
        held.bind((LOOPBACK, port))
        held.listen()
        assert not port_is_free(port)
        assert port not in free_ports(200)
