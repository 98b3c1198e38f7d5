"""The test suite's port picker: ports a connection's local port can never take, each free and new."""

from __future__ import annotations

import itertools
import socket

import pytest

from tests import ports
from tests.ports import ephemeral_range, free_port


def test_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert not low <= port <= high
        assert 1024 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", ports[0]))  # free when given


def test_a_port_held_by_a_listener_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        held = free_port()
        listener.bind(("127.0.0.1", held))
        listener.listen()
        ports._given.discard(held)  # as if another process had picked and bound it
        draws = itertools.chain([held, held], itertools.repeat(0))  # then real draws, however many it takes
        real = ports._rng.randrange
        monkeypatch.setattr(ports._rng, "randrange", lambda a, b: next(draws) or real(a, b))
        assert free_port() != held


def test_with_no_port_outside_the_ephemeral_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1024, 65535))
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
