"""`plasmavmc image list|get|upload|download|create-from-vm|convert|update|delete`; images by id or name.

Uploads and downloads stream the file in chunks (never all in memory) and draw a progress bar on
stderr when it is a terminal; a download goes to a temp file renamed into place when complete, so an
interrupted download never leaves a file that looks whole, and an existing file is only replaced with
`--force`. `-` as FILE means stdout (download) or stdin (upload). The file path is the user's own, on
their own machine; it never reaches the server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from plasmavmc.cli import output as out
from plasmavmc.cli.common import Subparsers, confirm, find_image, input_file, output_file, shows
from plasmavmc.client import PlasmaClient
from plasmavmc.types.image import Image, ImageFormat, ImageStatus, Visibility

CHUNK = 1024 * 1024
POLL_S = 0.5


class Progress:
    """`label  42% 12.0 MiB/28.5 MiB 80.1 MiB/s` on stderr, redrawn in place (terminals only)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty()
        self._drawn = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._drawn > 0.1 or self.done >= self.total):
            self._drawn = now
            pct = 100 * self.done // self.total if self.total else 100
            rate = self.done / max(now - self.started, 1e-6)
            bar = "#" * (pct // 5)
            sys.stderr.write(
                f"\r{self.label} [{bar:<20}] {pct:3d}% {out.human_bytes(self.done)}/"
                f"{out.human_bytes(self.total)} {out.human_bytes(int(rate))}/s "
            )
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


async def _file_chunks(f: BinaryIO, progress: Progress, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(f.read, CHUNK):
        digest.update(chunk)
        progress.add(len(chunk))
        yield chunk


def _show(args: argparse.Namespace, image: Image | list[Image]) -> int:
    return out.show(args, image, out.IMAGE_COLUMNS, out.image_row)


async def image_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await client.list_images(args.org))


async def image_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await find_image(client, args.org, args.image))


async def image_upload(client: PlasmaClient, args: argparse.Namespace) -> int:
    source, size = input_file(args.file)
    name = args.name or ("stdin" if args.file == "-" else Path(args.file).name)
    progress = Progress(f"upload {name}", size)
    digest = hashlib.sha256()
    try:
        image = await client.upload_image(
            args.org,
            name,
            _file_chunks(source, progress, digest),
            visibility=Visibility(args.visibility),
            shared_orgs=tuple(args.share or ()),
            checksum=args.checksum or "",
            min_disk_gib=args.min_disk_gib,
            min_memory_mib=args.min_memory_mib,
        )
    finally:
        progress.finish()
        if args.file != "-":
            source.close()
    if image.checksum != digest.hexdigest():
        print(f"error: server stored sha256 {image.checksum}, the file has {digest.hexdigest()}", file=sys.stderr)
        return 1
    return _show(args, image)


async def image_download(client: PlasmaClient, args: argparse.Namespace) -> int:
    image = await find_image(client, args.org, args.image)
    sink, dest = output_file(args.file, args.force)
    progress = Progress(f"download {image.name}", image.size_bytes)
    digest = hashlib.sha256()
    try:
        async for chunk in client.download_image(args.org, image.id):
            digest.update(chunk)
            await asyncio.to_thread(sink.write, chunk)
            progress.add(len(chunk))
        sink.flush()
        if digest.hexdigest() != image.checksum:
            print(
                f"error: downloaded bytes have sha256 {digest.hexdigest()}, expected {image.checksum}", file=sys.stderr
            )
            return 1
        if dest is not None:
            os.replace(sink.name, dest)
    finally:
        progress.finish()
        if dest is not None:
            sink.close()
            Path(sink.name).unlink(missing_ok=True)
    print(f"{dest or 'stdout'}: {out.human_bytes(image.size_bytes)}, sha256 {image.checksum}", file=sys.stderr)
    return 0


async def image_create_from_vm(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.get_vm(args.org, args.project, args.vm)  # by id or by name in the project
    image = await client.create_image_from_vm(
        args.org, args.name, vm.id, args.disk_id,
        visibility=Visibility(args.visibility), shared_orgs=tuple(args.share or ()),
    )
    deadline = time.monotonic() + args.wait
    while image.status not in (ImageStatus.AVAILABLE, ImageStatus.ERROR) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)  # polling the API until the export ends or the deadline passes
        image = await client.get_image(args.org, image.id)
    if image.status == ImageStatus.ERROR:
        print(f"error: image {image.id}: {image.metadata.get('error', 'export failed')}", file=sys.stderr)
        return 1
    if args.wait and image.status != ImageStatus.AVAILABLE:
        print(f"error: image {image.id} is still {image.status.value} after {args.wait}s", file=sys.stderr)
        return 1
    return _show(args, image)


