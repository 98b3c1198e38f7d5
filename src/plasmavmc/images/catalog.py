"""Image records in the state store (spec §3.4, keys §8.1) and who may see them (§7.4).

Public images live under `plasmavmc/images/public/`, the others under their owner org. `visible()`
is the one visibility rule: public to all, private to the owner org, shared to the owner and the listed
orgs. A VM may only use an image its org can see, so `get()` answers IMAGE_NOT_FOUND for an image the
caller may not see, exactly as for one that does not exist.

With `watch` running (the server runs it), `get` answers from this process's watched copy of the image
records (`store/watched.py`), each decoded once per change: a create looks up its disk image, kernel and
ramdisk without a store call each (three reads in a row, each a hop to the store's thread, on the path
of every create). It waits (at most `FENCE_TIMEOUT`) for the copy to hold this process's own writes
(read-your-writes); before the copy is listed it reads the store as before.
"""

from __future__ import annotations

import contextlib

from plasmavmc import validation
from plasmavmc.errors import image_not_found
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue, Store
from plasmavmc.store.records import CorruptRecord, Versioned, decode, decode_all, read, retry_on_conflict
from plasmavmc.store.watched import Entry, WatchedPrefix
from plasmavmc.types import codec
from plasmavmc.types.image import Image, Visibility

FENCE_TIMEOUT = 2.0  # seconds a lookup waits for the watched copy to hold this process's own writes


def visible(image: Image, org_id: str) -> bool:
    if image.visibility == Visibility.PUBLIC:
        return True
    if image.visibility == Visibility.SHARED and org_id in image.shared_orgs:
        return True
    return image.org_id == org_id


def key_of(image: Image) -> str:
    if image.visibility == Visibility.PUBLIC:
        return keys.public_image(image.id)
    return keys.image(image.org_id, image.id)


def _decoded(key: str, entry: Entry) -> Image:
    """The watched record as an `Image`, decoded once per change (CorruptRecord if it does not decode)."""
    if entry.memo is None:
        entry.memo = decode(Image, KeyValue(key, entry.value, 0, entry.revision)).value
    assert isinstance(entry.memo, Image)
    return entry.memo


def _derive(key: str, entry: Entry) -> None:
    with contextlib.suppress(CorruptRecord):  # reported and counted by decode; a lookup of it fails as a
        _decoded(key, entry)  # store read would


def _keys_of(org_id: str, image_id: str) -> tuple[str, str]:
    """Where an image `org_id` may use is stored, unless another org shares it: public, or the org's own."""
    return keys.public_image(image_id), keys.image(org_id, image_id)


def _in_copy(copy: WatchedPrefix, org_id: str, image_id: str) -> Image | None:
    """`ImageCatalog.get` from the watched copy: the image's two keys, then (shared by another org, stored
    under its owner) every record, each decoded once per change."""
    for key in _keys_of(org_id, image_id):
        if (entry := copy.get(key)) is not None and visible(image := _decoded(key, entry), org_id):
            return image
    for key, entry in copy.entries.items():
        with contextlib.suppress(CorruptRecord):
            if (image := _decoded(key, entry)).id == image_id and visible(image, org_id):
                return image
    return None


class ImageCatalog:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._copy: WatchedPrefix | None = None

    async def watch(self, retry: float = 1.0) -> None:
        """Keep the watched copy that `get` answers from until cancelled."""
        self._copy = WatchedPrefix(self._store, keys.IMAGES, retry, derive=_derive)
        await self._copy.run()

    async def get(self, org_id: str, image_id: str, *, field: str = "image_id") -> Image:
        validation.name(image_id, field)
        copy = self._copy
        if copy is not None and copy.ready and (copy.covers_own_writes() or await copy.caught_up(FENCE_TIMEOUT)):
            image = _in_copy(copy, org_id, image_id)
        else:
            image = await self._in_store(org_id, image_id)
        if image is None:
            raise image_not_found(org_id, image_id, field)
        return image

    async def _in_store(self, org_id: str, image_id: str) -> Image | None:
        for key in _keys_of(org_id, image_id):
            found = await read(self._store, Image, key)
            if found is not None and visible(found.value, org_id):
                return found.value
        for found in decode_all(Image, await self._store.list_all(keys.IMAGES)):  # shared by another org
            if found.value.id == image_id and visible(found.value, org_id):
                return found.value
        return None

    async def list(self, org_id: str) -> list[Image]:
        out = []
        for found in decode_all(Image, await self._store.list_all(keys.IMAGES)):
            image = found.value
            if visible(image, org_id):
                out.append(image)
        return sorted(out, key=lambda i: (i.name, i.id))

    async def put_if_changed(self, image: Image) -> Versioned[Image]:
        """Create or replace `image` (used to register seed images; idempotent, also against replicas
        registering the same image at the same time)."""
        key = key_of(image)

        async def attempt() -> Versioned[Image]:
            current = await read(self._store, Image, key)
            if current is not None and current.value == image:
                return current
            expected = 0 if current is None else current.revision
            rev = await self._store.put(key, codec.dumps(image), expected_revision=expected)
            return Versioned(image, rev, key)

        return await retry_on_conflict(attempt)
