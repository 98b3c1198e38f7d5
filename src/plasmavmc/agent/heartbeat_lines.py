"""Heartbeats over one long-lived `HeartbeatStream` per node: the agent's side of the stream.

A unary Heartbeat costs the control plane a whole gRPC call every interval (1,000 nodes every 5 s:
200 calls/s, about a third of a core for nothing but "still here"). A stream costs it one call per
agent, then one message per heartbeat. `Lines` keeps one `Line` (an open stream) per node and sends
each heartbeat as one message, reading its answer before the next is written (strictly in turn).

When a stream breaks (the server restarted, the replica stopped leading) the line is closed and
reopened with exponential backoff plus jitter (`REOPEN_FROM` doubling to `REOPEN_CAP`); until then
`send` returns None and the caller sends unary Heartbeats (over every endpoint, `reporter.py`), so a
node never goes quiet because its stream is down. An answer that does not come within `TIMEOUT` breaks
the line too, but fails the heartbeat (UNAVAILABLE) instead: a slow server gets no unary call on top,
and the agent retries after its jittered delay (`heartbeats.next_beat`). An endpoint that
answers UNIMPLEMENTED (a control plane without the stream) gets unary Heartbeats for `UNSUPPORTED_FOR`
seconds, then the stream is tried again. An error answer (bad input, another node's certificate) ends
the stream on the server: it is raised as the unary call would raise it, and the next heartbeat opens a
new stream.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from plasmavmc.errors import Unavailable
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc
from plasmavmc.wire.status import from_rpc_error

TIMEOUT = 10.0  # seconds an answer may take before the stream counts as broken
REOPEN_FROM = 0.5  # seconds before the first reopen after a break; doubles per break in a row
REOPEN_CAP = 30.0
UNSUPPORTED_FOR = 300.0  # seconds an endpoint that answered UNIMPLEMENTED gets unary heartbeats

Call = Any  # grpc.aio.StreamStreamCall (grpc ships no type information)


class Line:
    """One node's stream: open or closed, and when it may be (re)opened."""

    def __init__(self) -> None:
        self.call: Call | None = None
        self.endpoint = -1
        self.breaks = 0  # breaks in a row (reset by an answered heartbeat)
        self.opened = 0  # streams opened for this node
        self.answered = 0  # heartbeats answered over them
        self.reopen_at = 0.0
        self.lock = asyncio.Lock()

    def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
            self.call = None

    def broke(self, now: float, rng: random.Random) -> None:
        """A transport failure: closed, and not reopened before a jittered, growing delay."""
        self.close()
        delay = min(REOPEN_CAP, REOPEN_FROM * 2**self.breaks)
        self.breaks += 1
        self.reopen_at = now + delay * rng.uniform(0.5, 1.0)

    async def exchange(self, stub: agent_pb2_grpc.AgentServiceStub, endpoint: int,
                       request: agent_pb2.HeartbeatRequest) -> agent_pb2.HeartbeatResponse:
        """Write `request` on the stream (opened to `endpoint` if closed or elsewhere), read its answer."""
        if self.call is None or self.endpoint != endpoint or self.call.done():
            self.close()  # a stream that ended while idle (the server restarted) is simply opened again
            self.call = stub.HeartbeatStream(wait_for_ready=False)
            self.endpoint = endpoint
            self.opened += 1
        call = self.call
        async with asyncio.timeout(TIMEOUT):
            await call.write(request)
            response = await call.read()
        if not isinstance(response, agent_pb2.HeartbeatResponse):  # EOF: the server ended the stream
            raise Unavailable("the control plane ended the heartbeat stream")
        self.breaks = 0
        self.answered += 1
        return response


class Lines:
    """Every node's line to the control plane, over `stubs` (one per endpoint)."""

    def __init__(self, stubs: Sequence[agent_pb2_grpc.AgentServiceStub],
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self._stubs = stubs
        self._lines: dict[str, Line] = {}
        self._unsupported: dict[int, float] = {}  # endpoint -> when the stream may be tried there again
        self._clock = clock
        self._rng = rng or random.Random()

    def line(self, node_id: str) -> Line | None:
        return self._lines.get(node_id)

    async def send(self, node_id: str, endpoint: int,
                   request: agent_pb2.HeartbeatRequest) -> agent_pb2.HeartbeatResponse | None:
        """The answer to `request` over the node's stream to `endpoint`; None when there is no stream
        to use now (broken and not yet due to reopen, the endpoint lacks it, or it just broke): then
        the caller sends a unary Heartbeat. Error answers are raised as our errors."""
        now = self._clock()
        if self._unsupported.get(endpoint, 0.0) > now:
            return None
        line = self._lines.setdefault(node_id, Line())
        async with line.lock:
            if line.call is None and line.reopen_at > now:
                return None
            try:
                return await line.exchange(self._stubs[endpoint], endpoint, request)
            except grpc.aio.AioRpcError as exc:
                self._failed(line, endpoint, exc)
                return None
            except TimeoutError:  # the server is slow, not gone: no unary call on top, the heartbeat failed
                line.broke(self._clock(), self._rng)
                raise Unavailable(f"no heartbeat answer in {TIMEOUT:g}s") from None
            except (Unavailable, asyncio.InvalidStateError):  # InvalidState: it ended meanwhile
                line.broke(self._clock(), self._rng)
                return None

    def _failed(self, line: Line, endpoint: int, exc: grpc.aio.AioRpcError) -> None:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            line.close()
            self._unsupported[endpoint] = self._clock() + UNSUPPORTED_FOR
            return
        err = from_rpc_error(exc)
        if isinstance(err, Unavailable):
            line.broke(self._clock(), self._rng)
            return
        line.close()  # an error answer ended the stream; the next heartbeat opens another at once
        raise err from None

    async def close(self) -> None:
        for line in self._lines.values():
            line.close()
        self._lines.clear()
