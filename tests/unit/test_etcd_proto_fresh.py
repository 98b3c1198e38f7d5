"""The committed etcd stubs (src/plasmavmc/store/etcdpb) are what `scripts/gen-etcd-proto` makes from the
trimmed protos in proto/plasmavmc/store/etcdpb today, and those keep etcd's wire names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "plasmavmc/store/etcdpb"


def generated(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for pattern in ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")
        for path in (root / PACKAGE).glob(pattern)
    }


def test_etcd_stubs_match_trimmed_protos(tmp_path: Path) -> None:
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    subprocess.run([str(ROOT / "scripts" / "gen-etcd-proto"), str(tmp_path)], check=True, env=env, cwd=ROOT)
    fresh, committed = generated(tmp_path), generated(ROOT / "src")
    assert len(fresh) == 9, sorted(fresh)
    stale = sorted(k for k in fresh.keys() | committed.keys() if fresh.get(k) != committed.get(k))
    assert not stale, f"etcd stubs are stale, run scripts/gen-etcd-proto: {stale}"


def test_trimmed_protos_keep_etcd_wire_names() -> None:
    from plasmavmc.store.etcdpb import kv_pb2, rpc_pb2

    services = rpc_pb2.DESCRIPTOR.services_by_name
    assert {"KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth"} <= set(services)
    assert services["KV"].full_name == "etcdserverpb.KV"
    assert {m.name for m in services["KV"].methods} == {"Range", "Put", "DeleteRange", "Txn", "Compact"}
    assert kv_pb2.DESCRIPTOR.package == "mvccpb"
    for proto in (ROOT / "proto" / PACKAGE).glob("*.proto"):
        text = proto.read_text()
        assert "gogoproto" not in text and "google.api" not in text, proto.name
