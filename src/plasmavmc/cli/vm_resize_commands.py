"""`plasmavmc vm` commands that change a VM's size and restart policy (UpdateVm).

    plasmavmc vm resize web-1 --vcpus 2 --memory-mib 512   # a STOPPED VM; used from its next start
    plasmavmc vm grow-disk web-1 root --size-gib 4          # a STOPPED VM; disks only grow
    plasmavmc vm update web-1 --restart-policy on-failure   # never | on-failure | always
"""

from __future__ import annotations

import argparse

from plasmavmc.cli import output as out
from plasmavmc.cli.common import Handler, Subparsers, UsageError, positive, scope, vm_command
from plasmavmc.client import PlasmaClient
from plasmavmc.types.vm import RestartPolicy, VmResize

POLICIES = [p.value for p in RestartPolicy]


def restart_policy_option(parser: argparse.ArgumentParser, help_: str) -> None:
    parser.add_argument("--restart-policy", choices=POLICIES, default=None, help=help_)


async def vm_resize(client: PlasmaClient, args: argparse.Namespace) -> int:
    if not args.vcpus and not args.memory_mib:
        raise UsageError("vm resize: give --vcpus and/or --memory-mib")
    change = VmResize(vcpus=args.vcpus or 0, memory_mib=args.memory_mib or 0)
    vm = await client.update_vm(*scope(args), args.vm, resize=change)
    return out.show(args, vm, out.VM_COLUMNS, out.vm_row)


async def vm_grow_disk(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.update_vm(*scope(args), args.vm, resize=VmResize(disk_sizes={args.disk_id: args.size_gib}))
    return out.show(args, vm, out.VM_COLUMNS, out.vm_row)


async def vm_update(client: PlasmaClient, args: argparse.Namespace) -> int:
    if args.restart_policy is None:
        raise UsageError("vm update: nothing to change (give --restart-policy)")
    policy = RestartPolicy(args.restart_policy)
    vm = await client.update_vm(*scope(args), args.vm, restart_policy=policy)
    return out.show(args, vm, out.VM_COLUMNS, out.vm_row)


def add_parsers(vm: Subparsers) -> None:
    def one(name: str, help_: str, func: Handler) -> argparse.ArgumentParser:
        return vm_command(vm, name, help_, func)

    p = one("resize", "change the vCPUs and/or memory of a STOPPED VM", vm_resize)
    p.add_argument("--vcpus", type=positive, help="new number of virtual CPUs (default: unchanged)")
    p.add_argument("--memory-mib", "--memory", type=positive, dest="memory_mib",
                   help="new memory in MiB (default: unchanged)")
    p = one("grow-disk", "grow a disk of a STOPPED VM (qemu-img resize on its node; never shrinks)",
            vm_grow_disk)
    p.add_argument("disk_id", help="id of the disk in the VM spec (the first disk is 'root')")
    p.add_argument("--size-gib", "--size", type=positive, dest="size_gib", required=True,
                   help="new size in GiB (larger than now)")
    p = one("update", "change a VM's restart policy", vm_update)
    restart_policy_option(p, "what happens when its hypervisor ends unasked: never (stay down), on-failure "
                             "(restart after a crash or host reboot), always (also after a guest power-off); "
                             "default: unchanged")
