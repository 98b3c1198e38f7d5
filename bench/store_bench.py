"""Store latency: put / get / CAS / watch on SQLite and etcd, beside the raw generated etcd stub.

Usage: .venv/bin/python bench/store_bench.py [--ops N]

Starts its own etcd (tests/etcd.py: loopback, random ports, temp dir) and a SQLite file in a temp dir,
then times N sequential operations of each kind:

- put: unconditional write of a 100-byte value to one of 100 keys;
- get: read of one of those keys;
- cas: compare-and-swap on the key's mod_revision (read the revision once, then chain the writes);
- watch: from the start of a put to the watcher receiving its event (one watch on the prefix).

"etcd_raw" does the same operations with `rpc_pb2_grpc` stubs directly (Put, Range, Txn with a MOD
compare, one Watch stream): what etcdctl would do, without our layer. Prints one JSON object with the
per-operation mean/p50/p99 in microseconds, and the ratios of our layer to the raw stub (measured in the
same run). SQLite runs with the store's default synchronous=FULL (one fsync per commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc.aio  # noqa: E402

from plasmavmc.store.base import Store  # noqa: E402
from plasmavmc.store.etcd import EtcdStore, range_end  # noqa: E402
from plasmavmc.store.etcdpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from plasmavmc.store.sqlite import SqliteStore  # noqa: E402
from tests.etcd import EtcdCluster  # noqa: E402

VALUE = b"x" * 100
KEYS = 100
Timings = dict[str, list[float]]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
        "p50_us": round(ordered[len(ordered) // 2] * 1e6, 1),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6, 1),
    }


async def timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    out = []
    for i in range(n):
        began = time.perf_counter()
        await op(i)
        out.append(time.perf_counter() - began)
    return out


async def watch_latency(
    n: int, start_watch: Callable[[], Awaitable[asyncio.Queue[float]]], put: Callable[[int], Awaitable[object]]
) -> list[float]:
    """Per put: time from just before it starts to the watcher's receipt of its event."""
    received = await start_watch()
    out = []
    for i in range(n):
        began = time.perf_counter()
        await put(i)
        out.append(await asyncio.wait_for(received.get(), 10) - began)
    return out


async def bench_store(store: Store, n: int, prefix: str) -> Timings:
    await store.put(f"{prefix}cas", VALUE)
    results: Timings = {}
    results["put"] = await timed(n, lambda i: store.put(f"{prefix}k{i % KEYS}", VALUE))
    results["get"] = await timed(n, lambda i: store.get(f"{prefix}k{i % KEYS}"))
    kv = await store.get(f"{prefix}cas")
    assert kv is not None
    revision = kv.mod_revision

    async def cas(_: int) -> None:
        nonlocal revision
        revision = await store.put(f"{prefix}cas", VALUE, expected_revision=revision)

    results["cas"] = await timed(n, cas)

    async def start_watch() -> asyncio.Queue[float]:
        queue: asyncio.Queue[float] = asyncio.Queue()
        start = await store.revision() + 1

        async def follow() -> None:
            async for _ in store.watch(f"{prefix}w/", start):
                queue.put_nowait(time.perf_counter())

        tasks.append(asyncio.ensure_future(follow()))
        return queue

    tasks: list[asyncio.Future[None]] = []
    try:
        results["watch"] = await watch_latency(n, start_watch, lambda i: store.put(f"{prefix}w/{i % KEYS}", VALUE))
    finally:
        for task in tasks:
            task.cancel()
    return results


async def bench_raw(target: str, n: int, prefix: bytes) -> Timings:
    async with grpc.aio.insecure_channel(target) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        watch = rpc_pb2_grpc.WatchStub(channel)
        results: Timings = {}

        def key(i: int) -> bytes:
            return prefix + b"k%d" % (i % KEYS)

        results["put"] = await timed(n, lambda i: kv.Put(rpc_pb2.PutRequest(key=key(i), value=VALUE)))
        results["get"] = await timed(n, lambda i: kv.Range(rpc_pb2.RangeRequest(key=key(i))))
        revision = (await kv.Put(rpc_pb2.PutRequest(key=prefix + b"cas", value=VALUE))).header.revision

        async def cas(_: int) -> None:
            nonlocal revision
            compare = rpc_pb2.Compare(
                result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.MOD, key=prefix + b"cas", mod_revision=revision
            )
            put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=prefix + b"cas", value=VALUE))
            response = await kv.Txn(rpc_pb2.TxnRequest(compare=[compare], success=[put]))
            assert response.succeeded
            revision = response.header.revision

        results["cas"] = await timed(n, cas)
        stream = watch.Watch()
        queue: asyncio.Queue[float] = asyncio.Queue()

        async def start_watch() -> asyncio.Queue[float]:
            wkey = prefix + b"w/"
            await stream.write(
                rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=wkey, range_end=range_end(wkey)))
            )
            await stream.read()  # the "created" response

            async def follow() -> None:
                while (response := await stream.read()) is not grpc.aio.EOF:  # read() only: no mixing
                    for _ in response.events:
                        queue.put_nowait(time.perf_counter())

            tasks.append(asyncio.ensure_future(follow()))
            return queue

        tasks: list[asyncio.Future[None]] = []
        try:
            results["watch"] = await watch_latency(
                n, start_watch, lambda i: kv.Put(rpc_pb2.PutRequest(key=prefix + b"w/%d" % (i % KEYS), value=VALUE))
            )
        finally:
            for task in tasks:
                task.cancel()
            stream.cancel()
        return results


def ratios(ours: Timings, base: Timings) -> dict[str, float]:
    return {op: round(statistics.median(ours[op]) / statistics.median(base[op]), 2) for op in ours}


async def main(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="plasmavmc-bench-") as tmp:
        root = Path(tmp)
        etcd = EtcdCluster.start(root / "etcd")
        try:
            sqlite = await SqliteStore.open(root / "state.db")
            try:
                sqlite_t = await bench_store(sqlite, n, "bench/")
            finally:
                await sqlite.close()
            store = await EtcdStore.open(etcd.endpoints)
            try:
                etcd_t = await bench_store(store, n, "bench/ours/")
            finally:
                await store.close()
            raw_t = await bench_raw(etcd.endpoints[0].removeprefix("http://"), n, b"bench/raw/")
        finally:
            etcd.stop()
    return {
        "ops_per_kind": n,
        "sqlite": {op: summary(s) for op, s in sqlite_t.items()},
        "etcd": {op: summary(s) for op, s in etcd_t.items()},
        "etcd_raw_stub": {op: summary(s) for op, s in raw_t.items()},
        "ratio_p50": {
            "etcd_vs_raw_stub": ratios(etcd_t, raw_t),
            "sqlite_vs_raw_etcd_stub": ratios(sqlite_t, raw_t),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=300, help="operations of each kind (default 300)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.ops)), indent=2))
