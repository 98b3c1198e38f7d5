"""Guests on namespace "nodes": two network namespaces joined by a veth underlay, one QEMU guest in each,
plugged through a network provider's port — shared by the cross-node provider tests (VXLAN, Geneve) and
`bench.vxlan_bench`.

* `two_namespaces(stem, extra_wires)`: the namespaces, with veth `u0` between them holding `UNDERLAY`
  (TEST-NET-1, never leaving the namespaces) and, per name in `extra_wires`, one more unaddressed veth.
* `entered(ns)`: run a block inside a namespace (netlink sockets and new processes are made there).
* `guest_port(...)`: the `PortRequest` of a guest's NIC (a fresh VM id, its tap name, the default group).
* `boot(guests, ...)`: per guest, its port then its VM, created and started inside its namespace; then
  waits (bounded) for every guest's readiness line. `stop(guests, ...)`: consoles closed, VMs killed and
  deleted, each provider torn down inside its namespace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pyroute2 import netns as pnetns

from plasmavmc.core.networks.groups import default_group
from plasmavmc.hypervisor.base import ConsoleStream, HypervisorBackend, VmHandle
from plasmavmc.hypervisor.common import tap_name
from plasmavmc.types.network import Network, Port, PortRequest
from plasmavmc.types.vm import ConsoleType, NetworkSpec
from tests.contract.backends import BOOT_DEADLINE_S, BackendProfile, read_until
from tests.netns import unique_name

UNDERLAY = ("192.0.2.1", "192.0.2.2")


class Plumbing(Protocol):
    """What these helpers need of a provider (both the bridge and the OVN provider have it)."""

    async def create_port(self, req: PortRequest) -> Port: ...

    async def teardown(self) -> None: ...


P = TypeVar("P", bound=Plumbing)


@dataclass
class NsGuest(Generic[P]):
    ns: str
    provider: P
    req: PortRequest
    handle: VmHandle | None = None
    console: ConsoleStream | None = None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def two_namespaces(stem: str, extra_wires: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """Two "nodes" named from `stem`: veth `u0` (the underlay, addressed) and the `extra_wires` between them."""
    names = (unique_name(f"{stem}a"), unique_name(f"{stem}b"))
    try:
        for ns in names:
            _ip("netns", "add", ns)
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for dev in ("u0", *extra_wires):
            _ip("netns", "exec", names[0], "ip", "link", "add", dev, "type", "veth", "peer", "name", dev,
                "netns", names[1])
        for ns, addr in zip(names, UNDERLAY, strict=True):
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", "u0")
            for dev in ("u0", *extra_wires):
                _ip("netns", "exec", ns, "ip", "link", "set", dev, "up")
        yield names
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the block inside node `ns`: netlink sockets and new processes are made there."""
    pnetns.pushns(ns)
    try:
        yield
    finally:
        pnetns.popns()


def guest_port(net: Network, port_id: str, mac: str, ip: str) -> PortRequest:
    vm_id = str(uuid.uuid4())
    return PortRequest(port_id=port_id, network=net, mac_address=mac, ip_addresses=(ip,),
                       tap_device=tap_name(vm_id, "nic0"), security_groups=(default_group(net),), vm_id=vm_id)


async def boot(guests: Sequence[NsGuest[Any]], profile: BackendProfile, backend: HypervisorBackend, stem: str,
               plumb: Callable[[NsGuest[Any]], Awaitable[None]] | None = None) -> None:
    """Each guest's port (then `plumb`, inside its namespace) and VM; then every guest's readiness line."""
    for i, guest in enumerate(guests):
        vm = profile.vm(f"{stem}{i}")
        nic = NetworkSpec(id="nic0", network_id=guest.req.network.id, mac_address=guest.req.mac_address)
        vm = dataclasses.replace(vm, id=guest.req.vm_id, spec=dataclasses.replace(vm.spec, network=(nic,)))
        with entered(guest.ns):
            await guest.provider.create_port(guest.req)
            if plumb is not None:
                await plumb(guest)
            guest.handle = await backend.create(vm, await profile.guest())
            await backend.start(guest.handle)
        guest.console = await backend.console(guest.handle, ConsoleType.SERIAL)
    for guest in guests:
        assert guest.console is not None and guest.handle is not None
        await read_until(guest.console, profile.ready(guest.handle), bytearray(), BOOT_DEADLINE_S)


async def stop(guests: Sequence[NsGuest[Any]], backend: HypervisorBackend,
               after: Callable[[NsGuest[Any]], Awaitable[None]] | None = None) -> None:
    """Consoles closed, VMs killed and deleted, each provider torn down (then `after`) inside its namespace."""
    for guest in guests:
        if guest.console is not None:
            await guest.console.close()
        if guest.handle is not None:
            await backend.kill(guest.handle)
            await backend.delete(guest.handle)
        with entered(guest.ns):
            await guest.provider.teardown()
            if after is not None:
                await after(guest)
