"""Firecracker through PlasmaVMC against raw Firecracker, with the PVH test guest, on this machine.

    .venv/bin/python -m bench.firecracker_bench [--runs 5] [--vms 2]

Prints one JSON document:
* `exec_to_api_ready_s`: raw `firecracker --api-sock --config-file` exec until GET / answers (the VM is
  started by then; median), and the same for the backend's jailed launch (jailer + chroot + cgroups + new
  PID namespace, the same config file), with the ratio;
* `create_start_to_guest_line_s`: through the API (CreateVm with `start` — one call — then GetConsole
  until the guest's ready line; and `plasmavmc_run_vm`: RunVm, the spec extension that creates, starts
  and streams the console in one call, until the same line) against raw Firecracker started with
  `--config-file` holding the same machine config, kernel and disk (exec until the line is on its
  stdout), with the ratios (`ratio_run_vm` for RunVm) — the raw boots interleaved with the timed
  creates, one of each in turn (raw Firecracker's start drifts with the host's speed from one minute
  to the next: 8-19 ms in one morning here), and each timed step (raw or through the API) started once
  the node's server and agent are idle (under 0.5 ms of CPU in 20 ms: `bench.common.idle`; how often
  they got there is `node_idle_before_timed_steps`), as on a node nobody else uses: the previous
  step's delete and pool refill otherwise ran into the next one;
  `raw_prespawned_api_boot`: the floor under the pooled path, raw Firecracker already answering on its
  API socket (as a pooled one is), from the pipelined PUTs and InstanceStart the agent sends until the
  line; the agent
  keeps its default warm pool (`[hypervisors.firecracker] warm_pool`, 2) and each timed create waits
  until the pool is full (every entry answering: the refill after the last take is over, as on an
  idle node); `without_pool`: the same on a second cluster with `warm_pool = 0`
  (the jailer and exec on the path); and CreateVm then StartVm (two calls: StartVm of a stopped VM
  always execs); `plasmavmc_api_steps`: where the one-call path spent its time (medians of the VM's
  boot timeline steps — accepted → placed: checks, reads and the create's one commit; → image_ready:
  agent call and the VM's files; → process_up: cgroup limits, the API boot (or jailer + exec) —
  then the client's view: the agent's answer, the last commit and the reply; GetConsole to the line);
  `logged_steps`: the same creates step by step, from the server's and the agent's logs (`observe.steps`):
  the server's (`server steps`: checks — validation and reads; claim — placement and its commit; agent
  — the agent call; recorded — the last commit; lease end), the node's (`create+start steps`: prepared —
  images pinned and local, ports; backend; status) and the pooled backend's (`pooled backend steps`:
  dir — the pool entry renamed into place; files — kernel link, disk copy, ownership; limits — the
  cgroup writes; boot — the pipelined PUTs and InstanceStart; output — until a RunVm's first output
  went on; flush — the VM's records and fsyncs, after them; recorded);
* `clone_from_snapshot_s`: CreateVm with `source_snapshot` and `start` until it answers (the clone is
  RUNNING: its Firecracker resumed the snapshot), and until the resumed guest answers a console line
  (typed through the console gateway); target ≤ 50 ms to running; each timed clone waits until the
  agent's warm pool is full. Beside it, raw Firecracker (no jail,
  no control plane) resuming the same snapshot: exec until `/snapshot/load` with `resume_vm` answers;
* `agent_memory`: the agent's resident memory growth per running Firecracker VM (started through the
  API, `--vms` of them) and each Firecracker process's own resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.common import cpu_ns, emit, idle, median, timer
from plasmavmc.agent.vms import CREATE_STARTED_STEPS
from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import open_console
from plasmavmc.config.agent import FirecrackerSettings
from plasmavmc.core.vms.lifecycle import CREATE_STARTED_STEPS as SERVER_STEPS
from plasmavmc.hypervisor.firecracker import api_boot
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi, wait_for_socket
from plasmavmc.hypervisor.firecracker.backend import POOLED_STEPS
from plasmavmc.hypervisor.firecracker.disks import sparse_copy
from plasmavmc.hypervisor.process import rss_bytes
from plasmavmc.observe.steps import parse
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import BootTimeline, DiskSource, DiskSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec
from tests import firecracker_guest as fc
from tests.conftest import GUEST_DIR, Cluster, launch, start_cluster, write_configs
from tests.e2e.helpers import ORG, PROJECT, console_until

MEMORY_MIB = 64
WARM_POOL = FirecrackerSettings().warm_pool  # the agent's default pool, kept by the bench's cluster


async def raw_config(work: Path) -> Path:
    """Raw Firecracker's `--config-file` for the same VM as the API's: kernel, own disk copy, machine."""
    image = (await fc.images())["plasmavmc-pvh"]
    assert image.kernel_path is not None
    disk = work / "disk.raw"
    sparse_copy(image.disk_path, disk)
    config = {"boot-source": {"kernel_image_path": str(image.kernel_path), "boot_args": image.kernel_cmdline},
              "drives": [{"drive_id": "root", "path_on_host": str(disk), "is_root_device": True,
                          "is_read_only": False}],
              "machine-config": {"vcpu_count": 1, "mem_size_mib": MEMORY_MIB}}
    (work / "vm.json").write_text(json.dumps(config))
    (work / "fc.log").write_bytes(b"")  # its own log file: on stdout, log lines would split the serial line
    return work / "vm.json"


async def raw_api_ready(work: Path) -> float:
    """Raw `firecracker --api-sock --config-file` exec until GET / answers (the VM is started by then)."""
    assert fc.FIRECRACKER is not None
    config = await raw_config(work)
    sock = work / "api.sock"
    sock.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        fc.FIRECRACKER, "--api-sock", str(sock), "--config-file", str(config), "--log-path", str(work / "fc.log"),
        cwd=work, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_for_socket(FirecrackerApi(sock), lambda: proc.returncode is None, 10.0)
        return time.perf_counter() - started
    finally:
        proc.kill()
        await proc.wait()


async def jailed_api_ready(runtime: Path) -> float:
    """The backend's jailed launch, exec of the jailer until Firecracker's API answers (the VM started
    from its config file by then): jail, cgroups and PID namespace on top of the raw launch."""
    backend = fc.backend(runtime, jailed=True)
    handle = await backend.create(fc.vm("bench"), await fc.images())
    try:
        await backend.start(handle)
        assert backend.launcher.last_api_ready_s is not None
        return backend.launcher.last_api_ready_s
    finally:
        await backend.delete(handle)


async def raw_to_guest_line(work: Path) -> float:
    """Raw Firecracker, configured from a file with the same VM: exec until the guest's line."""
    assert fc.FIRECRACKER is not None
    config = await raw_config(work)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        fc.FIRECRACKER, "--no-api", "--config-file", str(config), "--log-path", str(work / "fc.log"),
        cwd=work,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        await _until_ready(proc.stdout)
        return time.perf_counter() - started
    finally:
        proc.kill()
        await proc.wait()


