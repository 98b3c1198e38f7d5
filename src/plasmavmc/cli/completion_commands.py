"""`plasmavmc completion bash|zsh|fish`: the shell completion script, generated from the parser by shtab.

    source <(plasmavmc completion bash)          # or save it under /etc/bash_completion.d/plasmavmc
    plasmavmc completion zsh > ~/.zfunc/_plasmavmc

shtab has no fish generator: for fish the script is built here from the same parser (subcommands and
options of every level).
"""

from __future__ import annotations

import argparse

import shtab

from plasmavmc.cli import output as out
from plasmavmc.cli.common import Subparsers
from plasmavmc.client import PlasmaClient

SHELLS = ("bash", "zsh", "fish")


def _fish(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[str]:
    prog = parser.prog.split()[0]
    cond = " ".join(f"__fish_seen_subcommand_from {p};" for p in path) or "__fish_use_subcommand;"
    lines: list[str] = []
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--"):
                text = (action.help or "").replace("'", "").split(" (")[0]
                lines.append(f"complete -c {prog} -n '{cond.rstrip(';')}' -l {flag[2:]} -d '{text}'")
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                text = helps.get(name, "").replace("'", "")
                lines.append(f"complete -c {prog} -f -n '{cond.rstrip(';')}' -a {name} -d '{text}'")
                lines.extend(_fish(child, (*path, name)))
    return lines


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for `shell`."""
    if shell == "fish":
        return "\n".join(_fish(parser))
    return str(shtab.complete(parser, shell=shell))


def add_parsers(sub: Subparsers) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    p.add_argument("shell", choices=SHELLS, help="the shell to complete for")
    p.set_defaults(func=completion, offline=True)


async def completion(client: PlasmaClient | None, args: argparse.Namespace) -> int:
    out.emit(script(args.parser, args.shell))
    return 0
