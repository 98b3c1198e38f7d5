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

The gateway URL is `--gateway`, or env PLASMAVMC_GATEWAY, or the API host on port 8083 (`[server] console_addr`).
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

from plasmavmc.cli import commands as cmd
from plasmavmc.cli import output as out
from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import ConsoleSocket, open_console
from plasmavmc.types.vm import DiskSource, DiskSpec, NetworkSpec

ESCAPE = b"\x1d"  # Ctrl-]


def add_parsers(vm: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def one(name: str, help_: str, func: cmd.Handler) -> argparse.ArgumentParser:
        parser = vm.add_parser(name, help=help_)
        parser.add_argument("vm", help="VM id or name")
        parser.set_defaults(func=func)
        return parser

    p = one("console", "the serial console (output; -i to type into it)", vm_console)
    p.add_argument("--no-follow", dest="follow", action="store_false", help="print the retained output and exit")
    p.add_argument("-i", "--interactive", action="store_true", help="type into the console (Ctrl-] quits)")
    p.add_argument("--gateway", default=os.environ.get("PLASMAVMC_GATEWAY"),
                   help="console gateway URL (env PLASMAVMC_GATEWAY; default: the API host, port 8083)")
    p = one("attach-disk", "attach a disk (hot-plug on a running q35 VM)", vm_attach_disk)
    p.add_argument("disk_id")
    p.add_argument("--size-gib", type=int, default=1)
    p.add_argument("--image", help="make the disk from this image (default: blank)")
    one("detach-disk", "detach a disk", vm_detach_disk).add_argument("disk_id")
    p = one("attach-nic", "attach a NIC (a tap device; hot-plug on a running q35 VM)", vm_attach_nic)
    p.add_argument("nic_id")
    p.add_argument("--network", default="default")
    p.add_argument("--mac", help="MAC address (default: derived from the VM and NIC ids)")
    one("detach-nic", "detach a NIC", vm_detach_nic).add_argument("nic_id")
    one("snapshot", "snapshot the disks (and memory, when running)", vm_snapshot).add_argument("snapshot_id")
    one("restore", "restore a snapshot", vm_restore).add_argument("snapshot_id")
    one("snapshots", "list the VM's snapshots", vm_snapshots)
    one("delete-snapshot", "delete a snapshot", vm_delete_snapshot).add_argument("snapshot_id")


def _gateway(args: argparse.Namespace) -> str:
    if args.gateway:
        return str(args.gateway)
    host = urlsplit(args.addr if "//" in args.addr else f"//{args.addr}").hostname or "127.0.0.1"
    return f"http://{host}:8083"


async def vm_console(client: PlasmaClient, args: argparse.Namespace) -> int:
    if not args.interactive:
        return await cmd.vm_console(client, args)
    org, project = cmd._scope(args)
    ticket = await client.create_console_ticket(org, project, args.vm)  # 60 s, this VM only
    async with await open_console(_gateway(args), org, project, args.vm, ticket=ticket.ticket) as console:
        with _raw_terminal():
            await _interact(console)
    return 0


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
    vm = await client.attach_disk(*cmd._scope(args), args.vm, disk)
    return cmd._show_vms(args, [vm], as_list=False)


async def vm_detach_disk(client: PlasmaClient, args: argparse.Namespace) -> int:
    return cmd._show_vms(args, [await client.detach_disk(*cmd._scope(args), args.vm, args.disk_id)], as_list=False)


async def vm_attach_nic(client: PlasmaClient, args: argparse.Namespace) -> int:
    nic = NetworkSpec(id=args.nic_id, network_id=args.network, mac_address=args.mac)
    return cmd._show_vms(args, [await client.attach_nic(*cmd._scope(args), args.vm, nic)], as_list=False)


async def vm_detach_nic(client: PlasmaClient, args: argparse.Namespace) -> int:
    return cmd._show_vms(args, [await client.detach_nic(*cmd._scope(args), args.vm, args.nic_id)], as_list=False)


async def vm_snapshot(client: PlasmaClient, args: argparse.Namespace) -> int:
    snap = await client.snapshot_vm(*cmd._scope(args), args.vm, args.snapshot_id)
    out.emit(out.dump_json(snap) if cmd._json(args) else f"snapshot {snap.id} taken "
             f"({'disks + memory' if snap.memory else 'disks'})")
    return 0


async def vm_restore(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.restore_vm(*cmd._scope(args), args.vm, args.snapshot_id)
    return cmd._show_vms(args, [vm], as_list=False)


async def vm_snapshots(client: PlasmaClient, args: argparse.Namespace) -> int:
    snaps = await client.list_snapshots(*cmd._scope(args), args.vm)
    if cmd._json(args):
        out.emit(out.dump_json(snaps))
        return 0
    for snap in snaps:
        out.emit(f"{snap.id}\t{snap.created_at}\t{'memory+disks' if snap.memory else 'disks'}\t"
                 f"{','.join(snap.disk_ids)}")
    return 0


async def vm_delete_snapshot(client: PlasmaClient, args: argparse.Namespace) -> int:
    await client.delete_snapshot(*cmd._scope(args), args.vm, args.snapshot_id)
    out.emit(f"snapshot {args.snapshot_id} deleted")
    return 0
