"""RunVm calls opened ahead of their create: at most one per agent channel, so that a create+start reaches
the node as a message on an open stream instead of as a new call.

A new call costs its set-up on both ends before the agent sees the request (here, after the node had
been idle for 30 ms: 0.9 ms from the call to the agent's handler, against 0.5 ms for a message on a
call already open). The agent's RunVm takes its one request from the request stream (agent.proto), so
the control plane opens the call (`arm_soon`) some time after a RunVm of that node went out, and the
next one takes it (`take`) and writes its request. An armed call nobody took within `ARMED_FOR` is let
go (cancelled); one that ended meanwhile (its agent restarted) is not taken, and the caller writes on a
new call then, or when its write on the taken one fails. Closing the channel ends it too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from plasmavmc.v1 import agent_pb2_grpc

ARMED_FOR = 30.0  # seconds an armed call waits for a create before it is let go
ARM_AFTER = 0.05  # seconds after a RunVm went out that the next call is opened (off that RunVm's way)


class ArmedRunVm:
    """The armed RunVm call of one agent channel (`stub`), if any."""

    def __init__(self, stub: agent_pb2_grpc.AgentServiceStub) -> None:
        self._stub = stub
        self._call: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self.taken = 0  # creates that went out on an armed call (tests and benches read it)

    @property
    def armed(self) -> bool:
        """A call is open and waiting for a create."""
        return self._call is not None and not self._call.done()

    def take(self) -> Any | None:
        """The armed call, now the caller's, for a create to write its request on; None when there is
        none still open (the caller opens a new call)."""
        call, self._call = self._call, None
        self._stop_timer()
        if call is None or call.done():
            return None
        self.taken += 1
        return call

    def arm_soon(self) -> None:
        """Open the next call `ARM_AFTER` from now, unless one is armed already."""
        if self._timer is None and self._call is None:
            self._timer = asyncio.get_running_loop().call_later(ARM_AFTER, self._arm)

    def _arm(self) -> None:
        self._timer = None
        if self._call is None or self._call.done():
            self._call = self._stub.RunVm()
            self._timer = asyncio.get_running_loop().call_later(ARMED_FOR, self.close)

    def close(self) -> None:
        """Let the armed call go (cancelled: the agent's handler ends) and open no other."""
        self._stop_timer()
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
