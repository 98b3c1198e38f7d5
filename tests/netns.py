"""Test network namespaces: every network test runs its provider, taps and guests inside one of these.

`outside()` makes a second namespace behind a veth with a TCP server in it (a stand-in for the
internet, for egress NAT tests). `inside_netns()` creates a namespace with a unique `pvnet-<pid>-<n>`
name, moves the calling thread into it (new processes and netlink sockets follow) and on exit moves
back and removes it, so bridges, nftables tables and dnsmasq processes never touch the host's network.
Call it from the thread that runs the event loop, before any worker thread is started.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
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


@contextlib.contextmanager
def outside(host_if: str, host_addr: str | None, peer_addr: str, marker: str, port: int = 8000) -> Iterator[str]:
    """A namespace behind a veth (`host_if` here, `eth0` there at `peer_addr`/24) where busybox `nc` on
    `port` answers `marker`. `host_addr` None leaves `host_if` without an address (to join a switch)."""
    name, ip = unique_name("out"), ["ip"]
    subprocess.run([*ip, "netns", "add", name], check=True)
    server = None
    try:
        subprocess.run([*ip, "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name],
                       check=True)
        if host_addr:
            subprocess.run([*ip, "addr", "add", f"{host_addr}/24", "dev", host_if], check=True)
        subprocess.run([*ip, "link", "set", host_if, "up"], check=True)
        inside = [*ip, "netns", "exec", name]
        subprocess.run([*inside, "ip", "addr", "add", f"{peer_addr}/24", "dev", "eth0"], check=True)
        subprocess.run([*inside, "ip", "link", "set", "eth0", "up"], check=True)
        server = subprocess.Popen([*inside, "busybox", "nc", "-ll", "-p", str(port), "-e", "echo", marker],
                                  stdin=subprocess.DEVNULL)
        yield name
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        subprocess.run([*ip, "netns", "del", name], check=False)
        subprocess.run([*ip, "link", "del", host_if], check=False, capture_output=True)
