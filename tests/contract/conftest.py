"""The `store` fixtures of the Store contract suite, parametrised over every implementation.

Adding a backend = one async factory and one entry in `STORE_FACTORIES`. A factory gets the test's
private `tmp_path` and `StoreOptions`, and returns an `OpenStore`: a callable opening a new handle
on the SAME backing data each time it is called (the first call creates it). Every handle opened through
the `backend` fixture is closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plasmavmc.store.base import Store
from plasmavmc.store.sqlite import SqliteStore


@dataclass(frozen=True)
class StoreOptions:
    # Keep only about this many recent changes of watch history (None: the backend's default). Tests of
    # `Compacted` use a small value; a backend that compacts on demand should compact accordingly.
    retention: int | None = None


OpenStore = Callable[[], Awaitable[Store]]
StoreFactory = Callable[[Path, StoreOptions], Awaitable[OpenStore]]


async def _sqlite(tmp_path: Path, options: StoreOptions) -> OpenStore:
    path = tmp_path / "state.db"  # a real file, not :memory:, so WAL, locking and reopen are exercised

    async def open_store() -> Store:
        if options.retention is None:
            return await SqliteStore.open(path)
        return await SqliteStore.open(path, retention=options.retention)

    return open_store


STORE_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": _sqlite,
}


@dataclass
class Backend:
    """One store implementation under test, bound to this test's data."""

    name: str
    tmp_path: Path
    # False for a backend whose data does not outlive its handles (none yet): persistence tests skip.
    persistent: bool = True
    _handles: list[Store] = field(default_factory=list)

    async def open(self, *, retention: int | None = None) -> Store:
        """A new handle on this test's data (another process/client, as far as the store can tell)."""
        opener = await STORE_FACTORIES[self.name](self.tmp_path, StoreOptions(retention=retention))
        store = await opener()
        self._handles.append(store)
        return store

    async def close_all(self) -> None:
        for store in reversed(self._handles):
            await store.close()  # close() must be idempotent: tests may close a handle themselves
        self._handles.clear()


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    backend = Backend(name=request.param, tmp_path=tmp_path)
    yield backend
    await backend.close_all()


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()
