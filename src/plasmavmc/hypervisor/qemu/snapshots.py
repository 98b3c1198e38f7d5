"""VM snapshots as qcow2 internal snapshots: disks always, memory and device state when the VM runs.

A snapshot is a tag inside every disk's qcow2 (so it costs nothing until blocks diverge, and deleting
the VM's runtime dir deletes it). `snapshots.json` in the runtime dir lists them with what they hold.

* Running VM: the QMP job `snapshot-save` {job-id, tag, vmstate: node of the first disk, devices: every
  disk node} saves disks and RAM/device state atomically (the VM pauses for the save). Restoring runs
  `snapshot-load` with the same arguments: the guest continues from the instant of the snapshot, disk
  and memory consistent — what it wrote afterwards is gone.
* Stopped VM: `qemu-img snapshot -c TAG` on each disk (disk only). Restoring a stopped VM applies the
  disks' state with `qemu-img snapshot -a` (for a memory snapshot too: the next start boots from the
  disks as they were). Restoring a disk-only snapshot into a running VM is refused: stop it first.

The jobs are followed through `JOB_STATUS_CHANGE` events (listener registered before the command, so
none is missed), then `query-jobs` gives the error if any, then `job-dismiss`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass

from plasmavmc.errors import AlreadyExists, HypervisorError, InvalidState, NotFound
from plasmavmc.hypervisor import common
from plasmavmc.hypervisor.common import write_atomic
from plasmavmc.hypervisor.qemu import disks
from plasmavmc.hypervisor.qemu.qmp import QmpSession
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths

JOB_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Snapshot:
    id: str
    created_at: int
    memory: bool  # RAM and device state saved too (taken while running)
    disks: tuple[str, ...]


def load(paths: RuntimePaths) -> list[Snapshot]:
    try:
        raw = json.loads(paths.snapshots.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise HypervisorError(f"snapshot list of VM {paths.root.name} unreadable: {exc}") from exc
    return [Snapshot(id=s["id"], created_at=int(s["created_at"]), memory=bool(s["memory"]),
                     disks=tuple(s["disks"])) for s in raw]


def _save(paths: RuntimePaths, snaps: list[Snapshot]) -> None:
    write_atomic(paths.snapshots, json.dumps([asdict(s) for s in snaps]).encode())


def find(paths: RuntimePaths, snapshot_id: str) -> Snapshot:
    for snap in load(paths):
        if snap.id == snapshot_id:
            return snap
    raise NotFound(f"VM {paths.root.name} has no snapshot {snapshot_id!r}", field="snapshot_id")


async def _run_job(paths: RuntimePaths, command: str, args: dict[str, object]) -> None:
    job_id = str(args["job-id"])
    async with QmpSession(paths.qmp) as qmp:
        with qmp.listen("JOB_STATUS_CHANGE") as listener:
            await qmp.execute(command, args)
            try:
                async with asyncio.timeout(JOB_TIMEOUT_S):
                    while True:
                        data = (await listener.get()).get("data")
                        if isinstance(data, dict) and data.get("id") == job_id and data.get("status") == "concluded":
                            break
            except TimeoutError as exc:
                raise HypervisorError(f"{command} did not finish within {JOB_TIMEOUT_S:.0f}s") from exc
        jobs = await qmp.execute("query-jobs")
        error = next((j.get("error") for j in jobs if j.get("id") == job_id), None)
        await qmp.execute("job-dismiss", {"id": job_id})
    if error:
        raise HypervisorError(f"{command} failed: {error}")


def _job_args(snapshot_id: str, disk_ids: tuple[str, ...], verb: str) -> dict[str, object]:
    nodes = [f"node-{d}" for d in disk_ids]
    return {"job-id": f"{verb}-{snapshot_id}", "tag": snapshot_id, "vmstate": nodes[0], "devices": nodes}


async def take(paths: RuntimePaths, qemu_img: str, snapshot_id: str, disk_ids: tuple[str, ...],
               running: bool) -> Snapshot:
    common.device_id(snapshot_id, "snapshot_id")
    if any(s.id == snapshot_id for s in load(paths)):
        raise AlreadyExists(f"VM {paths.root.name} already has a snapshot {snapshot_id!r}", field="snapshot_id")
    if not disk_ids:
        raise InvalidState(f"VM {paths.root.name} has no disk to hold a snapshot")
    if running:
        await _run_job(paths, "snapshot-save", _job_args(snapshot_id, disk_ids, "save"))
    else:
        for disk_id in disk_ids:
            await disks.snapshot(qemu_img, paths.disk(disk_id), "-c", snapshot_id)
    snap = Snapshot(id=snapshot_id, created_at=int(time.time()), memory=running, disks=disk_ids)
    _save(paths, [*load(paths), snap])
    return snap


async def restore(paths: RuntimePaths, qemu_img: str, snapshot_id: str, running: bool) -> None:
    snap = find(paths, snapshot_id)
    if running:
        if not snap.memory:
            raise InvalidState(f"snapshot {snapshot_id!r} holds disks only: stop the VM to restore it")
        await _run_job(paths, "snapshot-load", _job_args(snapshot_id, snap.disks, "load"))
        return
    for disk_id in snap.disks:
        await disks.snapshot(qemu_img, paths.disk(disk_id), "-a", snapshot_id)


async def delete(paths: RuntimePaths, qemu_img: str, snapshot_id: str, running: bool) -> None:
    snap = find(paths, snapshot_id)
    if running:
        await _run_job(paths, "snapshot-delete", {"job-id": f"delete-{snapshot_id}", "tag": snapshot_id,
                                                  "devices": [f"node-{d}" for d in snap.disks]})
    else:
        for disk_id in snap.disks:
            await disks.snapshot(qemu_img, paths.disk(disk_id), "-d", snapshot_id)
    _save(paths, [s for s in load(paths) if s.id != snapshot_id])
