"""Test network namespaces: every network test runs its provider, taps and guests inside one of these.

`inside_netns()` creates a namespace with a unique `pvnet-<pid>-<n>` name, moves the calling thread
into it (new processes and netlink sockets follow) and on exit moves back and removes it, so bridges,
nftables tables and dnsmasq processes never touch the host's network. Call it from the thread that
runs the event loop, before any worker thread is started.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator

from pyroute2 import netns

_serial = itertools.count()


def unique_name(kind: str) -> str:
    return f"pvnet-{kind}-{os.getpid()}-{next(_serial)}"


@contextlib.contextmanager
def inside_netns(kind: str = "t") -> Iterator[str]:
    name = unique_name(kind)
    netns.create(name)
    netns.pushns(name)
    try:
        yield name
    finally:
        netns.popns()
        netns.remove(name)
