"""The providers the `NetworkProvider` conformance suite runs over (only `bridge` today; OVN to come).

A factory gets a private state dir and returns a provider with names unique to the test (a missing
binary skips, or fails under CI: tests/binaries.py). The suite runs
inside a fresh network namespace (`tests/netns.py`), so a provider's plumbing never reaches the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from tests import binaries


def _bridge(state: Path) -> NetworkProvider:
    binaries.require_now("nft", "dnsmasq")
    return BridgeProvider(BridgeSettings(state_dir=state, table=f"pvt{os.getpid()}", prefix="pvt"))


PROVIDER_FACTORIES: dict[str, Callable[[Path], NetworkProvider]] = {"bridge": _bridge}
