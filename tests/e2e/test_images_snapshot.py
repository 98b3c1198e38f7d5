"""CreateImage from a VM's disk (`source.snapshot{vm_id, disk_id}`) end to end: real server, agent, QEMU.

A file written inside a guest (typed on its serial console, then `sync`) is on the disk of a second VM
made from the image of the first VM's root disk: the export flattened the overlay onto its base, and
the new image boots the same way (kernel metadata carried over). Refusals change nothing: an unknown
VM (VM_NOT_FOUND), a disk the VM does not have or a malformed id (INVALID_ARGUMENT naming the field),
a running VM (INVALID_STATE). The CLI makes an image the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import ErrorCode, InvalidState, PlasmaError, VmNotFound
from plasmavmc.types.image import Image, ImageFormat, ImageStatus
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import DiskSource, DiskSpec, VirtualMachine
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import GUEST_IMAGE, ORG, PROJECT, console_until, shell_run, tiny_spec

pytestmark = needs_qemu
BOOT_TIMEOUT = 120
TOKEN = f"snap-{uuid.uuid4().hex[:12]}"


async def settled(client: PlasmaClient, image_id: str, timeout: float = 120) -> Image:
    """Poll the image until its import ends (AVAILABLE or ERROR), within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        image = await client.get_image(ORG, image_id)
        if image.status in (ImageStatus.AVAILABLE, ImageStatus.ERROR):
            return image
        assert time.monotonic() < deadline, f"image {image_id} still {image.status.value} after {timeout}s"
        await asyncio.sleep(0.2)  # polling the API, bounded by the deadline


async def image_ids(client: PlasmaClient) -> set[str]:
    return {i.id for i in await client.list_images(ORG)}


@pytest.fixture(scope="module")
async def source(client: PlasmaClient) -> AsyncIterator[VirtualMachine]:
    vm = await client.create_vm("snap-src", ORG, PROJECT, tiny_spec())
    await client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED}, 60)
    yield vm
    await client.delete_vm(ORG, PROJECT, vm.id, force=True)


async def test_bad_requests_are_refused_and_change_nothing(client: PlasmaClient, source: VirtualMachine) -> None:
    before = await image_ids(client)
    cases = [
        (str(uuid.uuid4()), "root", ErrorCode.VM_NOT_FOUND, "source.snapshot.vm_id"),
        ("not-a-uuid", "root", ErrorCode.INVALID_ARGUMENT, "source.snapshot.vm_id"),
        (source.id, "data", ErrorCode.INVALID_ARGUMENT, "source.snapshot.disk_id"),
        (source.id, "", ErrorCode.INVALID_ARGUMENT, "source.snapshot.disk_id"),
    ]
    for vm_id, disk_id, code, field in cases:
        with pytest.raises(PlasmaError) as caught:
            await client.create_image_from_vm(ORG, "never", vm_id, disk_id)
        assert caught.value.code == code, (vm_id, disk_id, caught.value)
        assert caught.value.field == field, (vm_id, disk_id, caught.value)
    with pytest.raises(VmNotFound) as caught:  # another org cannot reach this org's VM
        await client.create_image_from_vm("org-snap-other", "never", source.id, "root")
    assert caught.value.code == ErrorCode.VM_NOT_FOUND
    assert "no disk 'data'" in str(await _message(client, source.id, "data"))
    assert await image_ids(client) == before


async def _message(client: PlasmaClient, vm_id: str, disk_id: str) -> str:
    try:
        await client.create_image_from_vm(ORG, "never", vm_id, disk_id)
    except PlasmaError as err:
        return err.message
    raise AssertionError("accepted")


async def test_image_from_a_disk_carries_the_guest_s_file(
    cluster: Cluster, client: PlasmaClient, source: VirtualMachine
) -> None:
    await client.start_vm(ORG, PROJECT, source.id)
    await console_until(client, source.id, "PLASMAVMC-READY name=snap-src ", timeout=BOOT_TIMEOUT)
    await shell_run(cluster, source.id, f"echo {TOKEN} > /from-vm.txt && sync")

    before = await image_ids(client)
    with pytest.raises(InvalidState) as caught:  # a running guest would change the disk under the copy
        await client.create_image_from_vm(ORG, "while-running", source.id, "root")
    assert caught.value.code == ErrorCode.INVALID_STATE and "stop it first" in caught.value.message
    assert await image_ids(client) == before

    await client.stop_vm(ORG, PROJECT, source.id)
    await client.wait_for_state(ORG, PROJECT, source.id, {VmState.STOPPED}, 60)
    pending = await client.create_image_from_vm(ORG, "from-snap-src", source.id, "root")
    assert pending.status in (ImageStatus.PENDING, ImageStatus.UPLOADING, ImageStatus.AVAILABLE)
    assert pending.source.snapshot is not None and pending.source.snapshot.vm_id == source.id
    image = await settled(client, pending.id)
    assert image.status == ImageStatus.AVAILABLE, image.metadata.get("error")
    assert image.format == ImageFormat.QCOW2 and len(image.checksum) == 64 and image.size_bytes > 0
    base = await client.get_image(ORG, GUEST_IMAGE)
    for key in ("kernel_id", "ramdisk_id", "kernel_cmdline"):
        assert image.metadata.get(key) == base.metadata.get(key), key
    leftovers = list((cluster.root / "run" / "kvm" / source.id).glob(".export-*"))
    assert leftovers == [], leftovers  # the agent's temp file is gone once the stream ended

    spec = dataclasses.replace(tiny_spec(), disks=(DiskSpec(id="root", source=DiskSource(image_id=image.id)),))
    copy = await client.create_vm("snap-copy", ORG, PROJECT, spec)
    try:
        await client.start_vm(ORG, PROJECT, copy.id)
        await console_until(client, copy.id, "PLASMAVMC-READY name=snap-copy ", timeout=BOOT_TIMEOUT)
        assert TOKEN in await shell_run(cluster, copy.id, "cat /from-vm.txt")
    finally:
        await client.delete_vm(ORG, PROJECT, copy.id, force=True)
    await client.delete_image(ORG, image.id)


async def test_cli_create_from_vm(cluster: Cluster, client: PlasmaClient, source: VirtualMachine) -> None:
    await client.wait_for_state(ORG, PROJECT, source.id, {VmState.STOPPED}, 60)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.cli", "--addr", cluster.api, "--org", ORG, "--project", PROJECT,
        "-o", "json", "image", "create-from-vm", "snap-src", "root", "--name", "cli-from-vm", "--wait", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()
    shown = json.loads(out)
    assert shown["name"] == "cli-from-vm" and shown["status"] == "available"
    await client.delete_image(ORG, shown["id"])

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.cli", "--addr", cluster.api, "--org", ORG, "--project", PROJECT,
        "image", "create-from-vm", "snap-src", "nope", "--name", "cli-bad",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "INVALID_ARGUMENT" in err.decode() and "source.snapshot.disk_id" in err.decode()
