"""`plasmavmc`: the command-line client, a thin layer over `PlasmaClient`.

    plasmavmc [--endpoint URL]... [--org ORG] [--project P] [-o table|json] [-v] [--ca PEM] vm|node|image|quota ...
    plasmavmc pki init DIR | pki node NODE_ID --dir DIR      (local: a dev cluster's certificates)

Endpoints (the first source that names any wins): `--endpoint`/`--addr` (repeatable, or a comma list),
env `PLASMAVMC_ENDPOINTS` or `PLASMAVMC_ADDR` (comma lists), `endpoints = [...]` in the client config
file (`--config`, env `PLASMAVMC_CLIENT_CONFIG`, default `~/.config/plasmavmc/client.toml` when it
exists), else `http://127.0.0.1:8080`. TLS files: `--ca`/`--cert-file`/`--key-file`, else env
`PLASMAVMC_CA_FILE`/`PLASMAVMC_CERT_FILE`/`PLASMAVMC_KEY_FILE`, else `ca_file`/`cert_file`/`key_file` in
the client config file. Calls move to the next endpoint while one cannot be reached;
`-v` prints which endpoint answered on stderr.

`main(argv)` returns the exit code instead of exiting, so tests run the CLI in-process: 0 on success,
1 for an error the server or the network reported (`error: CODE: message (field: x)` on stderr, never a
traceback), 2 for bad usage (argparse). The console script wraps it as `sys.exit(main())`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from plasmavmc.cli import commands as cmd
from plasmavmc.cli import (
    iam_commands,
    image_commands,
    network_commands,
    pki_commands,
    quota_commands,
    sg_commands,
    vm_device_commands,
)
from plasmavmc.cli import output as out
from plasmavmc.client import ClientTls, ConnectionFailed, PlasmaClient
from plasmavmc.client.endpoints import split_endpoints
from plasmavmc.errors import PlasmaError
from plasmavmc.types.vm import HypervisorType

DEFAULT_ADDR = "http://127.0.0.1:8080"
DEFAULT_CLIENT_CONFIG = "~/.config/plasmavmc/client.toml"

#: commands that run until interrupted: Ctrl-C is their normal way out, so it exits 0
_FOLLOWERS = frozenset({cmd.vm_console, cmd.vm_watch, cmd.vm_events})


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _globals(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--endpoint", "--addr", dest="endpoints", action="append", default=[], metavar="URL",
                        help="server address: http://host:port, https://host:port or host:port; repeat it "
                             "or give a comma list for several replicas (env PLASMAVMC_ENDPOINTS or "
                             f"PLASMAVMC_ADDR; default {DEFAULT_ADDR})")
    parser.add_argument("--config", default=env("PLASMAVMC_CLIENT_CONFIG"), metavar="FILE",
                        help="client config file with `endpoints = [...]` (env PLASMAVMC_CLIENT_CONFIG; "
                             f"default {DEFAULT_CLIENT_CONFIG} when it exists)")
    parser.add_argument("-v", "--verbose", action="store_true", help="say which endpoint answered (stderr)")
    parser.add_argument("--org", default=env("PLASMAVMC_ORG", "default"),
                        help="organization (env PLASMAVMC_ORG; default %(default)s)")
    parser.add_argument("--project", default=env("PLASMAVMC_PROJECT", "default"),
                        help="project (env PLASMAVMC_PROJECT; default %(default)s)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.add_argument("--ca", "--ca-file", dest="ca_file", default=env("PLASMAVMC_CA_FILE"),
                        help="CA certificate (PEM) that signed the server's certificate; implies TLS "
                             "(env PLASMAVMC_CA_FILE)")
    parser.add_argument("--cert-file", default=env("PLASMAVMC_CERT_FILE"),
                        help="client certificate (PEM) for mutual TLS (env PLASMAVMC_CERT_FILE)")
    parser.add_argument("--key-file", default=env("PLASMAVMC_KEY_FILE"),
                        help="client private key (PEM) for mutual TLS (env PLASMAVMC_KEY_FILE)")
    parser.add_argument("--token", default=env("PLASMAVMC_TOKEN"),
                        help="token or API key sent with every call (env PLASMAVMC_TOKEN; default: "
                             "$PLASMAVMC_CREDENTIALS, ~/.config/plasmavmc/credentials, "
                             "/var/lib/plasmavmc/admin.token)")


def _vm_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vm = sub.add_parser("vm", help="virtual machines").add_subparsers(dest="command", required=True)

    p = vm.add_parser("create", help="create a VM booting from an image")
    p.add_argument("name")
    p.add_argument("--image", required=True, help="image id of the root disk")
    p.add_argument("--vcpus", type=_positive, default=1)
    p.add_argument("--memory-mib", type=_positive, default=256)
    p.add_argument("--disk-gib", type=_positive, default=1)
    p.add_argument("--hypervisor", choices=[h.value for h in HypervisorType],
                   default=HypervisorType.KVM.value,
                   help="default: %(default)s")
    p.add_argument("--machine-type", choices=("microvm", "q35"), default="",
                   help="QEMU machine type (default: the backend's choice)")
    p.add_argument("--kernel-args", default="", help="appended to the image's kernel command line")
    p.add_argument("--network", action="append", default=[], metavar="NETWORK_ID",
                   help="attach a NIC on this network (repeatable; default: none)")
    p.add_argument("--label", action="append", type=_label, default=[], metavar="KEY=VALUE")
    p.add_argument("--start", action="store_true", help="start the VM once it is created")
    p.add_argument("--wait", type=_seconds, metavar="SECONDS",
                   help="wait until RUNNING (with --start) or created (without)")
    p.set_defaults(func=cmd.vm_create)

    vm.add_parser("list", help="list the project's VMs").set_defaults(func=cmd.vm_list)

    def one(name: str, help_: str, func: cmd.Handler) -> argparse.ArgumentParser:
        parser = vm.add_parser(name, help=help_)
        parser.add_argument("vm", help="VM id or name")
        parser.set_defaults(func=func)
        return parser

    one("get", "show one VM", cmd.vm_get)
    one("start", "start a VM", cmd.vm_start).add_argument(
        "--wait", type=_seconds, metavar="SECONDS", help="wait until RUNNING")
    p = one("stop", "stop a VM (ACPI power-off)", cmd.vm_stop)
    p.add_argument("--force", action="store_true", help="kill at once")
    p.add_argument("--timeout", type=int, default=0, metavar="SECONDS",
                   help="kill after this long (default: the server's 30 s)")
    p.add_argument("--wait", type=_seconds, metavar="SECONDS", help="wait until STOPPED")
    one("reboot", "reboot a running VM", cmd.vm_reboot)
    one("reset", "hard-reset a running VM", cmd.vm_reset)
    one("delete", "delete a VM", cmd.vm_delete).add_argument(
        "--force", action="store_true", help="delete even if running")
    vm_device_commands.add_parsers(vm)  # console, attach/detach disk and NIC, snapshots
    p = vm.add_parser("watch", help="follow the events of a VM (or, without VM, of the whole project)")
    p.add_argument("vm", nargs="?", default="", help="VM id or name (default: every VM of the project)")
    p.add_argument("--since", type=int, default=0, metavar="REVISION",
                   help="replay the kept events from this store revision on first")
    p.set_defaults(func=cmd.vm_watch)
    p = one("events", "print the VM's kept events (type, reason, message, actor, revision)", cmd.vm_events)
    p.add_argument("-f", "--follow", action="store_true", help="then follow new events")


def _node_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = sub.add_parser("node", help="compute nodes").add_subparsers(dest="command", required=True)
    node.add_parser("list", help="list nodes").set_defaults(func=cmd.node_list)
    for action, help_ in (("get", "show one node"), ("cordon", "stop scheduling onto a node"),
                          ("uncordon", "make a node schedulable again"), ("drain", "move a node's VMs away")):
        p = node.add_parser(action, help=help_)
        p.add_argument("node_id", metavar="ID")
        p.set_defaults(func=cmd.node_action, action=action)
        if action == "drain":
            p.add_argument("--allow-disk-loss", action="store_true",
                           help="move VMs although their disks are recreated empty from their images")
    p = node.add_parser("delete", help="remove a NOT_READY node without VMs (its agent stopped for good)")
    p.add_argument("node_id", metavar="ID")
    p.add_argument("--force", action="store_true",
                   help="remove it whatever its state; VMs still on it are flagged and can then be deleted")
    p.set_defaults(func=cmd.node_delete)


def _image_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser("image", help="images").add_subparsers(dest="command", required=True)
    image.add_parser("list", help="list the images the org can use").set_defaults(func=cmd.image_list)
    p = image.add_parser("get", help="show one image")
    p.add_argument("image_id", metavar="ID")
    p.set_defaults(func=cmd.image_get)
    image_commands.add_parsers(image)


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser; environment defaults are read now, at build time."""
    parser = argparse.ArgumentParser(prog="plasmavmc", description="PlasmaVMC command-line client")
    _globals(parser)
    sub = parser.add_subparsers(dest="resource", required=True)
    _vm_parsers(sub)
    _node_parsers(sub)
    _image_parsers(sub)
    quota_commands.add_parsers(sub)
    pki_commands.add_parsers(sub)
    iam_commands.add_parsers(sub)
    network_commands.add_parsers(sub)
    sg_commands.add_parsers(sub)
    return parser


