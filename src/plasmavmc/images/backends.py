"""Choosing the image store from `[image_store]` settings: `local` (a directory) or `s3`.

The server also needs a private scratch directory for bytes being received or converted; it is
`<path>/staging` for either backend (the local store never lists it, an S3 store keeps nothing local).
Leftovers of a crashed server there are removed at start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from plasmavmc.config.server import ImageStoreSettings
from plasmavmc.images.local import LocalImageStore
from plasmavmc.images.s3 import S3ImageStore, S3Settings
from plasmavmc.images.store_base import ImageStore


async def open_image_store(settings: ImageStoreSettings) -> ImageStore:
    if settings.backend == "s3":
        assert settings.endpoint is not None  # cross_check() demands it for s3
        s3 = S3ImageStore(
            S3Settings(settings.endpoint, settings.bucket, settings.access_key, settings.secret_key, settings.region)
        )
        await s3.ensure_bucket()
        return s3
    return LocalImageStore(Path(settings.path))


def staging_dir(settings: ImageStoreSettings) -> Path:
    """The scratch dir for incoming and converted bytes, emptied (it only ever holds partial files)."""
    path = Path(settings.path) / "staging"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path
