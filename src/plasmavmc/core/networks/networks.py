"""Network records: create (name claim + overlay segment claim + record in one commit), get, list, delete.

A network belongs to an org/project; its name is unique in the project (`names/network/...`). Each
network gets an overlay segment id (VNI) claimed once across the whole deployment (`vnis/<n>`), which
the bridge provider uses for VXLAN and OVN as its tunnel key. The project's `default` network is made
on first use (`ensure_default`); two servers racing to make it both end up with the same one. Networks
count in the `max_networks` quota of their project and org (charged in the creating commit).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import uuid
from dataclasses import dataclass

from plasmavmc import validation
from plasmavmc.core import quotas
from plasmavmc.errors import AlreadyExists, Conflict, InvalidArgument, InvalidState, NotFound
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.records import read
from plasmavmc.types import codec
from plasmavmc.types.network import Network
from plasmavmc.types.quota import QuotaUsage

DEFAULT_NAME = "default"
DEFAULT_CIDR = "10.0.0.0/24"
VNI_MAX = (1 << 24) - 1
MIN_PREFIX, MAX_PREFIX = 8, 29
ONE_NETWORK = QuotaUsage(networks=1)  # counted in `max_networks` of the project and its org


@dataclass(frozen=True)
class NetworkRequest:
    org_id: str
    project_id: str
    name: str
    cidr: str
    gateway: str = ""
    dhcp: bool = True
    egress_nat: bool = False


def validate(req: NetworkRequest) -> None:
    validation.name(req.org_id, "network.org_id")
    validation.name(req.project_id, "network.project_id")
    validation.name(req.name, "network.name")
    try:
        subnet = ipaddress.IPv4Network(req.cidr, strict=True)
    except ValueError as exc:
        raise InvalidArgument("network.cidr", f"{req.cidr[:60]!r} is not an IPv4 network ({exc})") from exc
    if not MIN_PREFIX <= subnet.prefixlen <= MAX_PREFIX:
        raise InvalidArgument("network.cidr", f"prefix length must be /{MIN_PREFIX} to /{MAX_PREFIX}")
    if req.gateway:
        try:
            gateway = ipaddress.IPv4Address(req.gateway)
        except ValueError as exc:
            raise InvalidArgument("network.gateway", f"{req.gateway[:60]!r} is not an IPv4 address") from exc
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument("network.gateway", f"{gateway} is not a host address of {subnet}")


def first_host(cidr: str) -> str:
    return str(next(ipaddress.IPv4Network(cidr, strict=True).hosts()))


def _resolved(network: Network) -> Network:
    """The gateway as the datapath uses it: records written before it was stored have "" (first host)."""
    return network if network.gateway else dataclasses.replace(network, gateway=network.gateway_ip)


async def create(store: Store, req: NetworkRequest) -> Network:
    validate(req)
    network_id = str(uuid.uuid4())
    for _ in range(20):
        vni = random.randint(1, VNI_MAX)
        network = Network(
            id=network_id, cidr=req.cidr, gateway=req.gateway or first_host(req.cidr), dhcp=req.dhcp,
            egress_nat=req.egress_nat,
            vni=vni, org_id=req.org_id, project_id=req.project_id, name=req.name,
        )
        name_key = keys.network_name(req.org_id, req.project_id, req.name)
        try:
            await quotas.commit_charged(store, req.org_id, req.project_id, ONE_NETWORK, [
                Write(name_key, network_id.encode(), 0),
                Write(keys.vni(vni), network_id.encode(), 0),
                Write(keys.network(req.org_id, req.project_id, network_id), codec.dumps(network), 0),
            ])
        except Conflict as exc:
            if await store.get(name_key) is not None:
                raise AlreadyExists(f"a network named {req.name!r} exists in this project",
                                    field="network.name") from exc
            continue  # the VNI was taken: draw another
        return network
    raise Conflict("could not claim an overlay segment id, try again")


async def get(store: Store, org_id: str, project_id: str, ref: str) -> Network:
    """A network by id or name."""
    validation.name(org_id, "network.org_id")
    validation.name(project_id, "network.project_id")
    validation.name(ref, "network_id")
    network_id = ref
    if not validation.is_uuid(ref):
        kv = await store.get(keys.network_name(org_id, project_id, ref))
        if kv is None:
            raise NotFound(f"no network named {ref!r} in {org_id}/{project_id}", field="network_id")
        network_id = kv.value.decode()
    found = await read(store, Network, keys.network(org_id, project_id, network_id))
    if found is None:
        raise NotFound(f"network {ref!r} not found in {org_id}/{project_id}", field="network_id")
    return _resolved(found.value)


async def list_networks(store: Store, org_id: str, project_id: str) -> list[Network]:
    kvs = await store.list_all(keys.networks_in(org_id, project_id))
    return [_resolved(codec.loads(Network, kv.value)) for kv in kvs]


async def ensure_default(store: Store, org_id: str, project_id: str) -> Network:
    """The project's `default` network, created on first use."""
    try:
        return await get(store, org_id, project_id, DEFAULT_NAME)
    except NotFound:
        pass
    try:
        return await create(store, NetworkRequest(org_id, project_id, DEFAULT_NAME, DEFAULT_CIDR))
    except AlreadyExists:
        return await get(store, org_id, project_id, DEFAULT_NAME)  # another server made it first


async def delete(store: Store, org_id: str, project_id: str, ref: str) -> Network:
    """Delete a network that has no ports left (INVALID_STATE otherwise)."""
    network = await get(store, org_id, project_id, ref)
    if (await store.list(keys.ports_in(network.id), limit=1)).items:
        raise InvalidState(f"network {network.name!r} still has ports; delete its VMs/NICs first",
                           field="network_id")
    rec = await store.get(keys.network(org_id, project_id, network.id))
    assert rec is not None
    await quotas.commit_charged(store, org_id, project_id, -ONE_NETWORK, [
        Write(rec.key, None, rec.mod_revision),
        Write(keys.network_name(org_id, project_id, network.name), None),
        Write(keys.vni(network.vni), None),
    ])
    return network
