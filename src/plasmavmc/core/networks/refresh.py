"""Pushes security-group changes to the nodes: every port of the project that uses a changed group, or
whose rules name it as a remote group, gets its groups resolved again and sent to its VM's node.

Best effort per port: a node that cannot be reached now is logged and skipped; the port gets the
current groups again whenever its VM is created or its NIC attached (resolution reads the store).
"""

from __future__ import annotations

import logging

from plasmavmc.core.context import Core
from plasmavmc.core.networks import groups, networks, ports
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.records import read
from plasmavmc.types.vm import VirtualMachine

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


async def security_group_changed(core: Core, org_id: str, project_id: str, changed: str) -> int:
    """Re-send the groups of every affected port; returns how many ports were updated."""
    updated = 0
    for network in await networks.list_networks(core.store, org_id, project_id):
        for rec in await ports.list_ports(core.store, network.id):
            names = rec.port.security_groups
            if not rec.vm_id or not await _affected(core, org_id, project_id, changed, names):
                continue
            vm = await read(core.store, VirtualMachine, keys.vm(org_id, project_id, rec.vm_id))
            if vm is None or vm.value.node_id is None:
                continue
            try:
                agent = await core.agent_for(vm.value)
                await agent.update_port_security(rec.port.id, await groups.resolve(core.store, network, names))
                updated += 1
            except PlasmaError as err:
                log.warning("port %s of VM %s: security groups not pushed: %s", rec.port.id, rec.vm_id, err)
    return updated
