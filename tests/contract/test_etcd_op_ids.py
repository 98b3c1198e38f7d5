"""etcd specifics of op ids (`EtcdStore`): the marker key lives on a lease, is invisible to list and
watch, and a commit still works when that lease vanished (revoked, or expired during an outage)."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.store import etcd_lease
from plasmavmc.store.base import Write
from plasmavmc.store.etcd import OP_MARKER, EtcdStore
from plasmavmc.store.etcd_conn import Stubs
from plasmavmc.store.etcdpb import rpc_pb2
from tests.etcd import EtcdCluster, needs_etcd

pytestmark = needs_etcd


async def raw_keys(store: EtcdStore) -> list[bytes]:
    async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.RangeResponse:
        response: rpc_pb2.RangeResponse = await stubs.kv.Range(
            rpc_pb2.RangeRequest(key=store.key(""), range_end=store.key("") + b"\xff\xff", keys_only=True),
            timeout=timeout,
        )
        return response

    return [kv.key for kv in (await store.conn.call(rpc, "range")).kvs]


async def test_marker_rides_a_lease_and_a_lost_lease_is_replaced(etcd_service: EtcdCluster, tmp_path: Path) -> None:
    store = await EtcdStore.open(etcd_service.endpoints, namespace=f"opids/{tmp_path.name}/")
    try:
        rev = await store.commit([Write("t/a", b"1", expected_revision=0)], op_id="first")
        markers = [k for k in await raw_keys(store) if OP_MARKER in k]
        assert markers == [store.key("") + OP_MARKER + b"first"]
        lease = store._op_lease
        assert lease is not None
        await etcd_lease.revoke(store, lease[0])  # the marker goes with its lease
        assert [k for k in await raw_keys(store) if OP_MARKER in k] == []
        later = await store.commit([Write("t/b", b"2", expected_revision=0)], op_id="second")
        assert later > rev and store._op_lease is not None and store._op_lease[0] != lease[0]
        assert [kv.key for kv in (await store.list("")).items] == ["t/a", "t/b"]
    finally:
        await store.close()
