"""The `store` fixtures of the Store contract suite, parametrised over every implementation.

Adding a backend = one async factory and one entry in `STORE_FACTORIES`. A factory gets the test's
request (to reach session fixtures such as a running etcd), its private `tmp_path` and `StoreOptions`,
and returns an `OpenStore`: a callable opening a new handle on the SAME backing data each time it is
called (the first call creates it). Every handle opened through the `backend` fixture is closed after
the test.

etcd: ONE real etcd (tests/etcd.py) serves the whole session, started on first use; each test gets its
own key namespace (named after its `tmp_path`), so `list("")` sees only that test's keys. Revisions are
etcd's global ones, which is fine because contract tests run one at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plasmavmc.store.base import Store
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.store.sqlite import SqliteStore
from tests import binaries
from tests.etcd import EtcdCluster


@dataclass(frozen=True)
class StoreOptions:
    # Keep only about this many recent changes of watch history (None: the backend's default). Tests of
    # `Compacted` use a small value; a backend that compacts on demand should compact accordingly.
    retention: int | None = None


OpenStore = Callable[[], Awaitable[Store]]
StoreFactory = Callable[[pytest.FixtureRequest, Path, StoreOptions], Awaitable[OpenStore]]


async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path, options: StoreOptions) -> OpenStore:
    path = tmp_path / "state.db"  # a real file, not :memory:, so WAL, locking and reopen are exercised

    async def open_store() -> Store:
        if options.retention is None:
            return await SqliteStore.open(path)
        return await SqliteStore.open(path, retention=options.retention)

    return open_store


@pytest.fixture(scope="session")
def etcd_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    binaries.require_now("etcd")
    cluster = EtcdCluster.start(tmp_path_factory.mktemp("etcd"))
    try:
        yield cluster
    finally:
        cluster.stop()


async def _etcd(request: pytest.FixtureRequest, tmp_path: Path, options: StoreOptions) -> OpenStore:
    service: EtcdCluster = request.getfixturevalue("etcd_service")

    async def open_store() -> Store:
        return await EtcdStore.open(service.endpoints, namespace=f"contract/{tmp_path.name}/",
                                    retention=options.retention)

    return open_store


STORE_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": _sqlite,
    "etcd": _etcd,
}


@dataclass
class Backend:
    """One store implementation under test, bound to this test's data."""

    name: str
    request: pytest.FixtureRequest
    tmp_path: Path
    # False for a backend whose data does not outlive its handles (none yet): persistence tests skip.
    persistent: bool = True
    _handles: list[Store] = field(default_factory=list)

    async def open(self, *, retention: int | None = None) -> Store:
        """A new handle on this test's data (another process/client, as far as the store can tell)."""
        opener = await STORE_FACTORIES[self.name](self.request, self.tmp_path, StoreOptions(retention=retention))
        store = await opener()
        self._handles.append(store)
        return store

    async def close_all(self) -> None:
        for store in reversed(self._handles):
            await store.close()  # close() must be idempotent: tests may close a handle themselves
        self._handles.clear()


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    backend = Backend(name=request.param, request=request, tmp_path=tmp_path)
    yield backend
    await backend.close_all()


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()
