"""Backend-neutral helpers every hypervisor backend needs: checked ids and names, the boot disk and its
image, stable tap names and MAC addresses, atomic file replacement for runtime state, the flush of what
a create wrote (every file at once, `flush_all`) and the wait that puts it after a RunVm's first output
(`after_first_output`), and the marker that says a process's end was asked for.

They live here, not in one backend, so that QEMU and Firecracker (and the next backend) derive the same
names from the same VM and reject the same bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plasmavmc.errors import InvalidArgument
from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.types.vm import DiskSpec, NetworkSpec, VmSpec

#: how long a booted VM's own work waits for its first output to go on (`after_first_output`)
FIRST_OUTPUT_WAIT = 0.01

_DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_VM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def checked_vm_id(vm_id: str) -> str:
    """`vm_id` if it is a canonical UUID string; anything else could escape the runtime dir."""
    try:
        canonical = str(uuid.UUID(vm_id))
    except ValueError as exc:
        raise InvalidArgument("id", f"VM id {vm_id!r} is not a UUID") from exc
    if canonical != vm_id:
        raise InvalidArgument("id", f"VM id {vm_id!r} is not a canonical lower-case UUID")
    return vm_id


def device_id(value: str, field: str) -> str:
    if not _DEVICE_ID.fullmatch(value):
        raise InvalidArgument(field, f"{value!r} must match [a-z0-9][a-z0-9._-]* (at most 63 characters)")
    return value


def vm_name(value: str) -> str:
    if not _VM_NAME.fullmatch(value):
        raise InvalidArgument("name", f"{value!r} must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 63)")
    return value


def tap_name(vm_id: str, nic_id: str) -> str:
    """A tap device name (<= 15 chars) derived from the VM id and NIC id: stable across hot-plugs."""
    return f"pv{uuid.uuid5(uuid.UUID(vm_id), nic_id).hex[:13]}"


def mac_address(vm_id: str, nic: NetworkSpec) -> str:
    if nic.mac_address is not None:
        mac = nic.mac_address.lower()
        if not _MAC.fullmatch(mac):
            raise InvalidArgument("mac_address", f"{nic.mac_address!r} is not a MAC address")
        return mac
    digest = uuid.uuid5(uuid.UUID(vm_id), nic.id).bytes
    return "52:54:" + ":".join(f"{b:02x}" for b in digest[:4])  # QEMU's locally administered prefix


def boot_disk(spec: VmSpec) -> DiskSpec | None:
    """The disk to boot from: the lowest boot_index, else the first disk."""
    indexed = [d for d in spec.disks if d.boot_index is not None]
    if indexed:
        return min(indexed, key=lambda d: d.boot_index or 0)
    return spec.disks[0] if spec.disks else None


def image_for_boot(spec: VmSpec, images: dict[str, LocalImage]) -> LocalImage | None:
    disk = boot_disk(spec)
    return images.get(disk.source.image_id or "") if disk is not None else None


def flush(paths: Iterable[Path]) -> None:
    """fsync each file (or directory: its entries) that was written with `durable=False`, so that it
    survives a host crash from here on; a path that is gone is skipped. Blocking: run it in a thread."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_FSYNCS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fsync")  # `flush_all`'s, apart from the loop's


def flush_all(paths: Iterable[Path]) -> None:
    """`flush` every path at once, one thread each: concurrent fsyncs share the filesystem's journal
    commits (ext4's jbd2 batches them), so a create's seven files wait for about one commit instead of
    seven in a row (measured here under I/O load: 1.8 ms vs 7.6 ms, medians). Blocking: run it in one
    worker thread (`asyncio.to_thread`), so the event loop hands the flush over and hears back once (a
    worker per path dispatched from the loop woke it for each, beside the answers it was sending)."""
    for done in [_FSYNCS.submit(flush, [path]) for path in paths]:
        done.result()


def write_plain(path: Path, data: bytes, *, create: bool = False) -> None:
    """`data` written to `path` in one write: no temp file, no buffered layer, no fsync. For a file
    nobody reads half-written: a cgroup knob (`create=False`: it exists), a file in a directory not yet
    published (`create=True`: made or truncated, 0600)."""
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {path}")
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never a torn one.
    `durable`: flushed to disk before the rename (survives a host crash); off for files that describe
    only the running process, which a host crash ends anyway."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mark_stop(path: Path, pid: int, reason: str) -> None:
    """Record at `path` that process `pid`'s end is asked for (`reason`), for its exit's classification
    (`stop_reason`). Not fsynced: it names a process that a host crash ends anyway, and a stop or delete
    must not wait for the disk."""
    write_atomic(path, f"{pid} {reason}".encode(), durable=False)


def stop_reason(path: Path, pid: int) -> str | None:
    """The reason `mark_stop` recorded at `path` for process `pid` ("stop" if it gave none); None when
    nothing asked this process to end (no marker, or one of an earlier process)."""
    try:
        marked, _, reason = path.read_text().partition(" ")
    except FileNotFoundError:
        return None
    return (reason or "stop") if marked == str(pid) else None


async def after_first_output(output_sent: asyncio.Event | None) -> None:
    """Until `output_sent` is set (a RunVm's: the guest's first output has gone on to the control
    plane), at most `FIRST_OUTPUT_WAIT`; at once without it. What a create does after the boot that can
    wait (its records' flush: file writes, fsync threads, journal commits) waits for it: a guest busy from
    its boot on (the test guest polls its UART) keeps a CPU, and the output's way through the agent, the
    server and the client shares what is left (on 2 CPUs, one) with that work. A guest silent for longer
    only makes the create's answer that much later."""
    if output_sent is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_OUTPUT_WAIT):
                await output_sent.wait()