async def raw_api_boot(work: Path) -> float:
    """The floor under a pooled create+start: raw Firecracker (no jail, no control plane) already running
    and answering on its API socket, as a warm pool's is; from the pipelined PUTs and InstanceStart
    (`api_boot.boot`, what the agent sends) until the guest's line on its stdout."""
    config = json.loads((await raw_config(work)).read_text())
    async with _api_firecracker(work, asyncio.subprocess.PIPE) as (proc, api):
        started = time.perf_counter()
        await api_boot.boot(api, config)
        assert proc.stdout is not None
        await _until_ready(proc.stdout)
        return time.perf_counter() - started


@contextlib.asynccontextmanager
async def _api_firecracker(work: Path, stdout: int) -> AsyncIterator[tuple[asyncio.subprocess.Process,
                                                                               FirecrackerApi]]:
    """Raw Firecracker (no jail) started in `work` with an API socket, once that answers; killed after."""
    assert fc.FIRECRACKER is not None
    sock = work / "api.sock"
    sock.unlink(missing_ok=True)
    proc = await asyncio.create_subprocess_exec(
        fc.FIRECRACKER, "--api-sock", str(sock), "--log-path", str(work / "fc.log"), cwd=work,
        stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=asyncio.subprocess.DEVNULL)
    try:
        api = FirecrackerApi(sock)
        await wait_for_socket(api, lambda: proc.returncode is None, 10.0)
        yield proc, api
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _until_ready(stdout: asyncio.StreamReader) -> None:
    seen = b""
    while fc.READY not in seen:
        chunk = await asyncio.wait_for(stdout.read(4096), 30)
        if not chunk:
            raise RuntimeError(f"firecracker ended before the guest line: {seen!r}")
        seen += chunk


