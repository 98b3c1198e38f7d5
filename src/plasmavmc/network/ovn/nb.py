"""The northbound database through `ovsdbapp`: the rows of one network and its ports.

Per network: a logical switch, a logical router holding the gateway address (plus a `router`-type
switch port facing it), and a `DHCP_Options` row (OVN's native DHCP: server = gateway). Per port: a
logical switch port named by the port id with `addresses` and `port_security` = MAC + IPs and the
network's DHCP options. Security groups are port groups with ACLs (`acls.py`); every port is also in
the provider-wide default-deny group. Every row carries `external_ids:plasmavmc-owner=<prefix>`.

Every method is blocking (ovsdbapp runs the OVSDB session in a thread of its own) and idempotent: each
step is `may_exist`/`if_exists`, ACLs are diffed against what the database holds, so a retry or an agent
restart converges without churn. The provider calls them with `asyncio.to_thread`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from ovsdbapp.schema.ovn_northbound import impl_idl

from plasmavmc.network.ovn import acls, names
from plasmavmc.network.ovn.session import Session
from plasmavmc.types.network import Network, PortRequest, SecurityGroup

LSP = "Logical_Switch_Port"
# handed out by DHCP: a 1500-byte underlay less Geneve's encapsulation (58 bytes over IPv4, with OVN's
# option), so a guest's full-size frames still fit once they cross nodes
GUEST_MTU = 1442


class Northbound(Session):
    schema = "OVN_Northbound"

    def __init__(self, endpoint: str, prefix: str, timeout: float = 30.0) -> None:
        super().__init__(endpoint, impl_idl.OvnNbApiIdlImpl, timeout)
        self.prefix = prefix

    def ext(self, network: Network | None = None, **more: str) -> dict[str, str]:
        ext = {names.OWNER: self.prefix, **more}
        if network is not None:
            ext[names.NETWORK] = network.id
        return ext

    def commit(self, commands: Iterable[Any]) -> None:
        with self.api.transaction(check_error=True) as txn:
            for command in commands:
                txn.add(command)

    def _rows(self, table: str, **ext: str) -> list[Any]:
        """Rows of `table` that are ours and whose external_ids hold `ext`."""
        want = {names.OWNER: self.prefix, **ext}
        rows = self.api.db_find_rows(table).execute(check_error=True)
        return [r for r in rows if all(r.external_ids.get(k) == v for k, v in want.items())]

    # -- network ------------------------------------------------------------------------------------

    def ensure_network(self, net: Network) -> uuid.UUID | None:
        """Switch, router (gateway), DHCP options; returns the DHCP options' uuid (None: DHCP off)."""
        api, p, ext = self.api, self.prefix, self.ext(net)
        self.commit([api.ls_add(names.switch(p, net), may_exist=True, external_ids=ext),
                      api.lr_add(names.router(p, net), may_exist=True, external_ids=ext)])
        gateway = f"{net.gateway_ip}/{net.subnet.prefixlen}"
        self.commit([
            api.lrp_add(names.router(p, net), names.router_port(p, net), names.gateway_mac(net), [gateway],
                        may_exist=True, external_ids=ext),
            api.lsp_add(names.switch(p, net), names.switch_router_port(p, net), may_exist=True, type="router",
                        addresses=["router"], options={"router-port": names.router_port(p, net)},
                        external_ids=ext),
        ])
        return self._ensure_dhcp(net) if net.dhcp else None

    def _ensure_dhcp(self, net: Network) -> uuid.UUID:
        options = {"server_id": net.gateway_ip, "server_mac": names.gateway_mac(net), "lease_time": "3600",
                   "router": net.gateway_ip, "mtu": str(GUEST_MTU)}
        found = self._rows("DHCP_Options", **{names.NETWORK: net.id})
        if found:
            row = found[0]
            if dict(row.options) != options or row.cidr != net.cidr:
                self.commit([self.api.db_set("DHCP_Options", row.uuid, ("options", options), ("cidr", net.cidr))])
            return uuid.UUID(str(row.uuid))
        with self.api.transaction(check_error=True) as txn:
            made = txn.add(self.api.dhcp_options_add(net.cidr, **self.ext(net)))
        row_uuid = getattr(made.result, "uuid", made.result)  # a RowView after commit
        self.commit([self.api.dhcp_options_set_options(row_uuid, **options)])
        return uuid.UUID(str(row_uuid))

    def delete_network(self, net: Network) -> None:
        """Every row of `net` (switch, router, DHCP options, its security groups' port groups)."""
        api, p = self.api, self.prefix
        commands = [api.ls_del(names.switch(p, net), if_exists=True), api.lr_del(names.router(p, net), if_exists=True)]
        commands += [api.dhcp_options_del(r.uuid) for r in self._rows("DHCP_Options", **{names.NETWORK: net.id})]
        commands += [api.pg_del(r.name, if_exists=True) for r in self._rows("Port_Group", **{names.NETWORK: net.id})]
        self.commit(commands)

    def network_ports(self, net: Network) -> list[str]:
        """Names of the VM ports (not the router port) on `net`'s switch."""
        rows = self.api.db_find_rows("Logical_Switch", ("name", "=", names.switch(self.prefix, net))).execute(
            check_error=True)
        return [lsp.name for ls in rows for lsp in ls.ports if lsp.type != "router"]

    # -- ports --------------------------------------------------------------------------------------

    def ensure_port(self, req: PortRequest, dhcp: uuid.UUID | None) -> None:
        api, net = self.api, req.network
        addresses = " ".join((req.mac_address, *req.ip_addresses))
        self.commit([api.lsp_add(names.switch(self.prefix, net), req.port_id, may_exist=True)])
        self.commit([api.db_set(LSP, req.port_id, ("addresses", [addresses]), ("port_security", [addresses]),
                                 ("dhcpv4_options", [dhcp] if dhcp else []),
                                 ("external_ids", self.ext(net, **{"plasmavmc-vm": req.vm_id})))])

    def delete_port(self, port_id: str) -> None:
        self.commit([self.api.lsp_del(port_id, if_exists=True)])

    def port_exists(self, port_id: str) -> bool:
        return bool(self.api.db_find_rows(LSP, ("name", "=", port_id)).execute(check_error=True))

    # -- security groups ----------------------------------------------------------------------------

    def _ensure_group(self, pg: str, want: set[acls.Acl], ext: dict[str, str]) -> None:
        api = self.api
        self.commit([api.pg_add(pg, may_exist=True, external_ids=ext)])
        row = api.db_find_rows("Port_Group", ("name", "=", pg)).execute(check_error=True)[0]
        have = {(a.direction, a.priority, a.match, a.action) for a in row.acls}
        changes = [api.pg_acl_del(pg, d, prio, m, if_exists=True) for d, prio, m, _ in sorted(have - want)]
        changes += [api.pg_acl_add(pg, d, prio, m, a, may_exist=True) for d, prio, m, a in sorted(want - have)]
        if changes:
            self.commit(changes)

    def set_groups(self, req: PortRequest, groups: Iterable[SecurityGroup]) -> None:
        """Make `groups` exactly the port's security groups: their port groups and ACLs, its membership."""
        net, p = req.network, self.prefix
        all_pg = names.all_ports(p)
        self._ensure_group(all_pg, acls.defaults(all_pg), self.ext())
        wanted = {all_pg}
        for group in groups:
            pg = names.port_group(p, net, group.id)
            wanted.add(pg)
            for remote in acls.remote_groups(group):
                rpg = names.port_group(p, net, remote)
                self.commit([self.api.pg_add(rpg, may_exist=True, external_ids=self.ext(net, **{
                    names.GROUP: remote}))])
            want = acls.group_acls(pg, group, lambda g: names.port_group(p, net, g))
            self._ensure_group(pg, want, self.ext(net, **{names.GROUP: group.id}))
        lsp = self.api.lsp_get(req.port_id).execute(check_error=True).uuid  # ovsdbapp takes rows or uuids
        commands = [self.api.pg_add_ports(pg, lsp) for pg in sorted(wanted)]
        for row in self._rows("Port_Group"):
            if row.name not in wanted and req.port_id in {p.name for p in row.ports}:
                commands.append(self.api.pg_del_ports(row.name, lsp, if_exists=True))
        self.commit(commands)
        self.collect_groups()

    def collect_groups(self) -> None:
        """Remove our port groups that hold no port and that no ACL names as a remote group."""
        rows = self._rows("Port_Group")
        matches = " ".join(a.match for r in rows for a in r.acls)
        idle = [r.name for r in rows if not r.ports and f"${r.name}_ip4" not in matches]
        if idle:
            self.commit([self.api.pg_del(name, if_exists=True) for name in idle])

    def wait_applied(self, deadline_s: float = 10.0) -> bool:
        """Bump `NB_Global.nb_cfg` and wait until every chassis has applied it (`hv_cfg`, what
        `ovn-nbctl --wait=hv` does): a rule change then holds on the nodes when the call returns. False
        when the deadline passes first (a chassis down): the rows are written and will be applied."""
        row = self.api.db_list_rows("NB_Global").execute(check_error=True)[0]
        target = row.nb_cfg + 1
        self.commit([self.api.db_set("NB_Global", row.uuid, ("nb_cfg", target))])
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.api.db_list_rows("NB_Global").execute(check_error=True)[0].hv_cfg >= target:
                return True
            time.sleep(0.05)
        return False

    def owned_rows(self) -> dict[str, list[str]]:
        """Names (or uuids) of every row we own, by table (leak checks)."""
        out: dict[str, list[str]] = {}
        for table in ("Logical_Switch", "Logical_Router", LSP, "Port_Group", "DHCP_Options"):
            rows = self._rows(table)
            if rows:
                out[table] = sorted(str(getattr(r, "name", r.uuid)) for r in rows)
        return out
