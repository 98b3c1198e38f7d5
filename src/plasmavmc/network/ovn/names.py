"""Names of the OVN rows and OVS ports the provider owns, all derived from its prefix and the ids told.

One prefix per deployment (`[network] bridge_name`'s identifier form), so the rows of two deployments
sharing a northbound database never collide. Port groups are identifiers (ACL matches name them as
`@pg` and their address sets as `$pg_ip4`), so they carry a hash of (network, group): a security group's
id is its name, unique only inside its project, and a remote group is resolved on the same network.
"""

from __future__ import annotations

import hashlib

from plasmavmc.types.network import Network

OWNER = "plasmavmc-owner"  # external_ids key on every row: the provider's prefix
NETWORK = "plasmavmc-network"  # external_ids key: the network id
GROUP = "plasmavmc-group"  # external_ids key on port groups: the security group id


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def switch(prefix: str, network: Network) -> str:
    return f"{prefix}-{network.id}"


def router(prefix: str, network: Network) -> str:
    return f"{prefix}-r-{network.id}"


def router_port(prefix: str, network: Network) -> str:
    """The router's port on the network's switch (holds the gateway address)."""
    return f"{prefix}-rp-{network.id}"


def switch_router_port(prefix: str, network: Network) -> str:
    """The switch's `router`-type port facing `router_port`."""
    return f"{prefix}-rs-{network.id}"


def _mac(kind: str, network: Network) -> str:
    """A locally administered unicast MAC, stable across nodes."""
    d = _digest(kind, network.id)
    return "0a:" + ":".join(d[i:i + 2] for i in range(0, 10, 2))


def gateway_mac(network: Network) -> str:
    return _mac("gw", network)


def port_group(prefix: str, network: Network, group_id: str) -> str:
    return f"{prefix}_sg_{_digest(network.id, group_id)[:20]}"


def all_ports(prefix: str) -> str:
    """The port group of every port the provider plumbs: default deny inbound and outbound."""
    return f"{prefix}_all"


EXTERNAL_NETWORK = "plasmavmc-external"  # the localnet's physical network: `ovn-bridge-mappings` on a gateway


def external_switch(prefix: str) -> str:
    return f"{prefix}-ext"


def external_localnet(prefix: str) -> str:
    return f"{prefix}-ext-localnet"


def external_router_port(prefix: str, network: Network) -> str:
    """The router's distributed gateway port on the external switch (holds its SNAT address)."""
    return f"{prefix}-rx-{network.id}"


def external_switch_port(prefix: str, network: Network) -> str:
    return f"{prefix}-xs-{network.id}"


def external_mac(network: Network) -> str:
    return _mac("ext", network)
