"""What authorization costs: GetVm and CreateVm throughput with and without it, in the same run.

    .venv/bin/python -m bench.authz_bench [--calls 2000] [--creates 1000] [--concurrency 32] [--rounds 3]

One server process (`--serve`, below) builds ONE control plane (SQLite store, seeded guest image) and
serves it on two gRPC ports: `guarded` with the real auth interceptor (credential → caller, role
decision, audit entry for each mutation), `open` with the same interceptor machinery but admitting
every call as the admin without authenticating, deciding or auditing — the cost of those three is
the difference. 100 SIMULATED agents run in another process. The client calls as a project member
holding a signed token (not the admin: the ordinary role path). Rounds alternate which side goes first; each
figure is the median over rounds. Prints one JSON document; `overhead` = 1 - guarded/open throughput.
Also `authz_us_per_call_in_process`: what authenticating, deciding and recording cost per call alone,
timed in-process (a figure that the machine's load disturbs far less than the throughput ratio).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import emit, median
from plasmavmc.api import caller
from plasmavmc.api.auth import AuthInterceptor, _Call
from plasmavmc.api.authz_rules import Rule
from plasmavmc.client import PlasmaClient
from plasmavmc.config.server import parse_server_args
from plasmavmc.errors import NotFound
from plasmavmc.iam.model import Binding, Caller, Role
from plasmavmc.server.app import build_core, grpc_server
from plasmavmc.server.iam_wiring import build_iam
from plasmavmc.shutdown import until_terminated
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, HypervisorType, MemorySpec, VmSpec
from tests.ports import free_port

GUEST_DIR = Path(os.environ.get("PLASMAVMC_GUEST_DIR", "/var/cache/plasmavmc/guest"))
GUEST_IMAGE = "plasmavmc-tiny"

SIM = HypervisorType.SIMULATED
SPEC = VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=64),
              disks=(DiskSpec(id="root", source=DiskSource(image_id=GUEST_IMAGE), size_gib=1),))
ADMIN = Caller("admin", (Binding("admin", Role.SYSTEM_ADMIN),))


class AdmitAll(AuthInterceptor):
    """The baseline: the same wrapping, no authentication, no decision, no audit."""

    async def _admit(self, rule: Rule | None, request: Any, context: Any) -> _Call:
        caller.CURRENT.set(caller.Admitted(ADMIN, self.gate))
        assert rule is not None
        return _Call(rule, "")

    def _record(self, call: _Call, result: str) -> None:
        return None


async def serve(config: Path, open_port: int) -> None:
    settings = parse_server_args(["-c", str(config)], os.environ)
    core = await build_core(settings)
    iam = await build_iam(core.store, settings.iam)
    open_settings = dataclasses.replace(settings, server=dataclasses.replace(settings.server,
                                                                            addr=f"127.0.0.1:{open_port}"))
    servers = [grpc_server(core, settings, iam)[0],
               grpc_server(core, open_settings, iam, AdmitAll(iam.gate, iam.audit))[0]]
    audit = asyncio.create_task(iam.audit.run())
    for server in servers:
        await server.start()
    print("SERVING", flush=True)
    try:
        await until_terminated()
    finally:
        audit.cancel()
        for server in servers:
            await server.stop(grace=1)
        await core.agents.close()
        await core.store.close()


async def _rate(count: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> float:
    todo = list(range(count))

    async def worker() -> None:
        while todo:
            await call(todo.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _member_token(admin: PlasmaClient, api: str) -> str:
    await admin.create_org("bench")
    await admin.create_project("bench", "p")
    await admin.create_principal("runner", "bench")
    await admin.create_binding(Binding("runner", Role.PROJECT_MEMBER, "bench", "p"))
    async with await PlasmaClient.connect(api, token=await admin.create_api_key("runner")) as keyed:
        return (await keyed.issue_token(3600))[0]


async def _line(proc: asyncio.subprocess.Process, word: str) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if not line.startswith(word.encode()):
        raise RuntimeError(f"expected {word}, got {line!r}")


async def measure(args: argparse.Namespace, guarded: str, open_: str) -> dict[str, Any]:
    async with await PlasmaClient.connect(guarded) as admin:
        token = await _member_token(admin, guarded)
    rates: dict[str, dict[str, list[float]]] = {"guarded": {"get": [], "create": []},
                                                "open": {"get": [], "create": []}}
    async with await PlasmaClient.connect(guarded, token=token) as g, \
            await PlasmaClient.connect(open_, token="") as o:
        target = (await g.create_vm("probe", "bench", "p", SPEC, SIM)).id
        for rnd in range(args.rounds):
            order = (("guarded", g), ("open", o)) if rnd % 2 == 0 else (("open", o), ("guarded", g))
            for name, client in order:
                def get(i: int, c: PlasmaClient = client) -> Awaitable[Any]:
                    return c.get_vm("bench", "p", target)

                def create(i: int, c: PlasmaClient = client, tag: str = f"{name}-{rnd}") -> Awaitable[Any]:
                    return c.create_vm(f"{tag}-{i}", "bench", "p", SPEC, SIM)

                rates[name]["get"].append(await _rate(args.calls, args.concurrency, get))
                rates[name]["create"].append(await _rate(args.creates, args.concurrency, create))
    result: dict[str, Any] = {}
    for op in ("get", "create"):
        with_authz, without = median(rates["guarded"][op]), median(rates["open"][op])
        result[f"{op}vm_per_s_with_authz"] = round(with_authz, 1)
        result[f"{op}vm_per_s_without_authz"] = round(without, 1)
        result[f"{op}vm_overhead"] = round(1 - with_authz / without, 3)
    return result


async def decision_cost(root: Path, n: int = 20_000) -> float:
    """Microseconds one admitted call spends in authentication, the role decision and the audit record,
    in-process on a real store (the token and bindings cached as on the hot path)."""
    from plasmavmc.iam.audit import AuditEntry, AuditLog
    from plasmavmc.iam.authn import Authenticator
    from plasmavmc.iam.authz import RbacAuthorizer
    from plasmavmc.iam.directory import Directory
    from plasmavmc.iam.gate import Gate
    from plasmavmc.iam.tokens import TokenKeys
    from plasmavmc.store.sqlite import SqliteStore
    from plasmavmc.types.iam import Principal

    store = await SqliteStore.open(str(root / "micro.db"))
    try:
        directory, tokens = Directory(store), TokenKeys(store)
        await directory.create_org("o")
        await directory.create_project("o", "p")
        await directory.create_principal(Principal("u", org_id="o"))
        await directory.bind(Binding("u", Role.PROJECT_MEMBER, "o", "p"))
        gate, audit = Gate(Authenticator(directory, tokens), RbacAuthorizer()), AuditLog(store)
        token = await tokens.issue("u", 3600)
        started = time.perf_counter()
        for _ in range(n):
            who = await gate.caller(token)
            await gate.require(who, "plasmavmc:vms:create", "o", "p", lambda: NotFound("hidden"))
            audit.record(AuditEntry(time.time_ns(), who.principal_id, "plasmavmc:vms:create", "o", "p", "vm/o/p/x",
                                    "OK", "ipv4:127.0.0.1:1"))
        return (time.perf_counter() - started) / n * 1e6
    finally:
        await store.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        api, open_port = free_port(), free_port()
        cfg = root / "server.toml"
        cfg.write_text(
            f'[server]\naddr = "127.0.0.1:{api}"\nmetrics_addr = "127.0.0.1:{free_port()}"\n'
            f'console_addr = "127.0.0.1:{free_port()}"\n'
            f'[store]\nbackend = "sqlite"\npath = "{root}/state.db"\n'
            f'[image_store]\nbackend = "local"\npath = "{root}/images"\nseed_dirs = ["{GUEST_DIR}"]\n'
            f'[iam]\nbootstrap_credential_path = "{root}/admin.token"\n'
            f'[scheduler]\ndefault_hypervisor = "simulated"\n[logging]\nlevel = "warning"\nformat = "text"\n')
        os.environ["PLASMAVMC_CREDENTIALS"] = str(root / "admin.token")  # the server writes it; all read it
        os.environ.pop("PLASMAVMC_BOOTSTRAP_CREDENTIAL", None)
        env = dict(os.environ)
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.authz_bench", "--serve", str(cfg), "--open-port", str(open_port),
            stdout=asyncio.subprocess.PIPE, env=env)
        agents = None
        try:
            await _line(server, "SERVING")
            agents = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "plasmavmc.agent.simulated", "--control-plane", f"127.0.0.1:{api}",
                "--addr", f"127.0.0.1:{free_port()}", "--nodes", "100", "--cache-dir", str(root / "cache"),
                "--heartbeat-interval", "5", stdout=asyncio.subprocess.PIPE, env=env)
            await _line(agents, "READY")
            figures = await measure(args, f"127.0.0.1:{api}", f"127.0.0.1:{open_port}")
            figures["authz_us_per_call_in_process"] = round(await decision_cost(root), 1)
        finally:
            for proc in (agents, server):
                if proc is not None and proc.returncode is None:
                    proc.terminate()
                    await proc.wait()
    return {"calls": args.calls, "creates": args.creates, "concurrency": args.concurrency,
            "rounds": args.rounds, **figures}


def main() -> None:
    p = argparse.ArgumentParser(prog="authz_bench")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--creates", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--open-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.open_port))
        return
    emit("authz", **asyncio.run(run(args)))


if __name__ == "__main__":
    main()
