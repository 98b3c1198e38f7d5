"""Pushes network changes to the nodes.

* A security group's rules changed: every port of the project that uses the group, or whose rules name
  it as a remote group, gets its groups resolved again and sent to its VM's node.
* Ports joined or left (a VM created or deleted, a NIC attached or detached — `ports_changed`): every
  port on the same networks whose rules name one of the moving ports' groups as a remote group gets its
  resolved groups again (remote-group membership), and the nodes carrying those networks get their
  overlay peers (`peers.py`).

Best effort per port: a node that cannot be reached now is logged and skipped; the port gets the
current groups again whenever its VM is created or its NIC attached (resolution reads the store).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from plasmavmc.core.context import Core
from plasmavmc.core.networks import groups, networks, peers, ports
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.records import read
from plasmavmc.types.network import Network
from plasmavmc.types.vm import NetworkSpec, VirtualMachine

log = logging.getLogger(__name__)


async def _affected(core: Core, org_id: str, project_id: str, changed: str, names: tuple[str, ...]) -> bool:
    if changed in names:
        return True
    for name in names:
        if name == groups.DEFAULT:
            continue
        try:
            group = await groups.get(core.store, org_id, project_id, name)
        except PlasmaError:
            continue
        if any(r.remote_group == changed for r in group.rules):
            return True
    return False


async def _names_remote(core: Core, network: Network, names: tuple[str, ...], changed: set[str]) -> bool:
    """Whether one of the named groups has a rule whose remote group is in `changed`."""
    for name in names:
        if name == groups.DEFAULT:
            continue  # the built-in group names no remote group
        try:
            group = await groups.get(core.store, network.org_id, network.project_id, name)
        except PlasmaError:
            continue
        if any(r.remote_group in changed for r in group.rules):
            return True
    return False


async def _push(core: Core, network: Network, rec: ports.PortRecord) -> bool:
    """Send one port's resolved groups to its VM's node; False if it has none or cannot be reached."""
    vm = await read(core.store, VirtualMachine, keys.vm(network.org_id, network.project_id, rec.vm_id))
    if vm is None or vm.value.node_id is None:
        return False
    try:
        agent = await core.agent_for(vm.value)
        await agent.update_port_security(rec.port.id,
                                         await groups.resolve(core.store, network, rec.port.security_groups))
        return True
    except PlasmaError as err:
        log.warning("port %s of VM %s: security groups not pushed: %s", rec.port.id, rec.vm_id, err)
        return False


async def security_group_changed(core: Core, org_id: str, project_id: str, changed: str) -> int:
    """Re-send the groups of every affected port; returns how many ports were updated."""
    updated = 0
    for network in await networks.list_networks(core.store, org_id, project_id):
        for rec in await ports.list_ports(core.store, network.id):
            if rec.vm_id and await _affected(core, org_id, project_id, changed, rec.port.security_groups):
                updated += await _push(core, network, rec)
    return updated


async def membership_changed(core: Core, network: Network, changed: set[str], moved_vm: str) -> int:
    """Ports of `moved_vm` in groups `changed` joined or left `network`: re-send the groups of every other
    port there whose rules name one of them as a remote group; returns how many ports were updated."""
    updated = 0
    for rec in await ports.list_ports(core.store, network.id):
        if rec.vm_id and rec.vm_id != moved_vm and await _names_remote(core, network, rec.port.security_groups,
                                                                        changed):
            updated += await _push(core, network, rec)
    return updated


async def ports_changed(core: Core, vm: VirtualMachine, nics: Sequence[NetworkSpec]) -> None:
    """`vm`'s NICs `nics` got or lost their ports (created/attached, or deleted/detached): re-send what
    depends on membership. Never fails the operation that changed them: a failure is logged."""
    try:
        for nic in nics:
            found = await read(core.store, Network, keys.network(vm.org_id, vm.project_id, nic.network_id))
            if found is None:
                continue
            await membership_changed(core, found.value, set(nic.security_groups or (groups.DEFAULT,)), vm.id)
            await peers.push_network(core, found.value)
    except PlasmaError as err:
        log.warning("vm %s: network membership not pushed: %s", vm.id, err)
