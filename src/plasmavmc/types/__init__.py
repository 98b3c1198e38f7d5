"""Domain types of PlasmaVMC (spec §3): frozen dataclasses and enums shared by every layer."""

from plasmavmc.types.image import Image, ImageFormat, ImageSource, ImageStatus, Visibility
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    BootSpec,
    CpuSpec,
    DiskBus,
    DiskCache,
    DiskSource,
    DiskSpec,
    HypervisorType,
    MemorySpec,
    NetworkSpec,
    NicModel,
    ResourceUsage,
    SecuritySpec,
    VirtualMachine,
    VmSpec,
    VmStatus,
)

__all__ = [
    "BootSpec",
    "CpuSpec",
    "DiskBus",
    "DiskCache",
    "DiskSource",
    "DiskSpec",
    "HypervisorType",
    "Image",
    "ImageFormat",
    "ImageSource",
    "ImageStatus",
    "MemorySpec",
    "NetworkSpec",
    "NicModel",
    "Node",
    "NodeCapacity",
    "NodeState",
    "ResourceUsage",
    "SecuritySpec",
    "VirtualMachine",
    "Visibility",
    "VmSpec",
    "VmState",
    "VmStatus",
]
