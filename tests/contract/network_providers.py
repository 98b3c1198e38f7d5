"""The providers the `NetworkProvider` conformance suite runs over (only `bridge` today; OVN to come).

A factory gets a private state dir and returns a provider with names unique to the test. The suite runs
inside a fresh network namespace (`tests/netns.py`), so a provider's plumbing never reaches the host.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings


def _bridge(state: Path) -> NetworkProvider | str:
    missing = [b for b in ("nft", "dnsmasq") if shutil.which(b) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt: nftables, dnsmasq-base)"
    return BridgeProvider(BridgeSettings(state_dir=state, table=f"pvt{os.getpid()}", prefix="pvt"))


PROVIDER_FACTORIES: dict[str, Callable[[Path], NetworkProvider | str]] = {"bridge": _bridge}