async def image_convert(client: PlasmaClient, args: argparse.Namespace) -> int:
    image_id = (await find_image(client, args.org, args.image)).id
    image = await client.convert_image(args.org, image_id, ImageFormat(args.to), args.name or "")
    return _show(args, image)


async def image_update(client: PlasmaClient, args: argparse.Namespace) -> int:
    image = await client.update_image(
        args.org,
        (await find_image(client, args.org, args.image)).id,
        name=args.name,
        visibility=Visibility(args.visibility) if args.visibility else None,
        shared_orgs=tuple(args.share or ()),
    )
    return _show(args, image)


async def image_delete(client: PlasmaClient, args: argparse.Namespace) -> int:
    image = await find_image(client, args.org, args.image)
    confirm(args, f"delete image {image.id} ({image.name})?")
    await client.delete_image(args.org, image.id)
    print(f"image {image.id} deleted", file=sys.stderr)
    return 0


def add_parsers(sub: Subparsers) -> None:
    """`plasmavmc image ...`."""
    area = sub.add_parser("image", help="images")
    shows(area, Image, out.IMAGE_COLUMNS)
    image = area.add_subparsers(dest="command", required=True)
    image.add_parser("list", help="list the images the org can use").set_defaults(func=image_list)
    p = image.add_parser("get", help="show one image")
    p.add_argument("image", metavar="IMAGE", help="image id or name")
    p.set_defaults(func=image_get)
    _change_parsers(image)


def _change_parsers(image: Subparsers) -> None:
    visibilities = [v.value for v in Visibility]
    p = image.add_parser("upload", help="upload a disk image file (format detected by the server)")
    p.add_argument("file", metavar="FILE", help="the image file; - reads stdin")
    p.add_argument("--name", help="image name (default: the file name)")
    p.add_argument("--visibility", choices=visibilities, default="private", help="who may use the image")
    p.add_argument("--share", action="append", metavar="ORG",
                   help="with --visibility shared (repeatable; default: none)")
    p.add_argument("--checksum", help="expected sha256; the upload fails if the bytes differ (default: not checked)")
    p.add_argument("--min-disk-gib", type=int, default=0, help="smallest root disk a VM may use it with")
    p.add_argument("--min-memory-mib", type=int, default=0, help="least memory a VM may use it with")
    p.set_defaults(func=image_upload)
    p = image.add_parser("download", help="download an image's bytes to FILE (sha256 checked)")
    p.add_argument("image", metavar="IMAGE", help="image id or name")
    p.add_argument("file", metavar="FILE", help="where to write it; - writes stdout")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=image_download)
    p = image.add_parser("create-from-vm", help="make an image from a disk of a stopped VM")
    p.add_argument("vm", metavar="VM", help="VM id or name (in --project)")
    p.add_argument("disk_id", metavar="DISK_ID", help="id of the disk in the VM spec, e.g. root")
    p.add_argument("--name", required=True, help="name of the new image")
    p.add_argument("--visibility", choices=visibilities, default="private", help="who may use the image")
    p.add_argument("--share", action="append", metavar="ORG",
                   help="with --visibility shared (repeatable; default: none)")
    p.add_argument("--wait", type=float, default=600.0, metavar="SECONDS",
                   help="wait until the image is available (0: return the pending record at once)")
    p.set_defaults(func=image_create_from_vm)
    p = image.add_parser("convert", help="make a new image in another format")
    p.add_argument("image", metavar="IMAGE", help="image id or name")
    p.add_argument("--to", required=True, choices=[f.value for f in ImageFormat], help="target format")
    p.add_argument("--name", help="name of the new image (default: <name>-<format>)")
    p.set_defaults(func=image_convert)
    p = image.add_parser("update", help="rename or change who can see an image")
    p.add_argument("image", metavar="IMAGE", help="image id or name")
    p.add_argument("--name", help="new name (default: unchanged)")
    p.add_argument("--visibility", choices=visibilities, help="new visibility (default: unchanged)")
    p.add_argument("--share", action="append", metavar="ORG",
                   help="share with this org (repeatable; default: unchanged)")
    p.set_defaults(func=image_update)
    p = image.add_parser("delete", help="delete an image (refused while a VM uses it; asks first on a terminal)")
    p.add_argument("image", metavar="IMAGE", help="image id or name")
    p.set_defaults(func=image_delete)
