"""What the CLI does for guests that run cloud images: `vm create`'s cloud-init options (`--ssh-key`,
`--user-data`, `--hostname`: `spec.cloud_init`) and `plasmavmc vm ssh VM [-- CMD...]`.

`vm ssh` runs the system's `ssh` (argv list, no shell) to the VM's first IPv4 address as the API reports
it. It is meant to run on the VM's node: the node reaches a tenant network through the network's bridge,
which holds the gateway address, and what the node sends into a network passes the receiving port's
security groups like any other traffic (port 22 must be allowed from the gateway — the built-in `default`
group allows ingress from the network's own CIDR). The host key is remembered per VM id
(`HostKeyAlias`), so a new VM on a reused address is not mistaken for the old one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from plasmavmc.cli.common import Subparsers, UsageError, scope
from plasmavmc.client import PlasmaClient
from plasmavmc.types.vm import CloudInitSpec, VirtualMachine

DEFAULT_USER = "debian"  # the default user of the project's Debian image (cloud-init's Debian default)


def add_cloud_init_args(p: argparse.ArgumentParser) -> None:
    """`vm create`'s cloud-init options; any of them gives the VM a cloud-init seed disk."""
    p.add_argument("--ssh-key", action="append", default=[], metavar="FILE",
                   help="an OpenSSH public key file for the image's default user (repeatable)")
    p.add_argument("--user-data", metavar="FILE",
                   help="cloud-init user-data: '#cloud-config' YAML or a '#!' script ('-': stdin; a secret; "
                        "default: none)")
    p.add_argument("--hostname", default="", help="the guest's hostname (default: the VM's name)")


def _read(path: str, what: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{what} {path}: {err}") from None


def cloud_init_spec(args: argparse.Namespace) -> CloudInitSpec | None:
    """`spec.cloud_init` from `vm create`'s options, or None when none was given."""
    if not (args.ssh_key or args.user_data or args.hostname):
        return None
    keys = tuple(line.strip() for f in args.ssh_key for line in _read(f, "--ssh-key").splitlines()
                 if line.strip() and not line.startswith("#"))
    user_data = _read(args.user_data, "--user-data") if args.user_data else ""
    return CloudInitSpec(user_data=user_data, ssh_authorized_keys=keys, hostname=args.hostname)


def address_of(vm: VirtualMachine) -> str:
    """The VM's first IPv4 address as the API reports it; UsageError when it has none."""
    found = [n.ip_address for n in vm.spec.network if n.ip_address] or list(vm.status.ip_addresses)
    if not found:
        raise UsageError(f"vm {vm.name} has no IP address: create it with --network")
    return found[0]


def ssh_argv(vm: VirtualMachine, args: argparse.Namespace) -> list[str]:
    argv = ["ssh", "-o", f"HostKeyAlias=plasmavmc-{vm.id}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"ConnectTimeout={int(args.connect_timeout)}", "-l", args.user]
    if args.identity:
        argv += ["-i", args.identity]
    for option in args.ssh_option:
        argv += ["-o", option]
    return [*argv, "--", address_of(vm), *args.remote_command]


async def vm_ssh(client: PlasmaClient, args: argparse.Namespace) -> int:
    vm = await client.get_vm(*scope(args), args.vm)
    proc = await asyncio.create_subprocess_exec(*ssh_argv(vm, args))
    return await proc.wait()


def add_ssh_parser(vm: Subparsers) -> None:
    p = vm.add_parser("ssh", help="ssh to the VM's address (run it on the VM's node; port 22 must be allowed); "
                      "`-- CMD...` runs CMD instead of a login shell")
    p.add_argument("vm", help="VM id or name")
    p.add_argument("-l", "--user", default=DEFAULT_USER, help=f"remote user (default: {DEFAULT_USER})")
    p.add_argument("-i", "--identity", metavar="FILE", help="private key file (ssh -i; default: ssh's own)")
    p.add_argument("--ssh-option", action="append", default=[], metavar="OPTION",
                   help="an ssh -o option (repeatable)")
    p.add_argument("--connect-timeout", type=int, default=10, metavar="SECONDS", help="ssh ConnectTimeout")
    p.set_defaults(func=vm_ssh, remote_command=[])  # `-- CMD ARGS...`: run that instead of a login shell
