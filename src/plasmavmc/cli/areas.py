"""The command areas of `plasmavmc`, in `--help` order. Adding an area is one module with
`add_parsers(sub)` (see `cli/common.py`) plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from plasmavmc.cli import (
    completion_commands,
    iam_commands,
    image_commands,
    network_commands,
    node_commands,
    pki_commands,
    quota_commands,
    sg_commands,
    vm_commands,
)
from plasmavmc.cli.common import Subparsers

AREAS: tuple[Callable[[Subparsers], None], ...] = (
    vm_commands.add_parsers,
    node_commands.add_parsers,
    image_commands.add_parsers,
    quota_commands.add_parsers,
    network_commands.add_parsers,
    sg_commands.add_parsers,
    iam_commands.add_parsers,
    pki_commands.add_parsers,
    completion_commands.add_parsers,
)
