"""Chooses the node's `NetworkProvider` from `[network] provider` (an explicit table, no discovery)."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.errors import InvalidArgument
from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings


def make_provider(kind: str, state_dir: Path, bridge_name: str, underlay: str = "") -> NetworkProvider | None:
    """The provider named `kind`; None for "none" (NICs stay bare taps on no bridge). `underlay`: this
    node's tunnel endpoint ("" = networks stay on this node)."""
    if kind == "none":
        return None
    if kind == "bridge":
        return BridgeProvider(BridgeSettings.from_bridge_name(state_dir, bridge_name, underlay))
    raise InvalidArgument("network.provider", f"unknown network provider {kind!r} (bridge, none)")
