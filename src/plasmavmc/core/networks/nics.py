"""A VM's NICs on tenant networks: ports allocated at create/attach, told to the node, released at delete.

`allocate` resolves each NIC's network (`default` is the project's default network, made on first use),
creates its port (id derived from VM and NIC ids, so a retried create finds the same one) and writes the
assigned MAC and address into the NIC spec, which is how `vm get` shows them. `port_requests` rebuilds
what the node must plumb from the store alone, so a create finished by another replica tells the same.
Security groups: every port gets the network's built-in `default` group — egress anywhere, ingress
from the same network only; named groups are refused at validation until the group API exists.
"""

from __future__ import annotations

import dataclasses

from plasmavmc.core.networks import groups, networks, ports
from plasmavmc.errors import NotFound, PlasmaError
from plasmavmc.hypervisor.common import tap_name
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.records import read
from plasmavmc.types.network import Network, PortRequest, port_id_for
from plasmavmc.types.vm import NetworkSpec, VirtualMachine


async def _network(store: Store, vm: VirtualMachine, ref: str, field: str) -> Network:
    if ref == networks.DEFAULT_NAME:
        return await networks.ensure_default(store, vm.org_id, vm.project_id)
    try:
        return await networks.get(store, vm.org_id, vm.project_id, ref)
    except NotFound as exc:
        raise NotFound(exc.message, field=field) from exc


async def allocate_nic(store: Store, vm: VirtualMachine, nic: NetworkSpec, field: str) -> NetworkSpec:
    network = await _network(store, vm, nic.network_id, f"{field}.network_id")
    for i, name in enumerate(nic.security_groups):
        if name != groups.DEFAULT:
            try:
                await groups.get(store, vm.org_id, vm.project_id, name)
            except NotFound as exc:
                raise NotFound(exc.message, field=f"{field}.security_groups[{i}]") from exc
    rec = await ports.create(store, network, vm_id=vm.id, nic_id=nic.id, mac=nic.mac_address, ip=nic.ip_address,
                             port_id=port_id_for(vm.id, nic.id), security_groups=nic.security_groups)
    return dataclasses.replace(nic, network_id=network.id, mac_address=rec.port.mac_address,
                               ip_address=rec.port.ip_addresses[0])


async def allocate(store: Store, vm: VirtualMachine) -> VirtualMachine:
    """`vm` with every NIC on a port; on failure the ports made so far are released again."""
    done: list[NetworkSpec] = []
    try:
        for i, nic in enumerate(vm.spec.network):
            done.append(await allocate_nic(store, vm, nic, f"spec.network[{i}]"))
    except PlasmaError:
        await release(store, dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, network=tuple(done))))
        raise
    return dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, network=tuple(done)))


async def port_request(store: Store, vm: VirtualMachine, nic: NetworkSpec) -> PortRequest:
    found = await read(store, Network, keys.network(vm.org_id, vm.project_id, nic.network_id))
    if found is None:
        raise NotFound(f"network {nic.network_id} of NIC {nic.id} is gone", field="network_id")
    network = found.value
    rec = await ports.get(store, network.id, port_id_for(vm.id, nic.id))
    return PortRequest(
        port_id=rec.port.id, network=network, mac_address=rec.port.mac_address,
        ip_addresses=rec.port.ip_addresses, tap_device=tap_name(vm.id, nic.id),
        security_groups=await groups.resolve(store, network, rec.port.security_groups), vm_id=vm.id,
    )


async def port_requests(store: Store, vm: VirtualMachine) -> list[PortRequest]:
    return [await port_request(store, vm, nic) for nic in vm.spec.network]


async def release_nic(store: Store, vm: VirtualMachine, nic: NetworkSpec) -> None:
    await ports.delete(store, nic.network_id, port_id_for(vm.id, nic.id))


async def release(store: Store, vm: VirtualMachine) -> None:
    for nic in vm.spec.network:
        await release_nic(store, vm, nic)
