"""Validation of what a node agent reports (Heartbeat, ReportStatus), before anything is stored.

An agent is a caller like any other: a report that could not be read back, stored, summed or printed
safely is refused with INVALID_ARGUMENT naming the field, so one bad heartbeat can never leave a node
record that poisons ListNodes, scheduling or `/ready` (issue 13). The same goes the other way for the
overlay views the control plane sends an agent (`network_peers`, UpdateNetworkPeers).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from plasmavmc import validation
from plasmavmc.errors import InvalidArgument
from plasmavmc.limits import (
    MAX_NODE_CONDITIONS,
    MAX_NODE_MEMORY_MIB,
    MAX_NODE_STORAGE_GIB,
    MAX_NODE_VCPUS,
    MAX_NODE_VMS,
    MAX_TAINTS,
    NAME_MAX,
    TEXT_MAX,
)
from plasmavmc.types.network import NetworkPeers
from plasmavmc.types.node import Node, NodeCapacity

_ADDRESS_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")
_LOWER_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
ACCELERATORS = ("kvm", "tcg", "simulated")  # simulated: the scale backend's nodes


def capacity(value: NodeCapacity, field: str) -> NodeCapacity:
    for part, top in (("vcpus", MAX_NODE_VCPUS), ("memory_mib", MAX_NODE_MEMORY_MIB),
                      ("storage_gib", MAX_NODE_STORAGE_GIB)):
        number = getattr(value, part)
        if not 0 <= number <= top:
            raise InvalidArgument(f"{field}.{part}", f"must be between 0 and {top}, got {number}")
    return value


def agent_address(value: str, field: str) -> str:
    if value and (len(value) > 300 or not _ADDRESS_RE.fullmatch(value) or int(value.rpartition(":")[2]) > 65535):
        raise InvalidArgument(field, f"{value[:80]!r} is not host:port")
    return value


def node(reported: Node, field: str = "node") -> Node:
    """A node as its agent reports it in a heartbeat."""
    validation.name(reported.id, f"{field}.id")
    if reported.name:
        validation.name(reported.name, f"{field}.name")
    capacity(reported.capacity, f"{field}.capacity")
    capacity(reported.allocatable, f"{field}.allocatable")
    capacity(reported.allocated, f"{field}.allocated")
    if None in reported.hypervisors or len(set(reported.hypervisors)) != len(reported.hypervisors):
        raise InvalidArgument(f"{field}.hypervisors", "each hypervisor once, none unspecified")
    validation.labels(reported.labels, f"{field}.labels")
    if len(reported.taints) > MAX_TAINTS:
        raise InvalidArgument(f"{field}.taints", f"at most {MAX_TAINTS}")
    for i, taint in enumerate(reported.taints):
        validation.labels({taint.key: taint.value}, f"{field}.taints[{i}]")
        if taint.effect not in validation.TAINT_EFFECTS:
            raise InvalidArgument(f"{field}.taints[{i}].effect", f"one of {validation.TAINT_EFFECTS[1:]} or empty")
    if len(reported.conditions) > MAX_NODE_CONDITIONS:
        raise InvalidArgument(f"{field}.conditions", f"at most {MAX_NODE_CONDITIONS}")
    for i, cond in enumerate(reported.conditions):
        validation.text(cond.type, f"{field}.conditions[{i}].type", NAME_MAX)
        validation.text(cond.reason, f"{field}.conditions[{i}].reason", TEXT_MAX)
        validation.text(cond.message, f"{field}.conditions[{i}].message", TEXT_MAX)
    validation.text(reported.agent_version, f"{field}.agent_version", NAME_MAX)
    agent_address(reported.agent_address, f"{field}.agent_address")
    underlay_address(reported.underlay_address, f"{field}.underlay_address")
    if reported.accelerator and not set(reported.accelerator.split(",")) <= set(ACCELERATORS):
        raise InvalidArgument(f"{field}.accelerator", f"a comma-separated list of {ACCELERATORS}, or empty")
    return reported


def underlay_address(value: str, field: str) -> str:
    """A node's tunnel endpoint (`[network] underlay_address`, a heartbeat, an overlay view): "" (none) or
    one unicast IPv4 address."""
    if not value:
        return value
    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise InvalidArgument(field, f"{value[:60]!r} is not an IPv4 address") from exc
    if addr.is_unspecified or addr.is_multicast or addr == ipaddress.IPv4Address("255.255.255.255"):
        raise InvalidArgument(field, f"{value} is not a unicast address")
    return value


def network_peers(view: NetworkPeers) -> NetworkPeers:
    """A network's overlay view as the control plane sends it to an agent (UpdateNetworkPeers)."""
    validation.name(view.network.id, "network.id")
    if not 0 <= view.network.vni < 2**24:
        raise InvalidArgument("network.vni", "a VXLAN segment id is 24 bits")
    for i, peer in enumerate(view.peers):
        underlay_address(peer, f"peers[{i}]")
    for i, entry in enumerate(view.fdb):
        if not _LOWER_MAC_RE.fullmatch(entry.mac_address):
            raise InvalidArgument(f"fdb[{i}].mac_address", f"{entry.mac_address[:40]!r} is not a lower-case MAC")
        if not entry.remote:
            raise InvalidArgument(f"fdb[{i}].remote", "must not be empty")
        underlay_address(entry.remote, f"fdb[{i}].remote")
    return view


def heartbeat_lists(vm_ids: Sequence[str], gone: Sequence[str], delta: bool, vm_count: int) -> None:
    """A heartbeat's VM lists: valid ids as the control plane writes them, each VM named once;
    `gone_vm_ids` only in a delta; `vm_count` at most `MAX_NODE_VMS` and, in a delta, at least the VMs
    it reports."""
    seen: set[str] = set()
    for field, ids in (("vms", vm_ids), ("gone_vm_ids", gone)):
        for i, vm_id in enumerate(ids):
            if not validation.is_canonical_uuid(vm_id):  # the field is named only for a refusal
                where = f"{field}[{i}].vm_id" if field == "vms" else f"{field}[{i}]"
                validation.vm_id(vm_id, where)
                raise InvalidArgument(where, f"{vm_id[:80]!r} is not a VM id in canonical (lower-case) form")
            if vm_id in seen:
                raise InvalidArgument(f"{field}[{i}]", f"VM {vm_id} is named twice in one heartbeat")
            seen.add(vm_id)
    if gone and not delta:
        raise InvalidArgument("gone_vm_ids", "only in a delta heartbeat (a full one lists every VM)")
    if vm_count > MAX_NODE_VMS:
        raise InvalidArgument("vm_count", f"at most {MAX_NODE_VMS}, got {vm_count}")
    if delta and vm_count < len(vm_ids):
        raise InvalidArgument("vm_count", f"{vm_count} is fewer than the {len(vm_ids)} VMs reported")
