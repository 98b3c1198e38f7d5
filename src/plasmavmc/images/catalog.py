"""Image records in the state store (spec §3.4, keys §8.1) and who may see them (§7.4).

Public images live under `plasmavmc/images/public/`, the others under their owner org. `visible()`
is the one visibility rule: public to all, private to the owner org, shared to the owner and the listed
orgs. A VM may only use an image its org can see, so `get()` answers IMAGE_NOT_FOUND for an image the
caller may not see, exactly as for one that does not exist.
"""

from __future__ import annotations

from plasmavmc import validation
from plasmavmc.errors import image_not_found
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.records import Versioned, decode_all, read, retry_on_conflict
from plasmavmc.types import codec
from plasmavmc.types.image import Image, Visibility


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


class ImageCatalog:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, org_id: str, image_id: str, *, field: str = "image_id") -> Image:
        validation.name(image_id, field)
        for key in (keys.public_image(image_id), keys.image(org_id, image_id)):
            found = await read(self._store, Image, key)
            if found is not None and visible(found.value, org_id):
                return found.value
        for found in decode_all(Image, await self._store.list_all(keys.IMAGES)):
            image = found.value
            if image.id == image_id and visible(image, org_id):
                return image
        raise image_not_found(org_id, image_id, field)

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
