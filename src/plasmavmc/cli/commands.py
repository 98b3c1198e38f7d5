"""The `plasmavmc` subcommands: each one a few `PlasmaClient` calls and one rendering.

A handler takes the connected client and the parsed arguments and returns the exit code; errors are
not handled here — `main.py` turns every `PlasmaError` into one `error:` line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from plasmavmc.cli import output as out
from plasmavmc.client import PlasmaClient
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    BootSpec,
    CpuSpec,
    DiskSource,
    DiskSpec,
    HypervisorType,
    MemorySpec,
    NetworkSpec,
    VirtualMachine,
    VmSpec,
)

Handler = Callable[[PlasmaClient, argparse.Namespace], Awaitable[int]]

#: how long `vm create --start` waits for provisioning before it can start, when --wait is not given
CREATE_TIMEOUT = 600.0


def _json(args: argparse.Namespace) -> bool:
    return bool(args.output == "json")


def _show_vms(args: argparse.Namespace, vms: list[VirtualMachine], *, as_list: bool) -> int:
    if _json(args):
        out.emit(out.dump_json(vms if as_list else vms[0]))
    else:
        out.emit(out.table(out.VM_COLUMNS, [out.vm_row(vm) for vm in vms]))
    return 0


def _scope(args: argparse.Namespace) -> tuple[str, str]:
    return args.org, args.project


# --- vm -------------------------------------------------------------------------------------------


async def vm_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    root = DiskSpec(id="root", source=DiskSource(image_id=args.image), size_gib=args.disk_gib, boot_index=0)
    spec = VmSpec(
        cpu=CpuSpec(vcpus=args.vcpus),
        memory=MemorySpec(size_mib=args.memory_mib),
        disks=(root,),
        network=tuple(NetworkSpec(id=f"nic{i}", network_id=net) for i, net in enumerate(args.network)),
        boot=BootSpec(kernel_args=args.kernel_args, machine_type=args.machine_type),
    )
    org, project = _scope(args)
    vm = await client.create_vm(
        args.name, org, project, spec, hypervisor=HypervisorType(args.hypervisor), labels=dict(args.label)
    )
    if args.start:
        if vm.state in (VmState.PENDING, VmState.CREATING):  # provisioning first: a start now would fail
            ready = {VmState.STOPPED, VmState.RUNNING, VmState.ERROR}
            vm = await client.wait_for_state(org, project, vm.id, ready, args.wait or CREATE_TIMEOUT)
        if vm.state is not VmState.RUNNING:
            vm = await client.start_vm(org, project, vm.id)
    if args.wait is not None:
        target = {VmState.RUNNING} if args.start else {VmState.STOPPED, VmState.RUNNING}
        vm = await client.wait_for_state(org, project, vm.id, target, args.wait)
    return _show_vms(args, [vm], as_list=False)


async def vm_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show_vms(args, await client.list_all_vms(*_scope(args)), as_list=True)


async def vm_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.get_vm(*_scope(args), args.vm)
    out.emit(out.dump_json(vm) if _json(args) else out.vm_details(vm))
    return 0


async def vm_start(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.start_vm(*_scope(args), args.vm)
    if args.wait is not None:
        vm = await client.wait_for_state(*_scope(args), vm.id, {VmState.RUNNING}, args.wait)
    return _show_vms(args, [vm], as_list=False)


async def vm_stop(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.stop_vm(*_scope(args), args.vm, force=args.force, timeout_seconds=args.timeout)
    if args.wait is not None:
        vm = await client.wait_for_state(*_scope(args), vm.id, {VmState.STOPPED}, args.wait)
    return _show_vms(args, [vm], as_list=False)


async def vm_reboot(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show_vms(args, [await client.reboot_vm(*_scope(args), args.vm)], as_list=False)


async def vm_reset(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show_vms(args, [await client.reset_vm(*_scope(args), args.vm)], as_list=False)


async def vm_delete(client: PlasmaClient, args: argparse.Namespace) -> int:
    await client.delete_vm(*_scope(args), args.vm, force=args.force)
    if _json(args):
        out.emit(out.dump_json({"vm": args.vm, "deleted": True}))
    else:
        out.emit(f"vm {args.vm} deleted")
    return 0


async def vm_console(client: PlasmaClient, args: argparse.Namespace) -> int:
    sink = getattr(sys.stdout, "buffer", None)
    async for chunk in client.console(*_scope(args), args.vm, follow=args.follow):
        if sink is not None:
            sink.write(chunk)
            sink.flush()
        else:
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
    return 0


async def vm_watch(client: PlasmaClient, args: argparse.Namespace) -> int:
    events = client.watch_vm(*_scope(args), args.vm, send_initial=bool(args.vm) and not args.since,
                             start_revision=args.since)
    async for event in events:
        out.emit(out.dump_json(event, compact=True) if _json(args) else out.event_line(event))
    return 0


async def vm_events(client: PlasmaClient, args: argparse.Namespace) -> int:
    async for event in client.vm_events(*_scope(args), args.vm, follow=args.follow):
        out.emit(out.dump_json(event, compact=True) if _json(args) else out.event_line(event))
    return 0


# --- node -----------------------------------------------------------------------------------------


async def node_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    nodes = await client.list_nodes()
    if _json(args):
        out.emit(out.dump_json(nodes))
    else:
        out.emit(out.table(out.NODE_COLUMNS, [out.node_row(n) for n in nodes]))
    return 0


async def node_action(client: PlasmaClient, args: argparse.Namespace) -> int:
    call = {
        "get": client.get_node,
        "cordon": client.cordon_node,
        "uncordon": client.uncordon_node,
        "drain": client.drain_node,
    }[args.action]
    drain = args.action == "drain"
    node = await (client.drain_node(args.node_id, args.allow_disk_loss) if drain else call(args.node_id))
    if _json(args):
        out.emit(out.dump_json(node))
    else:
        out.emit(out.table(out.NODE_COLUMNS, [out.node_row(node)]))
    return 0


async def node_delete(client: PlasmaClient, args: argparse.Namespace) -> int:
    orphaned = await client.delete_node(args.node_id, args.force)
    if _json(args):
        out.emit(out.dump_json({"node_id": args.node_id, "deleted": True, "orphaned_vms": orphaned}))
    else:
        note = f" ({orphaned} VMs were still assigned to it: they are flagged and can be deleted)" if orphaned else ""
        out.emit(f"node {args.node_id} deleted{note}")
    return 0


# --- image ----------------------------------------------------------------------------------------


async def image_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    images = await client.list_images(args.org)
    if _json(args):
        out.emit(out.dump_json(images))
    else:
        out.emit(out.table(out.IMAGE_COLUMNS, [out.image_row(i) for i in images]))
    return 0


async def image_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    image = await client.get_image(args.org, args.image_id)
    if _json(args):
        out.emit(out.dump_json(image))
    else:
        out.emit(out.table(out.IMAGE_COLUMNS, [out.image_row(image)]))
    return 0
