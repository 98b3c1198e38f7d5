"""`plasmavmc quota get|set`: limits and usage of the --org (with --org-wide) or the --project.

    plasmavmc --org acme --project web quota set --max-vms 10 --max-vcpus 40
    plasmavmc --org acme quota get --org-wide

`set` replaces every limit of the scope: a limit not given becomes unlimited.
"""

from __future__ import annotations

import argparse

from plasmavmc.cli import output as out
from plasmavmc.client import PlasmaClient
from plasmavmc.types.quota import Quota, ResourceLimits

LIMITS = ("max_vms", "max_vcpus", "max_memory_gib", "max_storage_gib", "max_images", "max_networks")
USAGE = (
    ("vms", "max_vms", ""),
    ("vcpus", "max_vcpus", ""),
    ("memory_mib", "max_memory_gib", " GiB"),
    ("storage_gib", "max_storage_gib", " GiB"),
    ("images", "max_images", ""),
    ("networks", "max_networks", ""),
)


def _limit(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quota = sub.add_parser("quota", help="quotas").add_subparsers(dest="command", required=True)
    get = quota.add_parser("get", help="show the limits and usage of the project (or the org)")
    get.set_defaults(func=quota_get)
    put = quota.add_parser("set", help="replace the limits of the project (or the org)")
    put.set_defaults(func=quota_set)
    for p in (get, put):
        p.add_argument("--org-wide", action="store_true", help="the whole --org instead of its --project")
    for name in LIMITS:
        put.add_argument("--" + name.replace("_", "-"), dest=name, type=_limit, metavar="N", help="unlimited if absent")


def _scope(args: argparse.Namespace) -> tuple[str, str]:
    return args.org, "" if args.org_wide else args.project


def _show(args: argparse.Namespace, quota: Quota) -> int:
    if args.output == "json":
        out.emit(out.dump_json(quota))
        return 0
    rows = []
    for used_name, limit_name, unit in USAGE:
        used = getattr(quota.usage, used_name)
        if used_name == "memory_mib":
            used = f"{used / 1024:g}"
        limit = getattr(quota.limits, limit_name)
        rows.append(
            [limit_name.removeprefix("max_"), f"{used}{unit}", "unlimited" if limit is None else f"{limit}{unit}"]
        )
    scope = f"{quota.org_id}/{quota.project_id}" if quota.project_id else f"{quota.org_id} (org)"
    out.emit(f"quota of {scope}\n" + out.table(("RESOURCE", "USED", "LIMIT"), rows))
    return 0


async def quota_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await client.get_quota(*_scope(args)))


async def quota_set(client: PlasmaClient, args: argparse.Namespace) -> int:
    limits = ResourceLimits(**{name: getattr(args, name) for name in LIMITS})
    return _show(args, await client.set_quota(*_scope(args), limits))
