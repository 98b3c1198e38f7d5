"""`ImageCatalog.get` from its watched copy (on a real SQLite store): what this process wrote is found at
once, a change is seen, another org's private image stays invisible, a shared one is found in the copy
too, and before the copy is listed the store answers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plasmavmc.errors import ImageNotFound
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec
from plasmavmc.types.image import Image, ImageFormat, ImageStatus, Visibility


def _image(image_id: str, org_id: str = "", visibility: Visibility = Visibility.PUBLIC, **extra: object) -> Image:
    return Image(id=image_id, name=image_id, org_id=org_id, visibility=visibility, format=ImageFormat.RAW,
                 status=ImageStatus.AVAILABLE, size_bytes=1 << 20, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "state.db")
    yield s
    await s.close()


async def _watching(catalog: ImageCatalog) -> asyncio.Task[None]:
    task = asyncio.create_task(catalog.watch(0.1))
    async with asyncio.timeout(10):
        while catalog._copy is None or not catalog._copy.ready:
            await asyncio.sleep(0.01)  # poll-with-deadline: the copy lists in the background
    return task


def _counted(monkeypatch: pytest.MonkeyPatch, store: SqliteStore, method: str) -> list[int]:
    """The real store's `method`, its calls counted from now on (the one-element list)."""
    calls = [0]
    real = getattr(store, method)

    async def counting(*args: object) -> object:
        calls[0] += 1
        return await real(*args)

    monkeypatch.setattr(store, method, counting)
    return calls


async def test_lookups_come_from_the_copy_and_see_own_writes(store: SqliteStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = ImageCatalog(store)
    watching = await _watching(catalog)
    try:
        await catalog.put_if_changed(_image("disk"))
        reads = _counted(monkeypatch, store, "get")
        assert (await catalog.get("org-a", "disk")).id == "disk"  # written just now, through this process
        assert reads[0] == 0  # the copy answered
        await catalog.put_if_changed(dataclasses.replace(_image("disk"), status=ImageStatus.DELETED))
        before = reads[0]
        assert (await catalog.get("org-a", "disk")).status is ImageStatus.DELETED  # the change, at once
        assert reads[0] == before
    finally:
        watching.cancel()


async def test_visibility_is_kept(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.put(keys.image("org-b", "private"), codec.dumps(_image("private", "org-b", Visibility.PRIVATE)))
    shared = _image("shared", "org-b", Visibility.SHARED, shared_orgs=("org-a",))
    await store.put(keys.image("org-b", "shared"), codec.dumps(shared))
    catalog = ImageCatalog(store)
    watching = await _watching(catalog)
    listed = _counted(monkeypatch, store, "list_all")
    try:
        with pytest.raises(ImageNotFound):
            await catalog.get("org-a", "private")
        assert (await catalog.get("org-b", "private")).id == "private"
        assert (await catalog.get("org-a", "shared")).id == "shared"  # stored under its owner: found in the copy
        with pytest.raises(ImageNotFound):
            await catalog.get("org-c", "shared")
        assert listed[0] == 0  # the copy answered every lookup, the searches for shared images too
    finally:
        watching.cancel()


async def test_without_the_copy_the_store_answers(store: SqliteStore) -> None:
    await store.put(keys.public_image("disk"), codec.dumps(_image("disk")))
    assert (await ImageCatalog(store).get("org-a", "disk")).id == "disk"
