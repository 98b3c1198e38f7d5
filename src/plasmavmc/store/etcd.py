"""`EtcdStore`: the `Store` interface on an etcd v3 cluster, through etcd's own gRPC API.

The stubs are generated from etcd 3.4's .proto files (`store/etcdpb`, see `scripts/gen-etcd-proto`).
etcd already has the semantics the contract is modelled on, so this module is mostly a mapping:

- revisions, `create_revision`, `mod_revision` are etcd's own; `revision()` is a response header's;
- compare-and-swap and `commit` are one `Txn`: a `MOD` compare per expectation (etcd reports 0 for a
  missing key, which is exactly "must not exist"), the writes as success ops; on failure the txn reads
  the compared keys back so the `Conflict` names the key that lost;
- op ids (`commit(op_id=)`): the Txn also creates a marker key `\0op/<op_id>` (compared "must not
  exist", so a commit applies at most once) bound to a lease that expires after `OP_ID_RETENTION`-ish
  seconds (one lease granted per `OP_LEASE_ROTATE` seconds serves every commit meanwhile). When the
  Txn fails and the marker exists, the commit had been applied: a resend after a lost reply (our
  connection's fail-over retries, a caller's retry) answers the marker's revision, not `Conflict`.
  Every guarded commit without an op id gets a fresh one. Markers start with byte 0xFF, which no UTF-8
  key contains, so they sort after every key: `list` ranges stop before them, `watch` skips them;
- `list` is a `Range` over the prefix (`start_after` + NUL as the start key, `more` for the next page);
- `watch` is a `Watch` stream over the prefix from a revision. When the connection drops, the stream is
  re-opened (on another member if need be) from the revision after the last event delivered, so no
  event is lost or repeated; history older than etcd kept ends the watch with `Compacted`.

`namespace` prefixes every key (tests give each their own, the way etcd's namespace client does), and
`retention`, when set, compacts history to the last `retention` revisions after each write (etcd
clusters normally compact by themselves with `--auto-compaction-*`). Leases — used for leader election
— are in `store/etcd_lease.py`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import grpc.aio

from plasmavmc.errors import Conflict, InvalidArgument, StoreError
from plasmavmc.store import base
from plasmavmc.store.base import Compacted, EventType, KeyValue, Page, Store, WatchEvent, Write, check_writes
from plasmavmc.store.etcd_conn import DEFAULT_CALL_TIMEOUT, EtcdConnection, EtcdTls, Stubs, is_unavailable, translate
from plasmavmc.store.etcdpb import kv_pb2, rpc_pb2

NUL = b"\x00"
OP_MARKER = b"\xffop/"  # under the namespace: the marker key of an applied op id (after every UTF-8 key)
OP_LEASE_ROTATE = 60.0  # seconds one op-marker lease is used for new markers


def range_end(prefix: bytes) -> bytes:
    """etcd's end of the range of keys starting with `prefix` (NUL, meaning every key, when unbounded)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return NUL
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class EtcdStore(Store):
    """A `Store` on etcd v3; open with `EtcdStore.open(endpoints)`."""

    def __init__(self, conn: EtcdConnection, *, namespace: str = "", retention: int | None = None) -> None:
        if retention is not None and retention < 1:
            raise InvalidArgument("retention", "must keep at least one revision")
        self.conn = conn
        self._ns = namespace.encode()
        self._retention = retention
        self._compacted = 0
        self._op_lease: tuple[int, float] | None = None  # (lease id, monotonic time granted)
        self._op_lease_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        endpoints: Sequence[str],
        *,
        tls: EtcdTls | None = None,
        namespace: str = "",
        retention: int | None = None,
        timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> EtcdStore:
        """Connect to the cluster at `endpoints` and check that it answers (raises `StoreError` if not).
        `timeout` bounds each call, in seconds."""
        conn = EtcdConnection(endpoints, tls=tls, timeout=timeout)
        store = cls(conn, namespace=namespace, retention=retention)
        try:
            await store.revision()
        except BaseException:
            await conn.close()
            raise
        return store

    # -- keys -----------------------------------------------------------------------------------------

    def key(self, key: str) -> bytes:
        """The etcd key of our `key` (namespace applied)."""
        return self._ns + key.encode()

    def _ours(self, raw: bytes) -> str:
        return raw[len(self._ns) :].decode()

    def _is_marker(self, raw: bytes) -> bool:
        return raw.startswith(self._ns + OP_MARKER)

    def _marker(self, op_id: str) -> bytes:
        return self._ns + OP_MARKER + op_id.encode()

    def _kv(self, kv: kv_pb2.KeyValue) -> KeyValue:
        return KeyValue(self._ours(kv.key), kv.value, kv.create_revision, kv.mod_revision)

    def _range_of(self, prefix: str) -> tuple[bytes, bytes]:
        start = self.key(prefix)
        end, cap = range_end(start), self._ns + b"\xff"  # cap: before the op markers
        return (start or NUL), (cap if end == NUL or end > cap else end)

    # -- reads ----------------------------------------------------------------------------------------

    async def _range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.RangeResponse:
            response: rpc_pb2.RangeResponse = await stubs.kv.Range(request, timeout=timeout)
            return response

        return await self.conn.call(rpc, "range")

    async def get(self, key: str) -> KeyValue | None:
        response = await self._range(rpc_pb2.RangeRequest(key=self.key(key)))
        return self._kv(response.kvs[0]) if response.kvs else None

    async def revision(self) -> int:
        response = await self._range(rpc_pb2.RangeRequest(key=self.key("\x00"), count_only=True))
        return int(response.header.revision)

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int = 0) -> Page:
        if limit < 0:
            raise InvalidArgument("limit", "must be >= 0 (0 means all)")
        start, end = self._range_of(prefix)
        if start_after is not None:
            start = max(start, self.key(start_after) + NUL)
        response = await self._range(rpc_pb2.RangeRequest(key=start, range_end=end, limit=limit))
        items = tuple(self._kv(kv) for kv in response.kvs)
        more = bool(limit) and response.more and bool(items)
        return Page(
            items=items, revision=int(response.header.revision), next_start_after=items[-1].key if more else None
        )

    # -- writes ---------------------------------------------------------------------------------------

    async def put(self, key: str, value: bytes, expected_revision: int | None = None) -> int:
        if expected_revision is not None:
            return (await self._commit([Write(key, bytes(value), expected_revision)]))[0]
        check_writes([Write(key, value)])
        request = rpc_pb2.PutRequest(key=self.key(key), value=bytes(value))

        async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.PutResponse:
            response: rpc_pb2.PutResponse = await stubs.kv.Put(request, timeout=timeout)
            return response

        revision = int((await self.conn.call(rpc, "put")).header.revision)
        self._wrote([Write(key, value)], revision, 1)
        await self._maybe_compact(revision)
        return revision

    async def delete(self, key: str, expected_revision: int | None = None) -> bool:
        _, changed = await self._commit([Write(key, None, expected_revision)])
        return changed > 0

    async def commit(self, writes: Sequence[Write], *, op_id: str | None = None, durable: bool = True) -> int:
        return (await self._commit(writes, op_id))[0]  # etcd makes every commit durable

    async def _commit(self, writes: Sequence[Write], op_id: str | None = None) -> tuple[int, int]:
        """One Txn; returns (revision after it, how many writes changed something)."""
        check_writes(writes, op_id)
        guarded = [w for w in writes if w.expected_revision is not None]
        if op_id is None and guarded:
            op_id = uuid.uuid4().hex  # our own resends of this commit recognise it
        if op_id is None:
            response = await self._txn(self._request(writes, guarded, None, 0))
        else:
            response = await self._txn_with_marker(writes, guarded, op_id)
        marker = self._marker(op_id) if op_id is not None else None
        if not response.succeeded:
            kvs = response.responses[0].response_range.kvs if marker is not None else ()
            if kvs:  # the marker exists: this op was applied earlier (its reply was lost)
                self._wrote(writes, int(kvs[0].mod_revision), len(writes))
                return int(kvs[0].mod_revision), len(writes)
            raise self._conflict(guarded, response.responses[1 if marker is not None else 0 :])
        ops = response.responses[1 if marker is not None else 0 :]
        changed = sum(
            1 if op.WhichOneof("response") == "response_put" else int(op.response_delete_range.deleted)
            for op in ops
        )
        revision = int(response.header.revision)
        self._wrote(writes, revision, changed)
        if changed:
            await self._maybe_compact(revision)
        return revision, changed

    async def _txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.TxnResponse:
            response: rpc_pb2.TxnResponse = await stubs.kv.Txn(request, timeout=timeout)
            return response

        return await self.conn.call(rpc, "txn")

    async def _txn_with_marker(
        self, writes: Sequence[Write], guarded: Sequence[Write], op_id: str
    ) -> rpc_pb2.TxnResponse:
        """The Txn carrying the op-id marker; once more on a fresh lease if the current one is gone."""
        lease = await self._marker_lease(fresh=False)
        try:
            return await self._txn(self._request(writes, guarded, op_id, lease))
        except StoreError as exc:
            if "lease not found" not in exc.message:
                raise
        lease = await self._marker_lease(fresh=True)
        return await self._txn(self._request(writes, guarded, op_id, lease))

    def _request(
        self, writes: Sequence[Write], guarded: Sequence[Write], op_id: str | None, lease: int
    ) -> rpc_pb2.TxnRequest:
        """Compare every expectation (and the marker's absence), write all; on failure read them back."""
        checks = [(self.key(w.key), w.expected_revision or 0) for w in guarded]
        success = [self._op(w) for w in writes]
        if op_id is not None:
            marker = self._marker(op_id)
            checks.insert(0, (marker, 0))
            success.insert(0, rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=marker, lease=lease)))
        return rpc_pb2.TxnRequest(
            compare=[
                rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.MOD, key=key, mod_revision=rev)
                for key, rev in checks
            ],
            success=success,
            failure=[
                rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key, keys_only=True)) for key, _ in checks
            ],
        )

    async def _marker_lease(self, *, fresh: bool) -> int:
        """The lease op markers are written with: granted anew every `OP_LEASE_ROTATE` seconds, for
        `OP_ID_RETENTION + OP_LEASE_ROTATE` seconds, so each marker lives at least `OP_ID_RETENTION`."""
        async with self._op_lease_lock:
            current = self._op_lease
            if current is not None and not fresh and time.monotonic() - current[1] < OP_LEASE_ROTATE:
                return current[0]
            ttl = int(base.OP_ID_RETENTION + OP_LEASE_ROTATE)

            async def rpc(stubs: Stubs, timeout: float) -> rpc_pb2.LeaseGrantResponse:
                response: rpc_pb2.LeaseGrantResponse = await stubs.lease.LeaseGrant(
                    rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=timeout
                )
                return response

            lease = int((await self.conn.call(rpc, "lease grant")).ID)
            self._op_lease = (lease, time.monotonic())
            return lease

    def _op(self, write: Write) -> rpc_pb2.RequestOp:
        if write.value is None:
            return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=self.key(write.key)))
        return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=self.key(write.key), value=write.value))

    @staticmethod
    def _conflict(guarded: Sequence[Write], responses: Sequence[rpc_pb2.ResponseOp]) -> Conflict:
        for write, op in zip(guarded, responses, strict=True):
            kvs = op.response_range.kvs
            found = int(kvs[0].mod_revision) if kvs else 0
            if found != write.expected_revision:
                return Conflict(
                    f"compare-and-swap lost on key {write.key!r}: "
                    f"expected revision {write.expected_revision}, found {found or 'no key'}"
                )
        keys = ", ".join(repr(w.key) for w in guarded)  # changed again between the txn and its read-back
        return Conflict(f"compare-and-swap lost on one of {keys}")

    async def _maybe_compact(self, revision: int) -> None:
        if self._retention is None or revision - self._retention <= self._compacted:
            return
        target = revision - self._retention
        try:

            async def rpc(stubs: Stubs, timeout: float) -> None:
                await stubs.kv.Compact(rpc_pb2.CompactionRequest(revision=target), timeout=timeout)

            await self.conn.call(rpc, "compact")
        except StoreError as exc:
            if "compacted" not in exc.message:  # another handle compacted past it already: fine
                raise
        self._compacted = target

    # -- watch ----------------------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under `prefix` from `start_revision` (<= 0: from the next write on), resuming across
        dropped connections; raises `Compacted` when that history is gone."""
        return self._watch(prefix, start_revision)

    async def _watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        next_revision = start_revision if start_revision > 0 else await self.revision() + 1
        failures = 0
        while True:
            index, stubs = self.conn.stubs()
            stream = stubs.watch.Watch()
            try:
                async for event in self._follow(stream, prefix, next_revision):
                    failures = 0
                    next_revision = event.revision + 1  # resume point: after the last event delivered
                    yield event
            except grpc.aio.AioRpcError as exc:
                failures += 1
                if not is_unavailable(exc) or failures > 3 * self.conn.endpoint_count:
                    raise translate(exc, "watch") from exc
                self.conn.fail_over(index)  # the member went away: resume on another one
            finally:
                stream.cancel()

    async def _follow(
        self, stream: grpc.aio.StreamStreamCall, prefix: str, start_revision: int
    ) -> AsyncIterator[WatchEvent]:
        key, end = self._range_of(prefix)
        create = rpc_pb2.WatchCreateRequest(key=key, range_end=end, start_revision=start_revision)
        await stream.write(rpc_pb2.WatchRequest(create_request=create))
        async for response in stream:
            if response.compact_revision:
                raise Compacted(
                    f"watch from revision {start_revision}: history up to revision "
                    f"{response.compact_revision - 1} was compacted; re-list"
                )
            if response.canceled:
                raise StoreError(f"etcd cancelled the watch: {response.cancel_reason or 'no reason given'}")
            for event in response.events:
                if self._is_marker(event.kv.key):
                    continue
                kind = EventType.DELETE if event.type == kv_pb2.Event.DELETE else EventType.PUT
                value = b"" if kind is EventType.DELETE else event.kv.value
                yield WatchEvent(kind, self._ours(event.kv.key), value, int(event.kv.mod_revision))
        raise StoreError("etcd closed the watch stream")

    # -- lifecycle -----------------------------------------------------------------------------------

    async def close(self) -> None:
        await self.conn.close()
