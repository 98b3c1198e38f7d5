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
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def run_file_in_netns(kind: str, test_file: str, marker_env: str, passed: int, timeout: float) -> None:
    """Run `test_file`'s tests named `inner` with pytest inside a fresh namespace (loopback up, the variable
    `marker_env` set so they run), and assert that exactly `passed` of them passed; the namespace goes."""
    name = unique_name(kind)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        argv = ["ip", "netns", "exec", name, sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                "-k", "inner", test_file]
        done = subprocess.run(argv, env={**os.environ, marker_env: "1"}, capture_output=True, text=True,
                              timeout=timeout, cwd=Path(__file__).parents[1])
        assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
        assert re.search(rf"\b{passed} passed\b", done.stdout), done.stdout[-3000:]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
