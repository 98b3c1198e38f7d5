"""`plasmavmc quota get|set`: limits and usage of the --org (with --org-wide) or the --project.

    plasmavmc --org acme --project web quota set --max-vms 10 --max-vcpus 40
    plasmavmc --org acme quota get --org-wide

`set` changes only the limits it is given and keeps the others; `--unset NAME` makes one unlimited
again (NAME as in `quota get`: vms, vcpus, memory_gib, storage_gib, images). `set` with nothing to
change is a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses

from plasmavmc.cli import output as out
from plasmavmc.cli.common import Subparsers, UsageError, shows
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


def add_parsers(sub: Subparsers) -> None:
    area = sub.add_parser("quota", help="quotas")
    shows(area, Quota, ("ORG", "PROJECT"))
    quota = area.add_subparsers(dest="command", required=True)
    get = quota.add_parser("get", help="show the limits and usage of the project (or the org)")
    get.set_defaults(func=quota_get)
    put = quota.add_parser("set", help="change some limits of the project (or the org); the others stay")
    put.set_defaults(func=quota_set)
    for p in (get, put):
        p.add_argument("--org-wide", action="store_true", help="the whole --org instead of its --project")
    for name in LIMITS:
        put.add_argument("--" + name.replace("_", "-"), dest=name, type=_limit, metavar="N",
                         help="new limit (default: unchanged)")
    put.add_argument("--unset", action="append", default=[], metavar="NAME",
                     choices=[n.removeprefix("max_") for n in LIMITS],
                     help="make this limit unlimited (repeatable)")


def _scope(args: argparse.Namespace) -> tuple[str, str]:
    return args.org, "" if args.org_wide else args.project


def _show(args: argparse.Namespace, quota: Quota) -> int:
    if args.output != "table":
        return out.show(args, quota, ("ORG", "PROJECT"), lambda q: [q.org_id, q.project_id or "-"])
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
    given = {name: getattr(args, name) for name in LIMITS if getattr(args, name) is not None}
    cleared = {"max_" + name: None for name in args.unset}
    both = sorted(set(given) & set(cleared))
    if both:
        raise UsageError(f"--{both[0].replace('_', '-')} and --unset {both[0].removeprefix('max_')} contradict")
    if not given and not cleared:
        raise UsageError("quota set: nothing to change (give --max-... limits or --unset NAME)")
    current = (await client.get_quota(*_scope(args))).limits
    limits: ResourceLimits = dataclasses.replace(current, **given, **cleared)
    return _show(args, await client.set_quota(*_scope(args), limits))
