"""Chooses the node's `NetworkProvider` from `[network] provider` (an explicit table, no discovery)."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.errors import InvalidArgument
from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from plasmavmc.network.ovn.provider import OvnProvider, OvnSettings


def make_provider(kind: str, state_dir: Path, bridge_name: str, underlay: str = "", *,
                  overlay_endpoint: str | None = None, ovs_endpoint: str = "unix:/var/run/openvswitch/db.sock",
                  integration_bridge: str = "br-int", external_cidr: str = "",
                  external_gateway: str = "") -> NetworkProvider | None:
    """The provider named `kind`; None for "none" (NICs stay bare taps on no bridge). `underlay`: this
    node's tunnel endpoint for the bridge provider's VXLAN ("" = networks stay on this node); OVN tunnels
    with ovn-controller's own `ovn-encap-ip`."""
    if kind == "none":
        return None
    if kind == "bridge":
        return BridgeProvider(BridgeSettings.from_bridge_name(state_dir, bridge_name, underlay))
    if kind == "ovn":
        if not overlay_endpoint:
            raise InvalidArgument("network.overlay_endpoint", "the ovn provider needs the northbound DB "
                                  "(e.g. tcp:127.0.0.1:6641)")
        return OvnProvider(OvnSettings.from_bridge_name(state_dir, overlay_endpoint, ovs_endpoint,
                                                        integration_bridge, bridge_name, external_cidr,
                                                        external_gateway))
    raise InvalidArgument("network.provider", f"unknown network provider {kind!r} (bridge, ovn, none)")
