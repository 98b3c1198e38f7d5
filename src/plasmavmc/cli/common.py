"""What every CLI command area shares: the handler type, argument types, name-or-id look-ups,
confirmation of destructive commands, and files that `-` means stdout/stdin for.

A command area is one module with `add_parsers(sub)` (registered in `cli/areas.py`) whose handlers
take the connected client and the parsed arguments and return the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import ImageNotFound, InvalidArgument, NodeNotFound
from plasmavmc.types.image import Image
from plasmavmc.types.node import Node

Handler = Callable[[PlasmaClient, argparse.Namespace], Awaitable[int]]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(ValueError):
    """The command line asks for something impossible (exit 2, like an argparse error)."""


class Declined(Exception):
    """The user answered no (or could not be asked) to a destructive command."""


def label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def scope(args: argparse.Namespace) -> tuple[str, str]:
    return str(args.org), str(args.project)


def _one(kind: str, ref: str, matches: list[Any], field: str) -> Any:
    if len(matches) > 1:
        ids = ", ".join(sorted(m.id for m in matches))
        raise InvalidArgument(field, f"{len(matches)} {kind}s are named {ref!r} ({ids}): use the id")
    return matches[0] if matches else None


async def find_image(client: PlasmaClient, org: str, ref: str) -> Image:
    """The image with id `ref`, else the one image named `ref` that the org can see."""
    try:
        return await client.get_image(org, ref)
    except (ImageNotFound, InvalidArgument):
        pass
    found = _one("image", ref, [i for i in await client.list_images(org) if i.name == ref], "image")
    if found is None:
        raise ImageNotFound(f"image {ref!r} not found (neither an id nor a name)", field="image")
    return found  # type: ignore[no-any-return]


async def find_node(client: PlasmaClient, ref: str) -> Node:
    """The node with id `ref`, else the one node named `ref`."""
    try:
        return await client.get_node(ref)
    except (NodeNotFound, InvalidArgument):
        pass
    found = _one("node", ref, [n for n in await client.list_nodes() if n.name == ref], "node")
    if found is None:
        raise NodeNotFound(f"node {ref!r} not found (neither an id nor a name)", field="node")
    return found  # type: ignore[no-any-return]


def shows(parser: argparse.ArgumentParser, record: type, columns: tuple[str, ...]) -> None:
    """Declare what a command (or a whole area) prints, so `-c NAME` is checked before anything is sent."""
    parser.set_defaults(shows=(record, columns))


def check_columns(args: argparse.Namespace) -> None:
    """Refuse `-c` names the command's output does not have (a usage error: nothing is sent)."""
    record, columns = getattr(args, "shows", (None, ()))
    if not args.columns or record is None:
        return
    if args.output in ("json", "yaml"):
        known = [f.name for f in dataclasses.fields(record)]
        bad = [n for n in args.columns if n not in known]
        what = "field"
    else:
        known = list(columns)
        bad = [n for n in args.columns if n.upper() not in columns]
        what = "column"
    if bad:
        raise UsageError(f"-c {bad[0]}: no such {what} in this output ({what}s: {', '.join(known)})")


def confirm(args: argparse.Namespace, question: str) -> None:
    """Ask on a terminal before a destructive command; `--yes`, or no terminal, goes ahead silently.

    Scripts (stdin not a TTY) are not asked: they said what they meant on the command line.
    """
    if args.yes or not sys.stdin.isatty():
        return
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise Declined("cancelled: nothing was changed")


def output_file(path: str, force: bool) -> tuple[BinaryIO, Path | None]:
    """`-` → stdout's byte stream (no path); else a path that must not exist unless `force`."""
    if path == "-":
        return sys.stdout.buffer, None
    dest = Path(path)
    if dest.exists() and not force:
        raise FileExistsError(f"{dest} exists: pass --force to overwrite it")
    return open(dest.with_name(f".{dest.name}.partial"), "wb"), dest


def input_file(path: str) -> tuple[BinaryIO, int]:
    """`-` → stdin's byte stream (size unknown: 0); else the opened file and its size."""
    if path == "-":
        return sys.stdin.buffer, 0
    dest = Path(path)
    return open(dest, "rb"), dest.stat().st_size


def vm_command(vm: Subparsers, name: str, help_: str, func: Handler) -> argparse.ArgumentParser:
    """`plasmavmc vm NAME VM ...`: a subcommand that acts on one VM (id or name)."""
    parser = vm.add_parser(name, help=help_)
    parser.add_argument("vm", help="VM id or name")
    parser.set_defaults(func=func)
    return parser
