"""`wire.convert`: every domain dataclass that has a message of its name survives `to_proto` ->
`from_proto` unchanged, filled (every field set, enums at each member) or sparse (optional fields None,
others at their defaults); a peer's unknown enum number and a required field left unset are
INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import itertools
import types
import typing
from typing import Any

import pytest
from google.protobuf.message import Message

from plasmavmc.errors import InvalidArgument
from plasmavmc.hypervisor import base
from plasmavmc.types import events, iam, image, network, node, quota, runtime, vm
from plasmavmc.v1 import agent_pb2, iam_pb2, image_pb2, network_pb2, node_pb2, quota_pb2, types_pb2, vm_pb2
from plasmavmc.wire.convert import enum_from_proto, enum_to_proto, from_proto, to_proto

MESSAGES = (types_pb2, agent_pb2, vm_pb2, iam_pb2, image_pb2, network_pb2, node_pb2, quota_pb2)
CLASSES = {name: cls for module in (base, events, iam, image, network, node, quota, runtime, vm)
           for name, cls in inspect.getmembers(module) if dataclasses.is_dataclass(cls) and isinstance(cls, type)}
PAIRS = sorted({(name, msg) for name, cls in CLASSES.items() for module in MESSAGES
                if isinstance(msg := getattr(module, name, None), type) and issubclass(msg, Message)},
               key=lambda pair: (pair[0], pair[1].DESCRIPTOR.full_name))


def filled(tp: Any, desc: Any, n: int, *, sparse: bool) -> Any:
    """A value of type `tp` (message type `desc`, if a dataclass): every field set (`n` picks enum
    members and lengths; of a oneof, its first member), or (`sparse`) the optional ones None and the
    rest at their defaults."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if sparse else filled(inner, desc, n, sparse=sparse)
    if typing.get_origin(tp) is tuple:
        return tuple(filled(typing.get_args(tp)[0], desc, n + i, sparse=sparse) for i in range(1 + n % 2))
    if typing.get_origin(tp) is dict:
        return {f"k{i}": f"v{n}" for i in range(1 + n % 2)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return list(tp)[n % len(tp)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints, values = typing.get_type_hints(tp), {}
        for f in dataclasses.fields(tp):
            fd = desc.fields_by_name[f.name]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if (sparse and not required) or (fd.containing_oneof and fd.containing_oneof.fields[0] is not fd):
                continue
            values[f.name] = filled(hints[f.name], fd.message_type, n, sparse=sparse)
        return tp(**values)
    return {str: f"s{n}", int: 7 + n, bool: True, float: 0.5 + n, bytes: b"b"}[tp]


def test_the_pairs_cover_the_records() -> None:
    names = {name for name, _ in PAIRS}
    assert {"VirtualMachine", "VmSpec", "VmStatus", "Image", "Node", "VmHandle"} <= names, names


@pytest.mark.parametrize(("name", "message"), PAIRS, ids=[f"{n}-{m.DESCRIPTOR.full_name}" for n, m in PAIRS])
def test_round_trip(name: str, message: type[Message]) -> None:
    cls = CLASSES[name]
    for n, sparse in itertools.product(range(4), (False, True)):
        value = filled(cls, message.DESCRIPTOR, n, sparse=sparse)
        wire = to_proto(value, message())
        assert from_proto(cls, message.FromString(wire.SerializeToString())) == value, (n, sparse)


def test_an_unknown_enum_number_names_its_field() -> None:
    msg = types_pb2.VirtualMachine(id="v", name="n", org_id="o", project_id="p", state=999)
    with pytest.raises(InvalidArgument, match="state: 999 is not a known VmState value"):
        from_proto(vm.VirtualMachine, msg)
    repeated = vm_pb2.ListVmsRequest()
    repeated.states.append(998)
    with pytest.raises(InvalidArgument, match="states"):
        enum_from_proto(vm.VmState, 998, types_pb2.VmState.DESCRIPTOR, "states")


def test_enums_map_by_name_and_unspecified_reads_as_the_default() -> None:
    number = enum_to_proto(vm.VmState.RUNNING, types_pb2.VmState.DESCRIPTOR)
    assert types_pb2.VmState.Name(number) == "VM_STATE_RUNNING"
    assert enum_from_proto(vm.VmState, 0, types_pb2.VmState.DESCRIPTOR) is None
    disk = from_proto(vm.DiskSpec, types_pb2.DiskSpec(id="root"))  # bus and cache UNSPECIFIED on the wire
    assert disk.bus is vm.DiskSpec().bus and disk.cache is vm.DiskSpec().cache


def test_a_required_field_left_unset_names_it() -> None:
    with pytest.raises(InvalidArgument, match="backend: required in VmHandle"):
        from_proto(base.VmHandle, agent_pb2.VmHandle(vm_id="v"))  # its hypervisor UNSPECIFIED


def test_an_unset_optional_message_is_none_and_a_set_empty_one_is_not() -> None:
    msg = types_pb2.VirtualMachine(id="v", name="n", org_id="o", project_id="p")
    assert from_proto(vm.VirtualMachine, msg).source_snapshot is None
    msg.source_snapshot.SetInParent()
    assert from_proto(vm.VirtualMachine, msg).source_snapshot == vm.CloneSource()