def spec() -> VmSpec:
    return VmSpec(memory=MemorySpec(size_mib=MEMORY_MIB),
                  disks=(DiskSpec(id="root", source=DiskSource(image_id="plasmavmc-pvh"), size_gib=1),))


STEPS: list[dict[str, float]] = []  # where each one-call create+start spent its time (`steps_of`)
TIMED: list[str] = []  # ids of the timed one-call creates (their agent steps are read from its log)
CPU: list[dict[str, float]] = []  # CPU ms each process spent on one create+start → guest line


IDLE: list[bool] = []  # before each timed step of `through_api`: whether the node got idle (`settled`)


async def settled(node: list[int] | None) -> None:
    """Until the node's processes (`node`: server and agent pids) are idle (`bench.common.idle`), as they
    are before a create on a node nobody else uses; the same wait goes before each raw boot."""
    if node:
        IDLE.append(await idle(node))


async def api_to_guest_line(client: PlasmaClient, name: str, *, one_call: bool = True,
                            pool: Path | None = None, pids: dict[str, int] | None = None,
                            node: list[int] | None = None) -> float:
    """CreateVm (with `start`, or then StartVm) until the guest's line through GetConsole; with `pool`
    (the agent's Firecracker runtime dir), first until its warm pool is full; with `pids`,
    the CPU each of those processes spent meanwhile is recorded (`CPU`): a figure that load does not
    stretch as it stretches the latencies."""
    if pool is not None:
        await fc.pool_ready(pool, entries=WARM_POOL)  # full: the refill of the last take is over
    await settled(node)
    cpu_before = {k: cpu_ns(pid) for k, pid in (pids or {}).items()}
    with timer() as t:
        began = time.perf_counter()
        vm = await client.create_vm(name, ORG, PROJECT, spec(), hypervisor=HypervisorType.FIRECRACKER,
                                    start=one_call)
        returned = time.perf_counter() - began
        if not one_call:
            await client.start_vm(ORG, PROJECT, vm.id)
        await console_until(client, vm.id, fc.READY_LINE_RE, timeout=30)
    if one_call:
        STEPS.append(steps_of(vm.status.boot, returned, t[0]))
        TIMED.append(vm.id)
    if pids:
        CPU.append({k: (cpu_ns(pid) - cpu_before[k]) / 1e6 for k, pid in pids.items()})
    return t[0]


async def run_to_guest_line(client: PlasmaClient, name: str, pool: Path, node: list[int] | None = None) -> float:
    """RunVm (one call: create, start and the console's stream) until the guest's line, once the warm
    pool is full (and with `node`, the node idle). The line may come before the VM (RunVm sends the
    guest's output as it comes): the stream is read on, untimed, until the VM has come too."""
    await fc.pool_ready(pool, entries=WARM_POOL)
    await settled(node)
    seen = b""
    vm: VirtualMachine | None = None
    run = client.run_vm(name, ORG, PROJECT, spec(), hypervisor=HypervisorType.FIRECRACKER)
    started = time.perf_counter()
    line = None
    async for item in run:
        if isinstance(item, VirtualMachine):
            vm = item
        else:
            seen += item
            if line is None and re.search(fc.READY_LINE_RE, seen.decode(errors="replace")):
                line = time.perf_counter() - started
        if line is not None and vm is not None:
            break
    await run.aclose()
    assert line is not None and vm is not None and vm.state is VmState.RUNNING, (seen, vm)
    return line


