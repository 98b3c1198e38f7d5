"""The node's Open vSwitch database through `ovsdbapp`: a VM's tap as a port of the integration bridge.

The tap (made by the shared netlink code) is added to `br-int` with `external_ids:iface-id=<port id>`,
which is what `ovn-controller` binds to the logical port; `attached-mac` and the provider's owner mark
ride along. Here Open vSwitch runs its userspace (netdev) datapath, which reads and writes the tap as a
system port. The Open_vSwitch transaction waits until ovs-vswitchd has applied it (as ovs-vsctl does).
Blocking, idempotent; the provider calls it with `asyncio.to_thread`.
"""

from __future__ import annotations

from ovsdbapp.schema.open_vswitch import impl_idl

from plasmavmc.network.ovn import names
from plasmavmc.network.ovn.session import Session


class LocalSwitch(Session):
    schema = "Open_vSwitch"

    def __init__(self, endpoint: str, bridge: str, prefix: str, timeout: float = 30.0) -> None:
        super().__init__(endpoint, impl_idl.OvsdbIdl, timeout)
        self.bridge, self.prefix = bridge, prefix

    def ensure_port(self, tap: str, port_id: str, mac: str) -> None:
        ext = {"iface-id": port_id, "attached-mac": mac, names.OWNER: self.prefix}
        api = self.api
        api.add_port(self.bridge, tap, may_exist=True).execute(check_error=True)
        api.db_set("Interface", tap, ("external_ids", ext)).execute(check_error=True)

    def delete_port(self, tap: str) -> None:
        self.api.del_port(tap, bridge=self.bridge, if_exists=True).execute(check_error=True)

    def ports(self) -> dict[str, str]:
        """Our ports on the bridge: tap name → the logical port it is bound to."""
        rows = self.api.db_find_rows("Interface").execute(check_error=True)
        return {r.name: r.external_ids.get("iface-id", "") for r in rows
                if r.external_ids.get(names.OWNER) == self.prefix}

    def chassis(self) -> str:
        """This node's chassis name (`external_ids:system-id`, what ovn-controller registers as)."""
        rows = self.api.db_list_rows("Open_vSwitch").execute(check_error=True)
        return str(rows[0].external_ids.get("system-id", "")) if rows else ""
