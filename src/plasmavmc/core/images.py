"""ImageService logic (spec §5.1, §3.4): image records through their states, bytes in the image store.

Status moves: an upload is UPLOADING until its bytes are judged and stored, then AVAILABLE; if the
stream breaks or the bytes are refused, the record and every byte are removed — a failed upload leaves
no image. A URL import answers at once with a PENDING record, then moves UPLOADING -> AVAILABLE in the
background, or to ERROR with the reason in `metadata["error"]`. An image from a VM's disk
(`source.snapshot`, via `VmDiskSource`: the VM must exist in the org and be STOPPED, the disk must be in
its spec — checked before any record is written) moves the same way; it inherits the boot metadata
(`kernel_id`, `ramdisk_id`, `kernel_cmdline`) and OS facts of the image the disk was made from, so it
boots the same way, and its bytes pass the same checks as an upload. A conversion is CONVERTING, then
AVAILABLE or ERROR likewise. Records are written with compare-and-swap (`records.mutate`).

Deletion is refused (INVALID_STATE) while a VM's disk or another image's `kernel_id`/`ramdisk_id`
names the image: deleting a base under a running VM's overlay would break it. A deletion marks the
record DELETED first, then removes the bytes, then the record; a crash between leaves a DELETED record
(hidden from Get/List) that deleting again finishes.

Every image record counts in its org's `max_images` quota (org-wide, `quotas.commit_charged`): it is
charged in the commit that writes the record (QUOTA_EXCEEDED, and nothing written, when the org is
full) and given back in the commit that removes it, so a failed upload gives its count back too.

An ingest (upload, import, conversion) is a pending operation (`core/pending.py`) owned by the server
doing it, recorded in the commit that creates the image record and finished when the image is
AVAILABLE, ERROR or gone. If that server dies mid-way, the leader adopts the operation and `abandon`s
it: an upload is removed, bytes and all, like any failed upload; an import or conversion ends in ERROR
saying it was interrupted. No image stays PENDING, UPLOADING or CONVERTING forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Protocol

from plasmavmc import validation
from plasmavmc.core import pending, quotas
from plasmavmc.errors import ImageNotFound, InvalidArgument, InvalidState, PermissionDenied, PlasmaError, Unimplemented
from plasmavmc.images import fetch, ingest, qemu_img
from plasmavmc.images.catalog import ImageCatalog, key_of
from plasmavmc.images.ingest import IngestLimits, NewImage
from plasmavmc.images.store_base import BlobRef, ImageStore, sha256_file, version_of
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.records import Versioned, decode_all, mutate, read, replace, retry_on_conflict
from plasmavmc.types import codec
from plasmavmc.types.image import (
    Image,
    ImageFormat,
    ImageSource,
    ImageStatus,
    SnapshotSource,
    UploadSource,
    UrlSource,
    Visibility,
)
from plasmavmc.types.quota import QuotaUsage
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
DEFAULT_PAGE = 100
MAX_PAGE = 1000
BOOT_METADATA = ("kernel_id", "ramdisk_id", "kernel_cmdline")
IMAGE = QuotaUsage(images=1)  # what one image record counts in its org's quota
INGESTING = frozenset({ImageStatus.PENDING, ImageStatus.UPLOADING, ImageStatus.CONVERTING})


class VmDiskSource(Protocol):
    """Disks of VMs as image sources (`core/vms/disks.py`)."""

    async def check(self, org_id: str, source: SnapshotSource) -> tuple[SnapshotSource, Image | None]:
        """The canonical source and the image the disk was made from; raises naming the bad field."""

    def export(self, org_id: str, source: SnapshotSource) -> AsyncIterator[bytes]:
        """The disk as a standalone image, in chunks."""
        ...


def _inherit(new: NewImage, base: Image | None) -> NewImage:
    """`new` with the boot metadata and OS facts of `base` where the request did not set them."""
    if base is None:
        return new
    boot = {k: base.metadata[k] for k in BOOT_METADATA if base.metadata.get(k)}
    return dataclasses.replace(
        new,
        metadata={**boot, **new.metadata},
        os_type=new.os_type or base.os_type,
        os_version=new.os_version or base.os_version,
        architecture=new.architecture or base.architecture,
        min_memory_mib=new.min_memory_mib or base.min_memory_mib,
    )


def _record(new: NewImage, status: ImageStatus, source: ImageSource) -> Image:
    now = int(time.time())
    fields = {k: v for k, v in new.__dict__.items() if v is not None and k not in ("source", "checksum", "format")}
    return Image(
        **{**fields, "id": str(uuid.uuid4()), "source": source, "status": status, "created_at": now, "updated_at": now}
    )


def _stamped(image: Image, **changes: object) -> Image:
    return replace(image, updated_at=int(time.time()), **changes)


class ImageService:
    def __init__(self, store: Store, catalog: ImageCatalog, files: ImageStore, staging: Path,
                 vm_disks: VmDiskSource | None = None, owner: str = "", limits: IngestLimits | None = None) -> None:
        """`owner`: the id of this server, owner of the ingests it starts (see `abandon`); `limits`:
        the `[images]` bounds on what ingest accepts."""
        self.store = store
        self.limits = limits or IngestLimits()
        self.owner = owner
        self.vm_disks = vm_disks
        self.catalog = catalog
        self.files = files
        self.staging = staging
        self._tasks: set[asyncio.Task[None]] = set()

    # --- reading -------------------------------------------------------------------------------------

    async def get(self, org_id: str, image_id: str) -> Image:
        validation.name(org_id, "org_id")
        image = await self.catalog.get(org_id, image_id)
        if image.status == ImageStatus.DELETED:
            raise ImageNotFound(f"image {image_id!r} is being deleted", field="image_id")
        return image

    async def list_page(self, org_id: str, page_size: int, token: str) -> tuple[list[Image], str]:
        validation.name(org_id, "org_id")
        if page_size > MAX_PAGE:
            raise InvalidArgument("page_size", f"at most {MAX_PAGE}")
        after: tuple[str, str] | None = None
        if token:
            name, _, image_id = token.partition("/")
            after = (validation.name(name, "page_token"), validation.name(image_id, "page_token"))
        images = [i for i in await self.catalog.list(org_id) if i.status != ImageStatus.DELETED]
        if after is not None:
            images = [i for i in images if (i.name, i.id) > after]
        page = images[: page_size or DEFAULT_PAGE]
        more = len(images) > len(page)
        return page, f"{page[-1].name}/{page[-1].id}" if more and page else ""

    async def download(self, org_id: str, image_id: str, offset: int) -> AsyncIterator[tuple[int, bytes]]:
        image = await self.get(org_id, image_id)
        if image.status != ImageStatus.AVAILABLE:
            raise InvalidState(f"image {image.id} is {image.status.value}, not available", field="image_id")
        if offset > image.size_bytes:
            raise InvalidArgument("offset", f"beyond the image's {image.size_bytes} bytes")
        async for chunk in self.files.read(BlobRef.of(image), offset):
            yield offset, chunk
            offset += len(chunk)

    # --- creating ------------------------------------------------------------------------------------

    async def upload(self, new: NewImage, chunks: AsyncIterator[bytes]) -> Image:
        """Create an image from streamed bytes; on any failure no record and no byte remain."""
        ingest.check_new(new)
        if new.source is not None and (new.source.url or new.source.snapshot):
            raise InvalidArgument("metadata.source", "UploadImage takes the bytes in the stream; leave source empty")
        created, op = await self._create(_record(new, ImageStatus.UPLOADING, ImageSource(upload=UploadSource())))
        async with pending.driving(self.store, op):
            try:
                async with ingest.staged(self.staging) as tmp:
                    sha256 = await ingest.receive(chunks, tmp)
                    return await self._store(created, tmp, sha256, new, "chunk")
            except BaseException:
                await asyncio.shield(self._discard(created.key))
                raise

    async def create(self, new: NewImage) -> Image:
        """CreateImage: a URL import or a VM disk export runs in the background (PENDING now)."""
        ingest.check_new(new)
        source = new.source or ImageSource()
        if source.snapshot is not None:
            if self.vm_disks is None:
                raise Unimplemented("images from a VM's disk are not available in this process")
            snapshot, base = await self.vm_disks.check(new.org_id, source.snapshot)
            new = _inherit(new, base)
            validation.image_metadata(new.metadata)
            created, op = await self._create(_record(new, ImageStatus.PENDING, ImageSource(snapshot=snapshot)))
            self._background(op, self._import_vm_disk(created, new, snapshot))
            return created.value
        if source.url is None:
            raise InvalidArgument("source", "a url or snapshot source is required here; upload bytes with UploadImage")
        url = source.url.url
        await fetch.resolve(url, self.limits.url)  # refused now, before any record, if the first hop is
        created, op = await self._create(_record(new, ImageStatus.PENDING, ImageSource(url=UrlSource(url=url))))
        self._background(op, self._import_url(created, new, url))
        return created.value

    def _background(self, op: pending.Pending, work: Coroutine[None, None, None]) -> None:
        async def driven() -> None:
            async with pending.driving(self.store, op):
                await work

        task = asyncio.create_task(driven())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _import_vm_disk(self, created: Versioned[Image], new: NewImage, source: SnapshotSource) -> None:
        assert self.vm_disks is not None
        field = "source.snapshot"
        try:
            await _set(self.store, created.key, lambda i: _stamped(i, status=ImageStatus.UPLOADING))
            async with ingest.staged(self.staging) as tmp:
                sha256 = await ingest.receive(self.vm_disks.export(new.org_id, source), tmp, field)
                await self._store(created, tmp, sha256, new, field)
        except PlasmaError as err:
            await self._fail(created.key, f"export of disk {source.disk_id} of VM {source.vm_id}: {err.message}")
        except Exception as exc:
            log.exception("image %s from VM %s disk %s failed", created.value.id, source.vm_id, source.disk_id)
            await self._fail(created.key, f"internal error: {type(exc).__name__}")

    async def _import_url(self, created: Versioned[Image], new: NewImage, url: str) -> None:
        try:
            await _set(self.store, created.key, lambda i: _stamped(i, status=ImageStatus.UPLOADING))
            async with ingest.staged(self.staging) as tmp:
                sha256 = await ingest.receive(fetch.download(url, self.limits.url), tmp, "source.url.url")
                await self._store(created, tmp, sha256, new, "source.url.url")
        except PlasmaError as err:
            await self._fail(created.key, err.message)
        except Exception as exc:
            log.exception("import of image %s from %s failed", created.value.id, url)
            await self._fail(created.key, f"internal error: {type(exc).__name__}")

    async def convert(self, org_id: str, image_id: str, target: ImageFormat | None, name: str) -> Image:
        """A new private image of `org_id` holding the source's disk in `target` format."""
        validation.name(org_id, "org_id")
        if target is None:
            raise InvalidArgument("target_format", "required: raw, qcow2, vmdk or vhd")
        src = await self.download_ready(org_id, image_id)
        if src.format == target:
            raise InvalidArgument("target_format", f"image {src.id} already is {target.value}")
        new = NewImage(
            name=validation.name(name or f"{src.name}-{target.value}"[:63], "name"),
            org_id=org_id,
            visibility=Visibility.PRIVATE,
            os_type=src.os_type,
            os_version=src.os_version,
            architecture=src.architecture,
            min_disk_gib=src.min_disk_gib,
            min_memory_mib=src.min_memory_mib,
            metadata=dict(src.metadata),
            format=target,
        )
        created, op = await self._create(_record(new, ImageStatus.CONVERTING, src.source))
        async with pending.driving(self.store, op):
            try:
                async with ingest.staged(self.staging) as raw, ingest.staged(self.staging) as out:
                    await self.files.get_file(BlobRef.of(src), raw)
                    await qemu_img.convert(raw, src.format, out, target)
                    sha256 = await asyncio.to_thread(sha256_file, out)
                    return await self._store(created, out, sha256, new, "target_format")
            except PlasmaError as err:
                await self._fail(created.key, f"conversion failed: {err.message}")
                raise

    async def download_ready(self, org_id: str, image_id: str) -> Image:
        image = await self.get(org_id, image_id)
        if image.status != ImageStatus.AVAILABLE:
            raise InvalidState(f"image {image.id} is {image.status.value}, not available", field="image_id")
        return image

    # --- changing ------------------------------------------------------------------------------------

    async def update(self, org_id: str, image_id: str, change: Callable[[Image], Image]) -> Image:
        """Apply `change` to an image `org_id` owns; a visibility change moves the record's key."""

        async def attempt() -> Image:
            current = await self._owned(org_id, image_id)
            updated = _stamped(change(current.value))
            ingest.check_sharing(updated.org_id, updated.visibility, updated.shared_orgs)
            new_key = key_of(updated)
            writes = [Write(new_key, codec.dumps(updated), current.revision if new_key == current.key else 0)]
            if new_key != current.key:
                writes.append(Write(current.key, None, current.revision))
            await self.store.commit(writes)
            return updated

        return await retry_on_conflict(attempt)

    async def delete(self, org_id: str, image_id: str) -> None:
        current = await self._owned(org_id, image_id)
        users = await self._users(current.value.id)
        if users:
            raise InvalidState(
                f"image {image_id} is in use by {', '.join(users[:5])}: delete those first", field="image_id"
            )
        marked = await _set(self.store, current.key, lambda i: _stamped(i, status=ImageStatus.DELETED))
        if marked.value.checksum:
            await self.files.delete(BlobRef.of(marked.value))
        await remove(self.store, current.key)
        log.info("image %s deleted", image_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- helpers -------------------------------------------------------------------------------------

    async def _owned(self, org_id: str, image_id: str) -> Versioned[Image]:
        validation.name(org_id, "org_id")
        image = await self.catalog.get(org_id, image_id)
        if image.org_id != org_id:
            raise PermissionDenied(f"image {image_id} belongs to org {image.org_id!r}", field="org_id")
        found = await read(self.store, Image, key_of(image))
        if found is None:
            raise ImageNotFound(f"image {image_id!r} does not exist", field="image_id")
        return found

    async def _users(self, image_id: str) -> list[str]:
        users = []
        for found in decode_all(VirtualMachine, await self.store.list_all(keys.VMS)):
            vm = found.value
            if any(d.source.image_id == image_id for d in vm.spec.disks):
                users.append(f"VM {vm.org_id}/{vm.project_id}/{vm.name}")
        for record in decode_all(Image, await self.store.list_all(keys.IMAGES)):
            other = record.value
            if image_id in (other.metadata.get("kernel_id"), other.metadata.get("ramdisk_id")):
                users.append(f"image {other.id}")
        return users

    async def _create(self, image: Image) -> tuple[Versioned[Image], pending.Pending]:
        """Write the new record, counted in its org's `max_images`, with the pending record of its
        ingest (owned by this server), in one commit."""
        key = key_of(image)
        op = pending.begin(pending.Op.IMAGE, key, image.id, self.owner)
        writes = [Write(key, codec.dumps(image), 0), pending.begin_write(op)]
        rev = await quotas.commit_charged(self.store, image.org_id, "", IMAGE, writes)
        return Versioned(image, rev, key), op

    async def _store(self, created: Versioned[Image], tmp: Path, sha256: str, new: NewImage, field: str) -> Image:
        judged = await ingest.judge(tmp, sha256, new, field, self.limits.max_virtual_gib)
        ref = BlobRef(created.value.org_id, created.value.id, version_of(sha256))
        await self.files.put_file(ref, tmp)

        def available(image: Image) -> Image:
            kept = image.source.url or image.source.snapshot
            source = image.source if kept else ImageSource(upload=UploadSource(storage_path=ref.key))
            return _stamped(
                image,
                status=ImageStatus.AVAILABLE,
                format=judged.info.format,
                size_bytes=judged.size,
                checksum=sha256,
                min_disk_gib=judged.min_disk_gib,
                source=source,
            )

        try:
            return (await _set(self.store, created.key, available)).value
        except BaseException:
            await asyncio.shield(self.files.delete(ref))
            raise

    async def _fail(self, key: str, reason: str) -> None:
        await fail(self.store, self.files, key, reason)

    async def _discard(self, key: str) -> None:
        await discard(self.store, self.files, key)


async def _set(store: Store, key: str, fn: Callable[[Image], Image]) -> Versioned[Image]:
    return await mutate(store, Image, key, fn, missing=lambda: ImageNotFound("image record vanished"))


async def fail(store: Store, files: ImageStore, key: str, reason: str) -> None:
    """ERROR with the reason; any bytes already stored are removed."""
    try:
        failed = await _set(
            store, key, lambda i: _stamped(i, status=ImageStatus.ERROR, metadata={**i.metadata, "error": reason[:255]})
        )
        if failed.value.checksum:
            await files.delete(BlobRef.of(failed.value))
    except PlasmaError as err:
        log.warning("could not record failure on %s: %s", key, err)


async def discard(store: Store, files: ImageStore, key: str) -> None:
    """Remove a failed upload entirely: its bytes (if any were stored) and its record."""
    try:
        found = await read(store, Image, key)
        if found is not None and found.value.checksum:
            await files.delete(BlobRef.of(found.value))
        await remove(store, key)
    except PlasmaError as err:
        log.warning("could not discard failed upload %s: %s", key, err)


async def remove(store: Store, key: str) -> None:
    """Delete the record and give its org's image quota back, in one commit (once, however many
    callers race to remove it)."""

    async def attempt() -> None:
        found = await read(store, Image, key)
        if found is not None:
            await quotas.commit_charged(store, found.value.org_id, "", -IMAGE, [Write(key, None, found.revision)])

    await retry_on_conflict(attempt)


async def abandon(store: Store, files: ImageStore, key: str) -> None:
    """The server ingesting this image died (its pending record was adopted): an upload leaves nothing,
    as a failed upload does; an import or a conversion ends in ERROR. A finished image is left alone."""
    found = await read(store, Image, key)
    if found is None or found.value.status not in INGESTING:
        return
    if found.value.source.upload is not None:
        await discard(store, files, key)
    else:
        await fail(store, files, key, "interrupted: the server doing it stopped; create the image again")
