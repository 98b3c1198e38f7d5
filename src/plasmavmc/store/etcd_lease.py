"""etcd leases on an `EtcdStore`: grant, keep alive, revoke, and keys that live only as long as a lease.

A lease is etcd's liveness token: keys written with it vanish when it expires (its holder stopped
refreshing it for `ttl` seconds) or is revoked. Leader election (`server/leader.py`) and the registry
of live servers are built on these few calls; they are not part of the `Store` interface because the
single-node SQLite default has nothing to elect.
"""

from __future__ import annotations

from plasmavmc.store.etcd import EtcdStore
from plasmavmc.store.etcd_conn import Stubs
from plasmavmc.store.etcdpb import rpc_pb2


async def grant(store: EtcdStore, ttl: int) -> int:
    """A new lease of `ttl` seconds; returns its id."""

    async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.LeaseGrantResponse:
        response: rpc_pb2.LeaseGrantResponse = await stubs.lease.LeaseGrant(
            rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=timeout
        )
        return response

    return int((await store.conn.call(rpc, "lease grant")).ID)


async def keep_alive(store: EtcdStore, lease_id: int) -> int:
    """Refresh the lease once; returns the TTL it now has (0 or less: it has expired, it is gone)."""

    async def rpc(stubs: Stubs, timeout: float) -> int:
        call = stubs.lease.LeaseKeepAlive(timeout=timeout)
        try:
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            response = await call.read()
            await call.done_writing()
        finally:
            call.cancel()
        return 0 if not isinstance(response, rpc_pb2.LeaseKeepAliveResponse) else int(response.TTL)

    return await store.conn.call(rpc, "lease keep-alive")


async def revoke(store: EtcdStore, lease_id: int) -> None:
    """End the lease now: its keys are deleted at once (a clean shutdown hands leadership over fast)."""

    async def rpc(stubs: Stubs, timeout: float) -> None:
        await stubs.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout=timeout)

    await store.conn.call(rpc, "lease revoke")


async def put_leased(store: EtcdStore, key: str, value: bytes, lease_id: int) -> int:
    """Put `key` bound to the lease; returns the new revision."""

    async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.PutResponse:
        response: rpc_pb2.PutResponse = await stubs.kv.Put(
            rpc_pb2.PutRequest(key=store.key(key), value=value, lease=lease_id), timeout=timeout
        )
        return response

    return int((await store.conn.call(rpc, "put")).header.revision)


async def create_leased(store: EtcdStore, key: str, value: bytes, lease_id: int) -> bytes:
    """Create `key` bound to the lease unless it exists; returns the value it holds afterwards.

    The caller won when the returned value is its own `value` (campaigning for a leader key).
    """
    raw = store.key(key)
    request = rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.CREATE, key=raw, create_revision=0)
        ],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=raw, value=value, lease=lease_id))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=raw))],
    )

    async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.TxnResponse:
        response: rpc_pb2.TxnResponse = await stubs.kv.Txn(request, timeout=timeout)
        return response

    response = await store.conn.call(rpc, "txn")
    if response.succeeded:
        return value
    kvs = response.responses[0].response_range.kvs
    return bytes(kvs[0].value) if kvs else b""
