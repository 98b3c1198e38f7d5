"""Free loopback TCP ports for the processes tests and benchmarks start.

A port the kernel picks (bind to port 0) comes from the ephemeral range, the same range every outgoing
connection's local port comes from: between the moment a test reads such a port and the moment its
server binds it, any connection on the machine may take it ("Address already in use"). So ports are
drawn from outside `net.ipv4.ip_local_port_range`, where the kernel never places a connection; each is
checked free by binding it, and none is handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below: well-known and registered services' ports
_given: set[int] = set()
_rng = random.SystemRandom()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for connections' local ports (Linux's default when it cannot be read)."""
    try:
        low, high = (int(p) for p in _PORT_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _candidates() -> list[range]:
    low, high = ephemeral_range()
    return [r for r in (range(_LOWEST, low), range(max(_LOWEST, high + 1), 65536)) if len(r) > 0]


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds now, outside the ephemeral range, new to this process."""
    ranges = _candidates()
    if not ranges:  # the whole port space is ephemeral here: the kernel's pick, racy as it is
        return _kernel_pick()
    for _ in range(1000):
        r = _rng.choice(ranges)
        port = _rng.randrange(r.start, r.stop)
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    raise RuntimeError("no free port found outside the ephemeral range in 1000 tries")


def _kernel_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    _given.add(port)
    return port
