"""Egress NAT for a network (`egress_nat`): its router gets a gateway port on the shared external switch.

The external switch (`<prefix>-ext`) has a localnet port on the physical network `plasmavmc-external`,
which a gateway node maps to an OVS bridge on its uplink (`ovn-bridge-mappings=plasmavmc-external:br-ex`).
Per NAT network: a distributed gateway port on its router (bound to the chassis of the node that made
it) with an address from `[network] external_cidr` (the lowest one no other router holds, found in the
NB), an SNAT rule (the network's CIDR → that address) and a default route to `external_gateway`.
Networks without NAT have no such port and no route out. Blocking, idempotent (see `nb.py`).
"""

from __future__ import annotations

import ipaddress

from plasmavmc.errors import NetworkFull
from plasmavmc.network.ovn import names
from plasmavmc.network.ovn.nb import Northbound
from plasmavmc.types.network import Network


def _held(nb: Northbound, prefix: str) -> dict[str, str]:
    """Gateway port name → its address, for every router port on our external switch."""
    rows = nb.api.db_find_rows("Logical_Router_Port").execute(check_error=True)
    stem = f"{prefix}-rx-"
    return {r.name: r.networks[0].split("/")[0] for r in rows if r.name.startswith(stem) and r.networks}


def _address(nb: Northbound, prefix: str, net: Network, cidr: str, gateway: str) -> str:
    held = _held(nb, prefix)
    port = names.external_router_port(prefix, net)
    if port in held:
        return held[port]
    taken = set(held.values()) | {gateway}
    for host in ipaddress.IPv4Network(cidr).hosts():
        if str(host) not in taken:
            return str(host)
    raise NetworkFull(f"no free address in [network] external_cidr {cidr} for the NAT of {net.id}")


def ensure(nb: Northbound, net: Network, cidr: str, gateway: str, chassis: str) -> None:
    api, p, ext = nb.api, nb.prefix, nb.ext()
    nb.commit([
        api.ls_add(names.external_switch(p), may_exist=True, external_ids=ext),
    ])
    nb.commit([
        api.lsp_add(names.external_switch(p), names.external_localnet(p), may_exist=True, type="localnet",
                    addresses=["unknown"], options={"network_name": names.EXTERNAL_NETWORK}, external_ids=ext),
    ])
    address = _address(nb, p, net, cidr, gateway)
    port, router = names.external_router_port(p, net), names.router(p, net)
    plen = ipaddress.IPv4Network(cidr).prefixlen
    nb.commit([
        api.lrp_add(router, port, names.external_mac(net), [f"{address}/{plen}"], may_exist=True,
                    external_ids=nb.ext(net)),
        api.lsp_add(names.external_switch(p), names.external_switch_port(p, net), may_exist=True, type="router",
                    addresses=["router"], options={"router-port": port}, external_ids=nb.ext(net)),
    ])
    nb.commit([
        api.lrp_set_gateway_chassis(port, chassis, 1),
        api.lr_nat_add(router, "snat", address, net.cidr, may_exist=True),
        api.lr_route_add(router, "0.0.0.0/0", gateway, may_exist=True),
    ])


def forget(nb: Northbound, net: Network) -> None:
    """After `net`'s router is gone: its external switch port, and the external switch once unused."""
    api, p = nb.api, nb.prefix
    nb.commit([api.lsp_del(names.external_switch_port(p, net), if_exists=True)])
    rows = api.db_find_rows("Logical_Switch", ("name", "=", names.external_switch(p))).execute(check_error=True)
    if rows and all(lsp.type == "localnet" for lsp in rows[0].ports):
        nb.commit([api.ls_del(names.external_switch(p), if_exists=True)])