def _tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ClientTls | None:
    if (args.cert_file is None) != (args.key_file is None):
        parser.error("--cert-file and --key-file go together")
    if args.ca_file is None and args.cert_file is None:
        return None
    return ClientTls(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)


CONFIG_TLS_KEYS = ("ca_file", "cert_file", "key_file")


def _client_config(path: str | None) -> dict[str, Any]:
    """The client config file: `endpoints = [...]` and the TLS files `ca_file`, `cert_file`, `key_file`
    (all optional; nothing when the default file does not exist)."""
    file = Path(os.path.expanduser(path or DEFAULT_CLIENT_CONFIG))
    if path is None and not file.exists():
        return {}
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"client config {file}: {err}") from None
    unknown = sorted(set(data) - {"endpoints", *CONFIG_TLS_KEYS})
    found = data.get("endpoints", [])
    files_ok = all(isinstance(data.get(k, ""), str) for k in CONFIG_TLS_KEYS)
    if unknown or not isinstance(found, list) or not all(isinstance(e, str) for e in found) or not files_ok:
        raise ValueError(f"client config {file}: expected only `endpoints = [\"http://host:port\", ...]` and "
                         "the strings ca_file, cert_file, key_file")
    return data


def _config_endpoints(path: str | None) -> list[str]:
    found: list[str] = _client_config(path).get("endpoints", [])
    return found


