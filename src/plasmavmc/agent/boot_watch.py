"""The node's half of a VM's boot timeline: hypervisor process up, first guest output, guest ready.

Before a start, the VM's serial console is opened and its kept history (earlier boots: the console log
is appended to) is read to its end; the same stream then follows what the new boot prints. The first
byte is `first_output_at`; the readiness line (`PLASMAVMC-READY` of our images, cloud-init's
"finished" line on cloud images) is `ready_at`, and the agent reports it at once (`on_ready`) rather
than with the next heartbeat. The times join every status the agent gives (`merged`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable

from plasmavmc.errors import PlasmaError
from plasmavmc.hypervisor.base import ConsoleStream, HypervisorBackend, VmHandle
from plasmavmc.types.vm import BootTimeline, ConsoleType, VmStatus

log = logging.getLogger(__name__)
READY = re.compile(rb"PLASMAVMC-READY|Cloud-init v\. \S+ finished")
KEEP = 256  # bytes kept between chunks, so a readiness line split across two reads still matches


@dataclasses.dataclass
class _Times:
    process_up_at: float = 0.0
    first_output_at: float = 0.0
    ready_at: float = 0.0


class BootWatch:
    def __init__(self, on_ready: Callable[[str], Awaitable[None]]) -> None:
        self._on_ready = on_ready
        self._times: dict[str, _Times] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def before_start(self, backend: HypervisorBackend, handle: VmHandle) -> ConsoleStream | None:
        """The console, read past what earlier boots printed (None: no console yet, nothing to skip)."""
        try:
            stream = await backend.console(handle, ConsoleType.SERIAL)
            while await stream.read():  # the process is not running: the history ends with b""
                pass
        except PlasmaError:
            return None
        return stream

    def started(self, backend: HypervisorBackend, handle: VmHandle, stream: ConsoleStream | None) -> None:
        self.forget(handle.vm_id)
        self._times[handle.vm_id] = _Times(process_up_at=time.time())
        task = asyncio.create_task(self._follow(backend, handle, stream), name=f"boot-watch-{handle.vm_id}")
        self._tasks[handle.vm_id] = task

    async def _follow(self, backend: HypervisorBackend, handle: VmHandle, stream: ConsoleStream | None) -> None:
        times = self._times[handle.vm_id]
        try:
            stream = stream or await backend.console(handle, ConsoleType.SERIAL)
            tail = b""
            while chunk := await stream.read():
                times.first_output_at = times.first_output_at or time.time()
                tail = tail[-KEEP:] + chunk
                if READY.search(tail):
                    times.ready_at = time.time()
                    await self._on_ready(handle.vm_id)
                    return
        except PlasmaError as err:
            log.warning("boot watch of VM %s ended: %s", handle.vm_id, err)
        finally:
            if stream is not None:
                await stream.close()

    def merged(self, vm_id: str, status: VmStatus) -> VmStatus:
        times = self._times.get(vm_id)
        if times is None:
            return status
        boot = BootTimeline(process_up_at=times.process_up_at, first_output_at=times.first_output_at,
                            ready_at=times.ready_at)
        return dataclasses.replace(status, boot=boot)

    def forget(self, vm_id: str) -> None:
        self._times.pop(vm_id, None)
        task = self._tasks.pop(vm_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        for vm_id in list(self._tasks):
            task = self._tasks.pop(vm_id)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
