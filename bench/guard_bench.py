"""What the request guard (`wire/guard.py`) costs per request: decoding plus `check_message`, against
decoding alone, for a CreateVmRequest and for a heartbeat carrying 50 VM reports.

    .venv/bin/python -m bench.guard_bench
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.common import emit, median
from plasmavmc.v1 import agent_pb2, types_pb2, vm_pb2
from plasmavmc.wire.guard import check_message

ROUNDS, PER_ROUND = 7, 2000


def create_vm() -> bytes:
    req = vm_pb2.CreateVmRequest(name="web-1", org_id="org", project_id="proj",
                                 hypervisor=types_pb2.HYPERVISOR_TYPE_KVM)
    req.spec.cpu.vcpus = 2
    req.spec.memory.size_mib = 512
    for i in range(2):
        disk = req.spec.disks.add(id=f"d{i}", size_gib=10)
        disk.source.image_id = "debian-12"
    req.labels.update({f"k{i}": "v" for i in range(8)})
    return req.SerializeToString()


def heartbeat() -> bytes:
    req = agent_pb2.HeartbeatRequest()
    req.node.id = "node-1"
    req.node.hypervisors.append(types_pb2.HYPERVISOR_TYPE_KVM)
    for i in range(50):
        vm = req.vms.add(vm_id=f"00000000-0000-0000-0000-{i:012d}")
        vm.status.actual_state = types_pb2.VM_STATE_RUNNING
    return req.SerializeToString()


def per_call_us(fn: Callable[[], object]) -> float:
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(PER_ROUND):
            fn()
        rounds.append((time.perf_counter() - start) / PER_ROUND * 1e6)
    return round(median(rounds), 2)


def main() -> None:
    figures = {}
    for name, cls, raw in (("create_vm", vm_pb2.CreateVmRequest, create_vm()),
                           ("heartbeat_50_vms", agent_pb2.HeartbeatRequest, heartbeat())):
        decode = per_call_us(lambda cls=cls, raw=raw: cls.FromString(raw))
        guarded = per_call_us(lambda cls=cls, raw=raw: check_message(cls.FromString(raw)))
        figures[name] = {"bytes": len(raw), "decode_us": decode, "decode_and_check_us": guarded,
                         "check_us": round(guarded - decode, 2)}
    emit("request_guard", rounds=ROUNDS, calls_per_round=PER_ROUND, **figures)


if __name__ == "__main__":
    main()