def steps_of(boot: BootTimeline, returned: float, line: float) -> dict[str, float]:
    """The VM's boot timeline as returned by CreateVm (accepted → placed: checks and the create's one
    commit with its node claim; → image_ready: the agent call and the VM's files; → process_up: the
    boot, in a pooled Firecracker over its API, or jailer + exec + config file), then the client's
    view: CreateVm answered (the agent's answer, the last commit, the reply), and the guest's line
    through GetConsole."""
    steps = dict(boot.steps()[:4])
    steps["process_up_to_answer"] = returned - sum(steps.values())
    steps["answer_to_guest_line"] = line - returned
    return steps


def logged_steps(logs: dict[Path, list[str]], vm_ids: list[str]) -> dict[str, dict[str, float]]:
    """Medians by step of the step lines (`observe.steps`) of `vm_ids` in each log, by kind."""
    kinds: dict[str, list[dict[str, float]]] = {kind: [] for kinds in logs.values() for kind in kinds}
    wanted = tuple(f"vm {vm_id}: " for vm_id in vm_ids)
    for log, in_it in logs.items():
        for line in log.read_text(errors="replace").splitlines():
            if any(w in line for w in wanted):
                for kind in in_it:
                    if (took := parse(line, kind)) is not None:
                        kinds[kind].append(took)
    return {kind: {k: median([t.get(k, 0.0) for t in found]) for k in found[0]} for kind, found in kinds.items()
            if found}


async def raw_snapshot_resume(work: Path, snap: Path) -> float:
    """Raw Firecracker (no jail) resuming the same snapshot: exec, API up, `/snapshot/load` with the memory
    file mapped (`File` backend) and `resume_vm`, until it answers: the floor under a clone."""
    assert fc.FIRECRACKER is not None
    work.mkdir(parents=True, exist_ok=True)
    for name in ("vmstate", "memory"):
        (work / name).unlink(missing_ok=True)
        os.link(snap / name, work / name)
    for disk in snap.glob("disk-*.raw"):  # the device state names it relative to the working dir
        sparse_copy(disk, work / disk.name)  # holes kept: a 1 GiB disk of zeros would flood the page cache
    (work / "fc.log").write_bytes(b"")  # Firecracker logs only into a file that exists
    started = time.perf_counter()
    async with _api_firecracker(work, asyncio.subprocess.DEVNULL) as (_, api):
        await api.put("/snapshot/load", {"snapshot_path": "vmstate", "resume_vm": True,
                                         "mem_backend": {"backend_type": "File", "backend_path": "memory"}})
        return time.perf_counter() - started


async def clones(client: PlasmaClient, gateway: str, runs: int, root: Path) -> dict[str, list[float]]:
    """A source VM snapshotted once, then `runs` clones of it, each timed and deleted in turn, alternating
    with raw Firecracker resuming the same snapshot."""
    source = await client.create_vm("clone-src", ORG, PROJECT, spec(), hypervisor=HypervisorType.FIRECRACKER,
                                    start=True)
    await console_until(client, source.id, fc.READY_LINE_RE, timeout=30)
    await client.snapshot_vm(ORG, PROJECT, "clone-src", "s1")
    (snap,) = (root / "run" / "fc" / source.id).glob("jail/*/*/root/snapshots/s1")
    running, answered, raw = [], [], []
    for i in range(runs):
        raw.append(await raw_snapshot_resume(root / "raw-resume", snap))
        await fc.pool_ready(root / "run" / "fc", entries=WARM_POOL)  # the pool full, as on an idle node
        began = time.perf_counter()
        vm = await client.clone_vm(f"clone-{i}", ORG, PROJECT, "clone-src", "s1")
        running.append(time.perf_counter() - began)
        assert vm.state.value == "running", vm.state
        console = await open_console(gateway, ORG, PROJECT, vm.id)
        try:
            await console.send(b"hi\n")
            seen = b""
            async for chunk in console:
                seen += chunk
                if b"#0001 hi" in seen:
                    break
        finally:
            await console.close()
        answered.append(time.perf_counter() - began)
        await client.delete_vm(ORG, PROJECT, vm.id, force=True)
    await client.delete_vm(ORG, PROJECT, "clone-src", force=True)
    return {"running": running, "answered": answered, "raw": raw}


