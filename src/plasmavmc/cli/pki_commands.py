"""`plasmavmc pki init DIR` and `plasmavmc pki node NODE_ID`: a dev cluster's CA and certificates.

Local commands: they write files (`pki/certs.py`) and talk to no server. Each prints what it wrote and
the config keys that use it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from plasmavmc.config.agent import NODE_ID_RE
from plasmavmc.pki import certs

INIT_NEXT = """\
server.toml:   [server.tls]  cert_file = "{d}/api.pem"  key_file = "{d}/api.key"
                             ca_file = "{d}/ca.pem"
               [agents.tls]  cert_file = "{d}/control-plane.pem"  key_file = "{d}/control-plane.key"
                             ca_file = "{d}/ca.pem"
CLI:           plasmavmc --addr https://127.0.0.1:8080 --ca {d}/ca.pem
                         --cert-file {d}/client.pem --key-file {d}/client.key …
each node:     plasmavmc pki node NODE_ID --dir {d}"""

NODE_NEXT = """\
agent.toml:    [agent.tls]  cert_file = "{cert}"  key_file = "{key}"
                            ca_file = "{d}/ca.pem"
               (and control_plane = "https://…" naming a host in the API certificate)"""


def _report(issued: dict[str, certs.Issued] | certs.Issued) -> None:
    for item in issued.values() if isinstance(issued, dict) else [issued]:
        print(f"wrote {item.cert} and {item.key} (key mode 0600)")


def pki_init(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve()
    try:
        issued = certs.init(directory, args.api_host or certs.DEFAULT_API_HOSTS)
    except (certs.PkiError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _report(issued)
    print(INIT_NEXT.format(d=directory))
    return 0


def pki_node(args: argparse.Namespace) -> int:
    if not re.fullmatch(NODE_ID_RE, args.node_id):
        print(f"error: INVALID_ARGUMENT: node id {args.node_id!r} must match {NODE_ID_RE} (field: node_id)",
              file=sys.stderr)
        return 1
    directory = Path(args.dir).resolve()
    try:
        issued = certs.issue_node(directory, args.node_id)
    except (certs.PkiError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _report(issued)
    print(NODE_NEXT.format(d=directory, cert=issued.cert, key=issued.key))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pki = sub.add_parser("pki", help="make a dev cluster's CA and certificates (local files, no server)")
    cmds = pki.add_subparsers(dest="command", required=True)
    p = cmds.add_parser("init", help="a new CA with the control-plane, API-server and client certificates")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--api-host", action="append", metavar="HOST",
                   help="a DNS name or IP clients dial the API by (repeatable; default localhost, 127.0.0.1, ::1)")
    p.set_defaults(local=pki_init)
    p = cmds.add_parser("node", help="a node's certificate, signed by the CA in --dir")
    p.add_argument("node_id", metavar="NODE_ID")
    p.add_argument("--dir", default=".", help="the directory `pki init` wrote (default: the current one)")
    p.set_defaults(local=pki_node)
