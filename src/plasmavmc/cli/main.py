"""`plasmavmc`: the command-line client, a thin layer over `PlasmaClient`.

    plasmavmc [global options] AREA COMMAND [options] [global options]

Global options (`cli/options.py`) go before or after the subcommand; their values come from the flag,
else the CLI's environment variables (`PLASMAVMC_ENDPOINT(S)`, `PLASMAVMC_CLOUD`, ...), else the profile
(`cli/profiles.py`), else the default. Several endpoints (repeat `--endpoint` or a comma list): calls
move to the next while one cannot be reached; `-v` says which answered. The command areas are listed
in `cli/areas.py`; `pki` commands work on local files only (no server).

`main(argv)` returns the exit code instead of exiting, so tests run the CLI in-process: 0 on success,
1 for an error the server or the network reported (`error: CODE: message (field: x)` on stderr, never a
traceback) or a wait that ran out (`error: TIMEOUT: ...`), 2 for bad usage (argparse, a bad profile),
130 when interrupted. The console script wraps it as `sys.exit(main())`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from plasmavmc.cli.areas import AREAS
from plasmavmc.cli.common import Declined, UsageError, check_columns
from plasmavmc.cli.options import add_globals, resolve, subparsers_of
from plasmavmc.cli.output import ColumnError, printable
from plasmavmc.cli.profiles import ProfileError
from plasmavmc.client import ClientTls, ConnectionFailed, PlasmaClient
from plasmavmc.errors import PlasmaError
from plasmavmc.version import version_line

#: commands that run until interrupted: Ctrl-C is their normal way out, so it exits 0
_FOLLOWERS = frozenset({"vm_console", "vm_watch", "vm_events"})


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, argparse.SUPPRESS, False, [], "") or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser (global options on every level)."""
    parser = argparse.ArgumentParser(prog="plasmavmc", description="PlasmaVMC command-line client",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=version_line("plasmavmc"),
                        help="print the version and exit")
    add_globals(parser, top=True)
    sub = parser.add_subparsers(dest="resource", required=True, metavar="AREA")
    for add in AREAS:
        add(sub)
    for child in subparsers_of(parser):
        child.formatter_class = HelpFormatter
        add_globals(child, top=False)
    parser.set_defaults(parser=parser)
    return parser


def _tls(args: argparse.Namespace) -> ClientTls | None:
    if args.ca_file is None and args.cert_file is None:
        return None
    return ClientTls(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)


async def _run(args: argparse.Namespace) -> int:
    if getattr(args, "offline", False):  # needs no server (completion)
        code: int = await args.func(None, args)
        return code
    async with await PlasmaClient.connect(args.endpoints, tls=_tls(args), token=args.token) as client:
        try:
            code = await args.func(client, args)
        finally:
            if args.verbose:
                print(f"answered by {client.answered_by or 'no endpoint'}", file=sys.stderr)
        return code


def _fail(message: str, code: int = 1) -> int:
    sys.stdout.flush()
    print(f"error: {printable(message)}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    # further writes (and the interpreter's flush at exit) would raise again into a closed pipe
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """The CLI's own arguments and what follows the first `--` (a remote command: `vm ssh VM -- CMD`;
    argparse's subparsers cannot take a `--` themselves)."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def _parse(argv: list[str] | None) -> argparse.Namespace | int:
    parser = build_parser()
    own, after = _split(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(own)
        if after and not hasattr(args, "remote_command"):
            parser.error(f"unrecognized arguments: -- {' '.join(after)}")
    except SystemExit as exc:  # usage error (2) or --help/--version (0): argparse has printed why
        return exc.code if isinstance(exc.code, int) else 2
    if after:
        args.remote_command = after
    try:
        resolve(args)
    except (ProfileError, ValueError) as err:
        return _fail(str(err), 2)
    try:
        check_columns(args)
    except UsageError as err:
        return _fail(str(err), 2)
    if (args.cert_file is None) != (args.key_file is None):
        try:
            parser.error("cert_file and key_file go together (--cert-file and --key-file)")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 2
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` (default: `sys.argv[1:]`) and return the exit code."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    if getattr(args, "local", None) is not None:  # `pki`: files only, no server
        code: int = args.local(args)
        return code
    try:
        return asyncio.run(_run(args))
    except ConnectionFailed as err:
        code = _fail(str(err))
        if err.reason:
            print(f"  ({err.reason})", file=sys.stderr)
        return code
    except PlasmaError as err:
        return _fail(str(err))  # "CODE: message (field: x)"
    except TimeoutError as err:
        return _fail(f"TIMEOUT: {err}")
    except BrokenPipeError:  # `plasmavmc vm console x | head`: the reader is gone, which is fine
        _silence_stdout()
        return 0
    except (UsageError, ColumnError) as err:
        return _fail(str(err), 2)
    except Declined as err:
        return _fail(str(err))
    except (OSError, ValueError) as err:  # unreadable TLS files, a malformed address, an existing file
        return _fail(str(err))
    except KeyboardInterrupt:
        return 0 if _name(args.func) in _FOLLOWERS else 130


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", ""))


if __name__ == "__main__":
    sys.exit(main())
