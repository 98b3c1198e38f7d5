"""Decorators every servicer method goes through: our errors become gRPC statuses (via `status.py`),
anything unexpected is logged and answered INTERNAL without leaking a traceback to the caller.
`uncancelled` lets an operation finish although its caller went away (a CLI's `--wait` ran out)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

from plasmavmc.errors import ErrorCode, PlasmaError, Unimplemented
from plasmavmc.observe import logctx
from plasmavmc.wire.status import to_grpc_status

log = logging.getLogger(__name__)
R = TypeVar("R")
#: grpc ships no type information; servicer methods take their context as this alias
ServicerContext: TypeAlias = Any


_finishing: set[asyncio.Task[Any]] = set()  # operations whose callers left, kept referenced until done


async def uncancelled(operation: Awaitable[R]) -> R:
    """Await `operation` in its own task: a caller that gives up (RPC cancelled) does not cut it short."""
    task = asyncio.ensure_future(operation)
    _finishing.add(task)
    task.add_done_callback(_forget)
    return await asyncio.shield(task)


def _forget(task: asyncio.Task[Any]) -> None:
    _finishing.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a caller that left has been answered already (or never will be)


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    request_id = logctx.get("request_id")
    if isinstance(exc, PlasmaError):
        level = logging.ERROR if exc.code == ErrorCode.INTERNAL else logging.WARNING
        log.log(level, "%s failed: %s: %s", method, exc.code, exc.message,
                extra={"code": str(exc.code), "field": exc.field or ""})
        await context.abort_with_status(to_grpc_status(exc, request_id))
    log.exception("unexpected error in %s", method)
    internal = PlasmaError(f"internal error in {method}: {type(exc).__name__}")
    await context.abort_with_status(to_grpc_status(internal, request_id))


def unary(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc, fn.__name__)
            raise  # unreachable: abort raises

    return wrapper


def stream(fn: Callable[..., AsyncIterator[R]]) -> Callable[..., AsyncIterator[R]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[R]:
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc, fn.__name__)

    return wrapper


def unimplemented(feature: str) -> Callable[..., Awaitable[Any]]:
    """A servicer method for an RPC whose feature has not landed: UNIMPLEMENTED, naming the feature."""

    async def method(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(to_grpc_status(Unimplemented(f"not implemented yet: {feature}")))

    return method


def answer_unserved(servicer: type, service: Any, why: str) -> None:
    """Give `servicer` an UNIMPLEMENTED method, saying `why`, for every RPC of `service` (a protobuf
    ServiceDescriptor) it does not define itself: for services whose RPCs two processes split."""
    for method in service.methods:
        if method.name not in servicer.__dict__:
            setattr(servicer, method.name, unimplemented(why))
