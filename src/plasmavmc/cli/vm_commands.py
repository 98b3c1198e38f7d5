"""`plasmavmc vm create|list|get|start|stop|reboot|reset|delete|watch|events` (devices, console and snapshots:
`vm_device_commands.py`; resize and restart policy: `vm_resize_commands.py`).

`vm list` filters (`--state`, `--node`, `--label k=v`) and `--all-projects` are server-side
(ListVmsRequest.states/node_ids/labels/all_projects). Every waiting command is bounded
by `--wait SECONDS` and says what it waited for: when the time runs out the command returns with
`error: TIMEOUT: vm X: still STOPPING after 0.05s waiting for STOPPED` (exit 1) — the operation itself
goes on on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable

from plasmavmc.cli import guest_commands, vm_device_commands, vm_resize_commands
from plasmavmc.cli import output as out
from plasmavmc.cli.common import Handler, Subparsers, confirm, find_image, label, positive, scope, seconds, shows
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
    RestartPolicy,
    VirtualMachine,
    VmSpec,
)

#: how long `vm create --start` waits for provisioning before it can start, when --wait is not given
CREATE_TIMEOUT = 600.0


def _json(args: argparse.Namespace) -> bool:
    return bool(args.output == "json")


def _show_vms(args: argparse.Namespace, vms: list[VirtualMachine], *, as_list: bool) -> int:
    return out.show(args, vms if as_list else vms[0], out.VM_COLUMNS, out.vm_row)


async def _bounded(call: Awaitable[VirtualMachine], wait: float | None, what: str) -> VirtualMachine:
    """`call`, given at most `wait` seconds (None: unbounded); a timeout names what was awaited."""
    if wait is None:
        return await call
    try:
        async with asyncio.timeout(wait):
            return await call
    except TimeoutError:
        raise TimeoutError(f"{what}: not finished after {wait:g}s (it goes on on the server)") from None


# --- handlers -------------------------------------------------------------------------------------


async def vm_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    org, project = scope(args)
    image = await find_image(client, org, args.image)
    root = DiskSpec(id="root", source=DiskSource(image_id=image.id), size_gib=args.disk_gib, boot_index=0)
    spec = VmSpec(
        cpu=CpuSpec(vcpus=args.vcpus),
        memory=MemorySpec(size_mib=args.memory_mib),
        disks=(root,),
        network=tuple(NetworkSpec(id=f"nic{i}", network_id=net, security_groups=tuple(args.security_group))
                      for i, net in enumerate(args.network)),
        boot=BootSpec(kernel_args=args.kernel_args, machine_type=args.machine_type),
        cloud_init=guest_commands.cloud_init_spec(args),
        restart_policy=RestartPolicy(args.restart_policy or RestartPolicy.NEVER.value),
    )
    if args.console:
        return await _run(client, args, spec)
    vm = await client.create_vm(
        args.name, org, project, spec, hypervisor=HypervisorType(args.hypervisor), labels=dict(args.label)
    )
    if args.start:
        if vm.state in (VmState.PENDING, VmState.CREATING):  # provisioning first: a start now would fail
            ready = {VmState.STOPPED, VmState.RUNNING, VmState.ERROR}
            vm = await client.wait_for_state(org, project, vm.id, ready, args.wait or CREATE_TIMEOUT)
        if vm.state is not VmState.RUNNING:
            vm = await _bounded(client.start_vm(org, project, vm.id), args.wait, f"vm {vm.id}: start")
    if args.wait is not None:
        target = {VmState.RUNNING} if args.start else {VmState.STOPPED, VmState.RUNNING}
        vm = await client.wait_for_state(org, project, vm.id, target, args.wait)
    return _show_vms(args, [vm], as_list=False)


async def _run(client: PlasmaClient, args: argparse.Namespace, spec: VmSpec) -> int:
    """`vm create --console`: RunVm — the VM (on stderr) once it runs, then its console (stdout) until
    interrupted."""
    run = client.run_vm(args.name, *scope(args), spec, hypervisor=HypervisorType(args.hypervisor),
                        labels=dict(args.label))
    async for item in run:
        if isinstance(item, bytes):
            vm_device_commands.write_console(item)
        else:
            print(f"vm {item.name} ({item.id}) is {item.state.value.upper()} on node {item.node_id}",
                  file=sys.stderr, flush=True)
    return 0


def vm_state(text: str) -> VmState:
    """A `--state` value, in any case; anything else is a usage error naming the choices."""
    try:
        return VmState(text.lower())
    except ValueError:
        raise argparse.ArgumentTypeError(f"one of {', '.join(s.value.upper() for s in VmState)}") from None


async def vm_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    org, project = scope(args)
    vms = await client.list_all_vms(
        org, "" if args.all_projects else project, all_projects=args.all_projects,
        states=args.state, node_ids=args.node, labels=dict(args.label),
    )
    if args.all_projects:
        return out.show(args, vms, ("PROJECT", *out.VM_COLUMNS), lambda vm: [vm.project_id, *out.vm_row(vm)])
    return _show_vms(args, vms, as_list=True)


async def vm_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.get_vm(*scope(args), args.vm)
    if args.output == "table" and not args.columns:
        out.emit(out.vm_details(vm))
        return 0
    return _show_vms(args, [vm], as_list=False)


async def vm_start(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await _bounded(client.start_vm(*scope(args), args.vm), args.wait, f"vm {args.vm}: start")
    if args.wait is not None:
        vm = await client.wait_for_state(*scope(args), vm.id, {VmState.RUNNING}, args.wait)
    return _show_vms(args, [vm], as_list=False)


async def vm_stop(client: PlasmaClient, args: argparse.Namespace) -> int:
    call = client.stop_vm(*scope(args), args.vm, force=args.force, timeout_seconds=args.timeout)
    try:
        vm = await _bounded(call, args.wait, f"vm {args.vm}")
    except TimeoutError:
        raise TimeoutError(f"vm {args.vm}: still STOPPING after {args.wait:g}s waiting for STOPPED "
                           f"(the stop goes on: ACPI power-off, then a kill after the stop timeout)") from None
    return _show_vms(args, [vm], as_list=False)


async def vm_reboot(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show_vms(args, [await client.reboot_vm(*scope(args), args.vm)], as_list=False)


async def vm_reset(client: PlasmaClient, args: argparse.Namespace) -> int:
    confirm(args, f"hard-reset vm {args.vm} (like the reset button)?")
    return _show_vms(args, [await client.reset_vm(*scope(args), args.vm)], as_list=False)


async def vm_delete(client: PlasmaClient, args: argparse.Namespace) -> int:
    confirm(args, f"delete vm {args.vm} and its disks?")
    await client.delete_vm(*scope(args), args.vm, force=args.force)
    if args.output in ("json", "yaml"):
        out.emit(out.render(args.output, None, {"vm": args.vm, "deleted": True}, (), []))
    else:
        out.emit(f"vm {args.vm} deleted")
    return 0


async def vm_watch(client: PlasmaClient, args: argparse.Namespace) -> int:
    events = client.watch_vm(*scope(args), args.vm, send_initial=bool(args.vm) and not args.since,
                             start_revision=args.since)
    async for event in events:
        out.emit(out.dump_json(event, compact=True) if _json(args) else out.event_line(event))
    return 0


async def vm_events(client: PlasmaClient, args: argparse.Namespace) -> int:
    async for event in client.vm_events(*scope(args), args.vm, follow=args.follow):
        out.emit(out.dump_json(event, compact=True) if _json(args) else out.event_line(event))
    return 0


# --- parsers --------------------------------------------------------------------------------------


def _create_parser(vm: Subparsers) -> None:
    p = vm.add_parser("create", help="create a VM booting from an image")
    p.add_argument("name", help="VM name, unique in the project")
    p.add_argument("--image", required=True, help="image id or name of the root disk")
    p.add_argument("--vcpus", type=positive, default=1, help="virtual CPUs")
    p.add_argument("--memory-mib", type=positive, default=256, help="memory in MiB")
    p.add_argument("--disk-gib", type=positive, default=1, help="root disk size in GiB")
    p.add_argument("--hypervisor", choices=[h.value for h in HypervisorType], default=HypervisorType.KVM.value,
                   help="hypervisor backend")
    p.add_argument("--machine-type", choices=("microvm", "q35"), default="",
                   help="QEMU machine type (empty: microvm for an image with a kernel, q35 for one without)")
    p.add_argument("--kernel-args", default="", help="appended to the image's kernel command line")
    p.add_argument("--network", action="append", default=[], metavar="NETWORK_ID",
                   help="attach a NIC on this network (repeatable)")
    p.add_argument("--security-group", action="append", default=[], metavar="GROUP",
                   help="security group of every NIC (repeatable; none: the network's built-in default)")
    p.add_argument("--label", action="append", type=label, default=[], metavar="KEY=VALUE",
                   help="label the VM (repeatable)")
    guest_commands.add_cloud_init_args(p)
    vm_resize_commands.restart_policy_option(
        p, "what happens when its hypervisor ends unasked: never (default: stay down), on-failure (restart "
           "after a crash or host reboot), always (also after a guest power-off)")
    p.add_argument("--start", action="store_true", help="start the VM once it is created")
    p.add_argument("--console", action="store_true",
                   help="start it and follow its serial console in the same call (RunVm): a line naming the "
                        "running VM on stderr, then the console on stdout until interrupted")
    p.add_argument("--wait", type=seconds, metavar="SECONDS",
                   help="wait at most this long until RUNNING (with --start) or created (default: do not wait)")
    p.set_defaults(func=vm_create)


def _list_parser(vm: Subparsers) -> None:
    p = vm.add_parser("list", help="list the project's VMs (--state/--node/--label filter server-side)")
    p.add_argument("--all-projects", action="store_true",
                   help="every project of the --org (server-side; for admins once IAM lands)")
    shows(p, VirtualMachine, ("PROJECT", *out.VM_COLUMNS))
    p.add_argument("--state", action="append", type=vm_state, default=[], metavar="STATE",
                   help="only VMs in this state, e.g. RUNNING (repeatable: any of them)")
    p.add_argument("--node", action="append", default=[], metavar="NODE_ID",
                   help="only VMs on this node (repeatable: any of them)")
    p.add_argument("--label", action="append", type=label, default=[], metavar="KEY=VALUE",
                   help="only VMs with this label (repeatable: all of them)")
    p.set_defaults(func=vm_list)


def add_parsers(sub: Subparsers) -> None:
    """`plasmavmc vm ...`."""
    area = sub.add_parser("vm", help="virtual machines")
    shows(area, VirtualMachine, out.VM_COLUMNS)
    vm = area.add_subparsers(dest="command", required=True)

    def one(name: str, help_: str, func: Handler) -> argparse.ArgumentParser:
        parser = vm.add_parser(name, help=help_)
        parser.add_argument("vm", help="VM id or name")
        parser.set_defaults(func=func)
        return parser

    _create_parser(vm)
    _list_parser(vm)
    one("get", "show one VM (with its conditions)", vm_get)
    one("start", "start a VM", vm_start).add_argument(
        "--wait", type=seconds, metavar="SECONDS", help="wait at most this long until RUNNING (default: no wait)")
    p = one("stop", "stop a VM (ACPI power-off, then a kill after --timeout)", vm_stop)
    p.add_argument("--force", action="store_true", help="kill at once")
    p.add_argument("--timeout", type=int, default=0, metavar="SECONDS",
                   help="kill after this long (0: the server's 30 s)")
    p.add_argument("--wait", type=seconds, metavar="SECONDS",
                   help="return after this long even if the VM is still stopping (default: until STOPPED)")
    one("reboot", "reboot a running VM", vm_reboot)
    one("reset", "hard-reset a running VM (asks first on a terminal)", vm_reset)
    one("delete", "delete a VM (asks first on a terminal)", vm_delete).add_argument(
        "--force", action="store_true", help="delete even if running")
    vm_device_commands.add_parsers(vm)
    guest_commands.add_ssh_parser(vm)
    vm_resize_commands.add_parsers(vm)
    p = vm.add_parser("watch", help="follow the events of a VM (or, without VM, of the whole project)")
    p.add_argument("vm", nargs="?", default="", help="VM id or name (default: every VM of the project)")
    p.add_argument("--since", type=int, default=0, metavar="REVISION",
                   help="replay the kept events from this store revision on first (0: none)")
    p.set_defaults(func=vm_watch)
    p = one("events", "print the VM's kept events (type, reason, message, actor, revision)", vm_events)
    p.add_argument("-f", "--follow", action="store_true", help="then follow new events")
