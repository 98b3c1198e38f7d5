"""Test network namespaces: every network test runs its provider, taps and guests inside one of these.

`outside()` makes a second namespace behind a veth with a TCP server in it (a stand-in for the
internet, for egress NAT tests). `inside_netns()` creates a namespace with a unique `pvnet-<pid>-<n>`
name, moves the calling thread into it (new processes and netlink sockets follow) and on exit moves
back and removes it, so bridges, nftables tables and dnsmasq processes never touch the host's network.
Call it from the thread that runs the event loop. A thread inherits the namespace of the thread that
starts it, and the suite's one event loop starts its worker threads whenever it needs one, so those
come from `host_executor()`: each enters the host's namespace first (else a worker started inside a test's
namespace would stay there, and every later `to_thread` that lands on it finds "Network is unreachable").
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from pyroute2 import netns

_serial = itertools.count()
_HOST_NS = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # imported before any test moved


def host_executor() -> concurrent.futures.ThreadPoolExecutor:
    """A thread pool whose threads start in the host's network namespace, wherever they are started from."""
    return concurrent.futures.ThreadPoolExecutor(thread_name_prefix="host-ns", initializer=netns.setns,
                                                 initargs=(_HOST_NS,))


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


def run_file_in_netns(kind: str, test_file: str, marker_env: str, passed: int, timeout: float,
                      marker_value: str = "1") -> None:
    """Run `test_file`'s tests named `inner` with pytest inside a fresh namespace (loopback up, the variable
    `marker_env` set to `marker_value` so they run), and assert that exactly `passed` of them passed; the
    namespace goes."""
    name = unique_name(kind)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        argv = ["ip", "netns", "exec", name, sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                "-k", "inner", test_file]
        done = subprocess.run(argv, env={**os.environ, marker_env: marker_value}, capture_output=True, text=True,
                              timeout=timeout, cwd=Path(__file__).parents[1])
        assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
        assert re.search(rf"\b{passed} passed\b", done.stdout), done.stdout[-3000:]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
