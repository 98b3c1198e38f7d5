"""`plasmavmc vm` commands for consoles, devices and snapshots.

    plasmavmc vm console web-1                      # serial output (history, then follow) over gRPC
    plasmavmc vm console web-1 -i                   # interactive, through the WebSocket gateway;
                                                    # Ctrl-] ends the session
    plasmavmc vm attach-disk web-1 data --size-gib 4 [--image IMAGE]
    plasmavmc vm detach-disk web-1 data
    plasmavmc vm attach-nic web-1 net1 [--mac 52:54:00:12:34:56]
    plasmavmc vm detach-nic web-1 net1
    plasmavmc vm snapshot web-1 before-upgrade      # disks (+ memory while running)
    plasmavmc vm restore web-1 before-upgrade
    plasmavmc vm snapshots web-1 / vm delete-snapshot web-1 before-upgrade

The gateway URL is the global `--gateway` (env PLASMAVMC_GATEWAY, profile key `gateway`), else the API
host on port 8083 (`[server] console_addr`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Iterator
from urllib.parse import urlsplit

from plasmavmc.cli import output as out
from plasmavmc.cli.common import Handler, Subparsers, confirm, scope, shows, vm_command
from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import ConsoleSocket, open_console
from plasmavmc.types.runtime import SnapshotInfo
from plasmavmc.types.vm import DiskSource, DiskSpec, NetworkSpec, VirtualMachine

ESCAPE = b"\x1d"  # Ctrl-]


def add_parsers(vm: Subparsers) -> None:
    def one(name: str, help_: str, func: Handler) -> argparse.ArgumentParser:
        return vm_command(vm, name, help_, func)

    p = one("console", "the serial console (output; -i to type into it)", vm_console)
    p.add_argument("--no-follow", dest="follow", action="store_false", help="print the retained output and exit")
    p.add_argument("-i", "--interactive", action="store_true", help="type into the console (Ctrl-] quits)")
    p = one("attach-disk", "attach a disk (hot-plug on a running q35 VM)", vm_attach_disk)
    p.add_argument("disk_id", help="id of the new disk in the VM spec")
    p.add_argument("--size-gib", type=int, default=1, help="disk size in GiB")
    p.add_argument("--image", help="make the disk from this image (default: blank)")
    one("detach-disk", "detach a disk", vm_detach_disk).add_argument("disk_id", help="id of the disk")
    p = one("attach-nic", "attach a NIC (a tap device; hot-plug on a running q35 VM)", vm_attach_nic)
    p.add_argument("nic_id", help="id of the new NIC in the VM spec")
    p.add_argument("--network", default="default", help="network id")
    p.add_argument("--mac", help="MAC address (default: derived from the VM and NIC ids)")
    one("detach-nic", "detach a NIC", vm_detach_nic).add_argument("nic_id", help="id of the NIC")
    one("snapshot", "snapshot the disks (and memory, when running)", vm_snapshot).add_argument(
        "snapshot_id", help="name of the new snapshot")
    one("restore", "restore a snapshot (asks first on a terminal)", vm_restore).add_argument(
        "snapshot_id", help="snapshot to restore")
    shows(one("snapshots", "list the VM's snapshots", vm_snapshots), SnapshotInfo, out.SNAPSHOT_COLUMNS)
    one("delete-snapshot", "delete a snapshot (asks first on a terminal)", vm_delete_snapshot).add_argument(
        "snapshot_id", help="snapshot to delete")


def _gateway(args: argparse.Namespace) -> str:
    if args.gateway:
        return str(args.gateway)
    host = urlsplit(args.endpoint if "//" in args.endpoint else f"//{args.endpoint}").hostname or "127.0.0.1"
    return f"http://{host}:8083"


async def vm_console(client: PlasmaClient, args: argparse.Namespace) -> int:
    if not args.interactive:
        return await _print_console(client, args)
    org, project = scope(args)
    ticket = await client.create_console_ticket(org, project, args.vm)  # 60 s, this VM only
    async with await open_console(_gateway(args), org, project, args.vm, ticket=ticket.ticket) as console:
        with _raw_terminal():
            await _interact(console)
    return 0


async def _print_console(client: PlasmaClient, args: argparse.Namespace) -> int:
    async for chunk in client.console(*scope(args), args.vm, follow=args.follow):
        write_console(chunk)
    return 0


def write_console(chunk: bytes) -> None:
    """Console output to stdout as it comes (its bytes as they are, when stdout takes bytes)."""
    sink = getattr(sys.stdout, "buffer", None)
    if sink is not None:
        sink.write(chunk)
        sink.flush()
    else:
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()


def _show_vm(args: argparse.Namespace, vm: VirtualMachine) -> int:
    return out.show(args, vm, out.VM_COLUMNS, out.vm_row)


@contextlib.contextmanager
def _raw_terminal() -> Iterator[None]:
    if not sys.stdin.isatty():
        yield
        return
    saved = termios.tcgetattr(sys.stdin.fileno())
    tty.setraw(sys.stdin.fileno())
    try:
        yield
    finally:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


async def _interact(console: ConsoleSocket) -> None:
    loop = asyncio.get_running_loop()
    typed: asyncio.Queue[bytes] = asyncio.Queue()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: typed.put_nowait(os.read(fd, 4096)))

    async def keyboard() -> None:
        while (data := await typed.get()) and ESCAPE not in data:
            await console.send(data)
        if data:
            await console.send(data.split(ESCAPE, 1)[0])

    async def screen() -> None:
        async for chunk in console:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()

    tasks = [asyncio.create_task(keyboard()), asyncio.create_task(screen())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        loop.remove_reader(fd)
        for task in tasks:
            task.cancel()


async def vm_attach_disk(client: PlasmaClient, args: argparse.Namespace) -> int:
    disk = DiskSpec(id=args.disk_id, size_gib=args.size_gib, source=DiskSource(image_id=args.image))
    vm = await client.attach_disk(*scope(args), args.vm, disk)
    return _show_vm(args, vm)


async def vm_detach_disk(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show_vm(args, await client.detach_disk(*scope(args), args.vm, args.disk_id))


async def vm_attach_nic(client: PlasmaClient, args: argparse.Namespace) -> int:
    nic = NetworkSpec(id=args.nic_id, network_id=args.network, mac_address=args.mac)
    return _show_vm(args, await client.attach_nic(*scope(args), args.vm, nic))


async def vm_detach_nic(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show_vm(args, await client.detach_nic(*scope(args), args.vm, args.nic_id))


async def vm_snapshot(client: PlasmaClient, args: argparse.Namespace) -> int:
    snap = await client.snapshot_vm(*scope(args), args.vm, args.snapshot_id)
    if args.output != "table":
        return out.show(args, snap, out.SNAPSHOT_COLUMNS, out.snapshot_row)
    out.emit(f"snapshot {snap.id} taken ({'disks + memory' if snap.memory else 'disks'})")
    return 0


async def vm_restore(client: PlasmaClient, args: argparse.Namespace) -> int:
    confirm(args, f"restore vm {args.vm} to snapshot {args.snapshot_id} (its current disks are replaced)?")
    vm = await client.restore_vm(*scope(args), args.vm, args.snapshot_id)
    return _show_vm(args, vm)


async def vm_snapshots(client: PlasmaClient, args: argparse.Namespace) -> int:
    snaps = await client.list_snapshots(*scope(args), args.vm)
    return out.show(args, snaps, out.SNAPSHOT_COLUMNS, out.snapshot_row)


async def vm_delete_snapshot(client: PlasmaClient, args: argparse.Namespace) -> int:
    confirm(args, f"delete snapshot {args.snapshot_id} of vm {args.vm}?")
    await client.delete_snapshot(*scope(args), args.vm, args.snapshot_id)
    out.emit(f"snapshot {args.snapshot_id} deleted")
    return 0