def cluster_without_pool(root: Path) -> Cluster:
    """A cluster like `start_cluster(firecracker=True)` whose agent keeps no warm pool."""
    server_cfg, agent_cfg, api, http, _ = write_configs(root, GUEST_DIR, "node-1", firecracker=True)
    text = agent_cfg.read_text()
    agent_cfg.write_text(text.replace("[hypervisors.firecracker]\n", "[hypervisors.firecracker]\nwarm_pool = 0\n"))
    return launch(root, server_cfg, agent_cfg, api, http, "node-1")


async def without_pool(root: Path, runs: int) -> list[float]:
    """CreateVm with `start` → guest line, the agent keeping no warm pool (jailer + exec on the path)."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = cluster_without_pool(root)
    try:
        async with await PlasmaClient.connect(cluster.api) as client:
            times = []
            for i in range(runs):
                times.append(await api_to_guest_line(client, f"nopool-{i}"))
                await client.delete_vm(ORG, PROJECT, f"nopool-{i}", force=True)
        return times
    finally:
        cluster.agent.stop()
        cluster.server.stop()
        fc.kill_leftovers(root)


async def through_api(root: Path, runs: int, vms: int, raw: Path) -> dict[str, object]:
    """The API's timed creates, each just after one raw Firecracker boot and one pre-spawned API boot
    in `raw` (the baselines interleaved with what they are compared with: the host's speed drifts from
    one minute to the next, and raw Firecracker's start with it)."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = start_cluster(root, GUEST_DIR, firecracker=True)
    pool = root / "run" / "fc"
    try:
        assert cluster.agent.popen is not None and cluster.server.popen is not None
        agent_pid = cluster.agent.popen.pid
        pids = {"server": cluster.server.popen.pid, "agent": agent_pid, "client": os.getpid()}
        async with await PlasmaClient.connect(cluster.api) as client:
            times, two_calls, raw_line, floor, ran = [], [], [], [], []
            node = [pids["server"], agent_pid]
            for i in range(runs):  # one VM at a time: the guest polls its UART and keeps a CPU busy
                await settled(node)
                raw_line.append(await raw_to_guest_line(raw))
                await settled(node)
                floor.append(await raw_api_boot(raw))
                times.append(await api_to_guest_line(client, f"bench-{i}", pool=pool, pids=pids, node=node))
                await client.delete_vm(ORG, PROJECT, f"bench-{i}", force=True)
                ran.append(await run_to_guest_line(client, f"run-{i}", pool, node))
                await client.delete_vm(ORG, PROJECT, f"run-{i}", force=True)
                two_calls.append(await api_to_guest_line(client, f"bench2-{i}", one_call=False, node=node))
                await client.delete_vm(ORG, PROJECT, f"bench2-{i}", force=True)
            cloned = await clones(client, cluster.console, runs, root)
            base = rss_bytes(agent_pid)
            started = []
            for i in range(vms):
                await api_to_guest_line(client, f"mem-{i}")
                started.append(await client.get_vm(ORG, PROJECT, f"mem-{i}"))
            grown = rss_bytes(agent_pid) - base
            fc_rss = [rss_bytes(v.status.host_pid or 0) for v in started]
            for v in started:
                await client.delete_vm(ORG, PROJECT, v.id, force=True)
        return {"api_s": times, "run_vm_s": ran, "api_two_calls_s": two_calls, "clone_s": cloned,
                "raw_line_s": raw_line, "raw_api_boot_s": floor,
                "logged_steps": logged_steps({root / "server.log": [SERVER_STEPS],
                                              root / "agent.log": [CREATE_STARTED_STEPS, POOLED_STEPS]}, TIMED),
                "agent_rss_growth_per_vm_kib": grown / max(vms, 1) / 1024,
                "agent_rss_base_mib": base / 2**20, "firecracker_rss_per_vm_kib": median([r / 1024 for r in fc_rss])}
    finally:
        cluster.agent.stop()
        cluster.server.stop()
        fc.kill_leftovers(root)


async def main(runs: int, vms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fc-bench-") as tmp:
        work = Path(tmp)
        raw_ready = [await raw_api_ready(work) for _ in range(runs)]
        jailed_ready = [await jailed_api_ready(work / "run") for _ in range(runs)]
        api = await through_api(work / "cluster", runs, vms, work)
        no_pool = await without_pool(work / "nopool", runs)
    api_s, two_calls, cloned = api.pop("api_s"), api.pop("api_two_calls_s"), api.pop("clone_s")
    ran = api.pop("run_vm_s")
    raw_line, api_boot_floor = api.pop("raw_line_s"), api.pop("raw_api_boot_s")
    steps = api.pop("logged_steps")
    assert isinstance(api_s, list) and isinstance(two_calls, list) and isinstance(cloned, dict)
    assert isinstance(ran, list)
    assert isinstance(raw_line, list) and isinstance(api_boot_floor, list)
    emit(
        "firecracker",
        runs=runs,
        exec_to_api_ready_s={"raw_firecracker": median(raw_ready), "plasmavmc_jailed_launch": median(jailed_ready),
                             "ratio": median(jailed_ready) / median(raw_ready)},
        create_start_to_guest_line_s={"raw_firecracker_config_file": median(raw_line),
                                      "raw_prespawned_api_boot": median(api_boot_floor),
                                      "plasmavmc_api": median(api_s), "ratio": median(api_s) / median(raw_line),
                                      "plasmavmc_run_vm": median(ran),
                                      "ratio_run_vm": median(ran) / median(raw_line),
                                      "all_run_vm": sorted(ran), "all_raw": sorted(raw_line),
                                      "node_idle_before_timed_steps": f"{sum(IDLE)} of {len(IDLE)}",
                                      "plasmavmc_api_steps": {k: median([s.get(k, 0.0) for s in STEPS])
                                                              for k in STEPS[0]} if STEPS else {},
                                      "logged_steps": steps,
                                      "cpu_ms_per_create": {k: median([c[k] for c in CPU]) for k in CPU[0]}
                                      if CPU else {},
                                      "without_pool": median(no_pool),
                                      "ratio_without_pool": median(no_pool) / median(raw_line),
                                      "plasmavmc_api_create_then_start": median(two_calls),
                                      "ratio_create_then_start": median(two_calls) / median(raw_line)},
        clone_from_snapshot_s={"raw_firecracker_resume": median(cloned["raw"]),
                               "api_to_running": median(cloned["running"]),
                               "ratio": median(cloned["running"]) / median(cloned["raw"]),
                               "api_to_guest_answer": median(cloned["answered"]),
                               "all_to_running": cloned["running"], "target_to_running": 0.05},
        agent_memory={"vms": vms, **api},
        note="PVH test guest (kvm_pvm host); medians; baseline measured in the same run",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--vms", type=int, default=2, help="at most the node's CPUs (1 vCPU each)")
    args = parser.parse_args()
    if (why := fc.missing()) is not None:
        raise SystemExit(f"firecracker_bench: {why}")
    os.nice(5)
    asyncio.run(main(args.runs, args.vms))