def config_tls(path: str | None) -> ClientTls | None:
    """TLS files from the client config file (used when no TLS flag or env variable names any)."""
    config = _client_config(path)
    tls = ClientTls(*(config.get(k) for k in CONFIG_TLS_KEYS))
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ValueError(f"client config {path or DEFAULT_CLIENT_CONFIG}: cert_file and key_file go together")
    return None if tls == ClientTls() else tls


def endpoints_of(args: argparse.Namespace) -> list[str]:
    """The endpoints to use: flags, else env, else the config file, else the default."""
    env = os.environ.get("PLASMAVMC_ENDPOINTS") or os.environ.get("PLASMAVMC_ADDR") or ""
    for source in (args.endpoints, [env], None):
        found = [e for e in (source if source is not None else _config_endpoints(args.config)) if e.strip(" ,")]
        if found:
            return split_endpoints(found)
    return [DEFAULT_ADDR]


async def _run(args: argparse.Namespace, tls: ClientTls | None) -> int:
    tls = tls or config_tls(args.config)
    args.endpoints = endpoints_of(args)
    args.addr = args.endpoints[0]
    async with await PlasmaClient.connect(args.endpoints, tls=tls, token=args.token) as client:
        try:
            code: int = await args.func(client, args)
        finally:
            if args.verbose:
                print(f"answered by {client.answered_by or 'no endpoint'}", file=sys.stderr)
        return code


def _fail(message: str) -> int:
    sys.stdout.flush()
    print(f"error: {out.printable(message)}", file=sys.stderr)
    return 1


def _silence_stdout() -> None:
    # further writes (and the interpreter's flush at exit) would raise again into a closed pipe
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` (default: `sys.argv[1:]`) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        tls = _tls(parser, args)
    except SystemExit as exc:  # usage error (2) or --help (0): argparse has printed why
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "local", None) is not None:  # `pki`: files only, no server
        code: int = args.local(args)
        return code
    try:
        return asyncio.run(_run(args, tls))
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
    except (OSError, ValueError) as err:  # unreadable TLS files, a malformed address
        return _fail(str(err))
    except KeyboardInterrupt:
        return 0 if args.func in _FOLLOWERS else 130


if __name__ == "__main__":
    sys.exit(main())
