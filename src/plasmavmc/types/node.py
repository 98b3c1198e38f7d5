"""The Node resource (spec §3.5). Field names match the protobuf messages one to one."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from plasmavmc.types.vm import HypervisorType


class NodeState(StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"
    CORDONED = "cordoned"
    DRAINING = "draining"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class NodeCapacity:
    vcpus: int = 0
    memory_mib: int = 0
    storage_gib: int = 0

    def __add__(self, other: NodeCapacity) -> NodeCapacity:
        return NodeCapacity(
            self.vcpus + other.vcpus, self.memory_mib + other.memory_mib, self.storage_gib + other.storage_gib
        )

    def __sub__(self, other: NodeCapacity) -> NodeCapacity:
        return NodeCapacity(
            self.vcpus - other.vcpus, self.memory_mib - other.memory_mib, self.storage_gib - other.storage_gib
        )

    def fits(self, need: NodeCapacity) -> bool:
        return need.vcpus <= self.vcpus and need.memory_mib <= self.memory_mib and need.storage_gib <= self.storage_gib


@dataclass(frozen=True)
class Taint:
    key: str = ""
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class NodeCondition:
    type: str = ""
    status: bool = False
    reason: str = ""
    message: str = ""
    last_transition_at: int = 0


@dataclass(frozen=True)
class Node:
    id: str
    name: str = ""
    state: NodeState = NodeState.NOT_READY
    capacity: NodeCapacity = field(default_factory=NodeCapacity)
    allocatable: NodeCapacity = field(default_factory=NodeCapacity)
    allocated: NodeCapacity = field(default_factory=NodeCapacity)
    hypervisors: tuple[HypervisorType, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    conditions: tuple[NodeCondition, ...] = ()
    agent_version: str = ""
    last_heartbeat: int = 0
    agent_address: str = ""  # where the control plane reaches this node's AgentService
    accelerator: str = ""  # what `accel = "auto"` chose on this node: "kvm" or "tcg"
    underlay_address: str = ""  # the node's tunnel endpoint (IPv4) for tenant-network overlays; "" = none
    agent_started_at: int = 0  # when the agent process started (unix seconds): a new value = a restart
