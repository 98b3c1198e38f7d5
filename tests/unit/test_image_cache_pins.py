"""The image cache's pins: held at once (eviction spares them), their file written at the loop's next
turn (not on a create's way to its hypervisor), dropped with `unpin` even before that write."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.types.image import Image, ImageFormat

MIB = 1024 * 1024


def _image(root: Path, name: str, last_use: float) -> Image:
    """An image already in the cache (its file made by hand, `last_use` its mtime)."""
    checksum = format(abs(hash(name)), "x").rjust(64, "0")[:64]
    path = root / name / checksum
    path.parent.mkdir()
    path.write_bytes(b"x" * MIB)
    os.utime(path, (last_use, last_use))
    return Image(id=name, name=name, org_id="org", format=ImageFormat.RAW, checksum=checksum, size_bytes=MIB)


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[ImageCache]:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:  # never called: every image is cached
        yield ImageCache(tmp_path, channel, 2 * MIB)


async def test_a_pin_holds_before_its_file_is_written(cache: ImageCache, tmp_path: Path) -> None:
    old = _image(tmp_path, "old", 1)
    cache.pin("vm-1", [old])
    pin_file = tmp_path / ".pins" / "vm-1"
    assert not pin_file.exists()  # not yet: written at the loop's next turn
    assert cache.path_of(old) in cache.pinned()
    await cache._make_room(2 * MIB)  # the oldest file would go first: it is pinned
    assert cache.path_of(old).exists()
    await asyncio.sleep(0)
    assert json.loads(pin_file.read_text()) == [str(cache.path_of(old))]


async def test_pins_of_one_turn_make_one_file_and_add_to_it_later(cache: ImageCache, tmp_path: Path) -> None:
    a, b, c = (_image(tmp_path, n, 1) for n in "abc")
    cache.pin("vm-1", [a])
    cache.pin("vm-1", [b])
    await asyncio.sleep(0)
    cache.pin("vm-1", [c])
    await asyncio.sleep(0)
    assert json.loads((tmp_path / ".pins" / "vm-1").read_text()) == sorted(str(cache.path_of(i)) for i in (a, b, c))
    assert not cache._unwritten


async def test_unpin_before_the_write_leaves_no_file(cache: ImageCache, tmp_path: Path) -> None:
    old = _image(tmp_path, "old", 1)
    cache.pin("vm-1", [old])
    cache.unpin("vm-1")
    await asyncio.sleep(0)
    assert not (tmp_path / ".pins" / "vm-1").exists()
    assert cache.pinned() == set()
    await cache._make_room(2 * MIB)
    assert not cache.path_of(old).exists()  # unpinned: evicted to make room


async def test_a_pin_file_that_cannot_be_written_still_holds(cache: ImageCache, tmp_path: Path) -> None:
    old = _image(tmp_path, "old", 1)
    (tmp_path / ".pins").write_text("not a directory")
    cache.pin("vm-1", [old])
    await asyncio.sleep(0)
    assert cache.path_of(old) in cache.pinned()
    await cache._make_room(2 * MIB)
    assert cache.path_of(old).exists()
    (tmp_path / ".pins").unlink()
    cache.unpin("vm-1")
    assert cache.pinned() == set()


def test_without_a_loop_the_file_is_written_at_once(tmp_path: Path) -> None:
    cache = ImageCache.__new__(ImageCache)
    cache.root, cache._unwritten = tmp_path, {}
    cache._pin("vm-1", tmp_path / "img" / "sum")
    assert json.loads((tmp_path / ".pins" / "vm-1").read_text()) == [str(tmp_path / "img" / "sum")]


async def test_an_invalid_vm_id_holds_nothing(cache: ImageCache, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="vm_id"):
        cache.pin("../x", [_image(tmp_path, "a", 1)])
    assert cache.pinned() == set()
