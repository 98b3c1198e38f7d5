"""The committed gRPC code is what `scripts/gen-proto` makes from `proto/` today (fails when stale)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def generated(root: Path) -> dict[str, bytes]:
    out = {}
    for pattern in ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py"):
        for path in root.glob(f"plasmavmc/**/{pattern}"):
            if "store/etcdpb" in str(path):
                continue  # etcd's own API: scripts/gen-etcd-proto, checked by test_etcd_proto_fresh.py
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    subprocess.run([str(ROOT / "scripts" / "gen-proto"), str(tmp_path)], check=True, env=env, cwd=ROOT)
    fresh, committed = generated(tmp_path), generated(ROOT / "src")
    assert fresh, "gen-proto produced nothing"
    stale = sorted(k for k in fresh.keys() | committed.keys() if fresh.get(k) != committed.get(k))
    assert not stale, f"generated code is stale, run scripts/gen-proto: {stale}"


def test_every_spec_rpc_is_declared() -> None:
    from plasmavmc.v1 import agent_pb2, image_pb2, node_pb2, vm_pb2

    def methods(module: object, service: str) -> set[str]:
        return {m.name for m in module.DESCRIPTOR.services_by_name[service].methods}  # type: ignore[attr-defined]

    assert {
        "CreateVm",
        "GetVm",
        "ListVms",
        "UpdateVm",
        "DeleteVm",
        "StartVm",
        "StopVm",
        "RebootVm",
        "ResetVm",
        "AttachDisk",
        "DetachDisk",
        "AttachNic",
        "DetachNic",
        "GetConsole",
        "WatchVm",
    } <= methods(vm_pb2, "VmService")
    assert {
        "CreateImage",
        "GetImage",
        "ListImages",
        "UpdateImage",
        "DeleteImage",
        "UploadImage",
        "DownloadImage",
        "ConvertImage",
    } <= methods(image_pb2, "ImageService")
    node_rpcs = {"ListNodes", "GetNode", "CordonNode", "UncordonNode", "DrainNode", "DeleteNode"}
    assert node_rpcs <= methods(node_pb2, "NodeService")
    assert {
        "CreateVm",
        "StartVm",
        "StopVm",
        "DeleteVm",
        "GetVmStatus",
        "Heartbeat",
        "ReportStatus",
    } <= methods(agent_pb2, "AgentService")


def test_each_side_of_agent_service_names_the_other_for_what_it_does_not_serve() -> None:
    from plasmavmc.agent.service import AgentServicer
    from plasmavmc.api.agent_reports import AgentReportServicer
    from plasmavmc.v1 import agent_pb2

    methods = {m.name for m in agent_pb2.DESCRIPTOR.services_by_name["AgentService"].methods}
    reports = {"Heartbeat", "HeartbeatStream", "ReportStatus"}
    for name in methods:
        on_agent = getattr(AgentServicer, name).__qualname__
        on_server = getattr(AgentReportServicer, name).__qualname__
        assert ("unimplemented" in on_agent) == (name in reports), name
        assert ("unimplemented" in on_server) == (name not in reports), name
