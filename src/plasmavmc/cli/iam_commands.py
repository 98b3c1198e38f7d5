"""`plasmavmc login`, `plasmavmc iam …` and `plasmavmc audit list`.

    plasmavmc login                              # a 12 h token for the current credential, saved
    plasmavmc login --api-key pvk_…              # exchange an API key for a token, saved
    plasmavmc iam org create acme; plasmavmc iam project create acme web
    plasmavmc iam principal create alice --home-org acme
    plasmavmc iam bind alice project-member --scope-org acme --scope-project web
    plasmavmc iam api-key create alice           # prints the key once
    plasmavmc iam whoami
    plasmavmc audit list --scope-org acme --since 3600
"""

from __future__ import annotations

import argparse
import time

from plasmavmc.cli import output as out
from plasmavmc.client import PlasmaClient
from plasmavmc.config import credentials as creds
from plasmavmc.types.iam import AuditFilter, Binding, PrincipalKind, Role

LOGIN_SECONDS = 12 * 3600


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("login", help="get a token and save it as this user's credential")
    p.add_argument("--api-key", help="log in with this API key (default: the current credential)")
    p.add_argument("--ttl", type=int, default=LOGIN_SECONDS, metavar="SECONDS", help="token lifetime")
    p.set_defaults(func=login)

    iam = sub.add_parser("iam", help="tenants, principals, role bindings, API keys").add_subparsers(
        dest="command", required=True)
    iam.add_parser("whoami", help="the caller and its role bindings").set_defaults(func=whoami)
    org = iam.add_parser("org", help="organizations").add_subparsers(dest="verb", required=True)
    p = org.add_parser("create", help="create an org")
    p.add_argument("org_id")
    p.set_defaults(func=org_create)
    org.add_parser("list", help="the orgs the caller can see").set_defaults(func=org_list)
    project = iam.add_parser("project", help="projects").add_subparsers(dest="verb", required=True)
    p = project.add_parser("create", help="create a project in an org")
    p.add_argument("org_id")
    p.add_argument("project_id")
    p.set_defaults(func=project_create)
    p = iam.add_parser("principal", help="create a user or service account")
    p.add_argument("verb", choices=("create",))
    p.add_argument("principal_id")
    p.add_argument("--home-org", default="", help="home org (default: none, a platform operator)")
    p.add_argument("--service-account", action="store_true", help="a service account, not a user")
    p.set_defaults(func=principal_create)
    for verb, help_ in (("bind", "give a principal a role"), ("unbind", "take a role away")):
        p = iam.add_parser(verb, help=help_)
        p.add_argument("principal_id")
        p.add_argument("role", choices=[r.value for r in Role])
        p.add_argument("--scope-org", default="", help="org of the binding (none: system scope)")
        p.add_argument("--scope-project", default="", help="project of the binding")
        p.set_defaults(func=bind if verb == "bind" else unbind)
    p = iam.add_parser("api-key", help="create an API key for a principal (shown once)")
    p.add_argument("verb", choices=("create",))
    p.add_argument("principal_id")
    p.add_argument("--ttl", type=int, default=0, metavar="SECONDS", help="0: no expiry")
    p.set_defaults(func=api_key_create)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="command", required=True)
    p = audit.add_parser("list", help="audit entries, oldest first")
    p.add_argument("--scope-org", default="", help="only this org (default: all the caller may read)")
    p.add_argument("--scope-project", default="", help="only this project (default: all)")
    p.add_argument("--principal", default="", help="only this principal's calls (default: everyone's)")
    p.add_argument("--since", type=float, default=0, metavar="SECONDS", help="only the last SECONDS")
    p.add_argument("--limit", type=int, default=100, help="at most this many entries")
    p.set_defaults(func=audit_list)


async def login(client: PlasmaClient, args: argparse.Namespace) -> int:
    if args.api_key:
        async with await PlasmaClient.connect(client.addr, token=args.api_key) as keyed:
            token, expires = await keyed.issue_token(args.ttl)
    else:
        token, expires = await client.issue_token(args.ttl)
    path = creds.save(token)
    out.emit(f"logged in until {out.iso_time(expires)}; token saved to {path}")
    return 0


async def whoami(client: PlasmaClient, args: argparse.Namespace) -> int:
    principal, bindings = await client.whoami()
    rows = [[b.role.value, b.org_id or "*", b.project_id or "*"] for b in bindings]
    out.emit(f"principal {principal}\n" + out.table(("ROLE", "ORG", "PROJECT"), rows))
    return 0


async def org_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    out.emit(out.dump_json(await client.create_org(args.org_id)))
    return 0


async def org_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    out.emit(out.table(("ORG",), [[o.id] for o in await client.list_orgs()]))
    return 0


async def project_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    out.emit(out.dump_json(await client.create_project(args.org_id, args.project_id)))
    return 0


async def principal_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    kind = PrincipalKind.SERVICE_ACCOUNT if args.service_account else PrincipalKind.USER
    out.emit(out.dump_json(await client.create_principal(args.principal_id, args.home_org, kind)))
    return 0


def _binding(args: argparse.Namespace) -> Binding:
    return Binding(args.principal_id, Role(args.role), args.scope_org, args.scope_project)


async def bind(client: PlasmaClient, args: argparse.Namespace) -> int:
    out.emit(out.dump_json(await client.create_binding(_binding(args))))
    return 0


async def unbind(client: PlasmaClient, args: argparse.Namespace) -> int:
    await client.delete_binding(_binding(args))
    return 0


async def api_key_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    out.emit(await client.create_api_key(args.principal_id, args.ttl))
    return 0


async def audit_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    since = time.time_ns() - int(args.since * 1e9) if args.since else 0
    entries = await client.list_audit_events(
        AuditFilter(args.scope_org, args.scope_project, args.principal, since, 0, args.limit))
    if args.output == "json":
        out.emit(out.dump_json(entries))
        return 0
    rows = [[out.iso_time(e.time_ns // 1_000_000_000), e.principal or "-", e.action, e.resource, e.result, e.source]
            for e in entries]
    out.emit(out.table(("TIME", "PRINCIPAL", "ACTION", "RESOURCE", "RESULT", "SOURCE"), rows))
    return 0
