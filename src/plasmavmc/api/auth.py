"""The server interceptor every public RPC goes through: authenticate, authorize, audit.

For each method of `authz_rules.RULES` it wraps the servicer behaviour: the credential from the
`authorization` metadata becomes a `Caller` (UNAUTHENTICATED otherwise), the rule's action is decided on
the request's scope (NOT_FOUND as for a missing resource when the caller may not see it,
PERMISSION_DENIED when it may see but not act), the caller is put in `api/caller.py` for the servicer,
and the outcome of every mutating or refused call goes to the audit log. A method of a public service
that has no rule is refused (fail closed). Methods of other services pass untouched: the AgentService
half on this port is authenticated by node certificates (`PASSTHROUGH`, the transport's hook).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from plasmavmc.api import caller
from plasmavmc.api.authz_rules import RULES, Rule, Scope
from plasmavmc.errors import PlasmaError, Unauthenticated, Unimplemented
from plasmavmc.iam.audit import AuditEntry, AuditLog
from plasmavmc.iam.authn import bearer
from plasmavmc.iam.gate import Gate
from plasmavmc.iam.model import Caller
from plasmavmc.observe import logctx
from plasmavmc.observe.callmeta import first_values
from plasmavmc.wire.status import to_grpc_status

PUBLIC_PREFIXES = ("/plasmavmc.v1.",)
PASSTHROUGH_PREFIXES = ("/plasmavmc.agent.v1.",)  # node-certificate checks belong to the transport


def credential_of(context: Any) -> str | None:
    return bearer(first_values(context).get("authorization"))


@dataclass
class _Call:
    """One admitted (or refused) call, for the audit entry."""

    rule: Rule
    context: Any  # the call's; its peer is the audit entry's source
    caller: Caller | None = None
    scope: Scope | None = None
    # the peer, read at admission where an entry may be made once the call is over (a stream its client
    # cancelled: grpc.aio's `peer()` then reads freed memory and the server dies), else when an entry is made
    peer: str | None = None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, gate: Gate, audit: AuditLog, rules: dict[str, Rule] = RULES) -> None:
        self.gate = gate
        self.audit = audit
        self.rules = rules

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        return None if handler is None else self.wrap(handler, details.method)

    def wrap(self, handler: Any, method: str) -> Any:
        """The admitting handler of `method`, the same for every call (a `wire/chain.py` layer)."""
        if method.startswith(PASSTHROUGH_PREFIXES):
            return handler
        rule = self.rules.get(method)
        if rule is None and not method.startswith(PUBLIC_PREFIXES):
            return handler
        return self._wrap(handler, rule)

    def _record(self, call: _Call, result: str) -> None:
        if result == "OK" and not call.rule.mutating:
            return
        scope = call.scope
        self.audit.record(AuditEntry(
            time.time_ns(), call.caller.principal_id if call.caller else "", call.rule.action,
            scope.org_id if scope else "", scope.project_id if scope else "", scope.resource if scope else "",
            result, call.peer if call.peer is not None else str(call.context.peer() or "")))

    async def _admit(self, rule: Rule | None, request: Any, context: Any, *, peer_now: bool = True) -> _Call:
        """Authenticate and authorize, or abort the call (and audit the refusal). `request` may be a
        `_FirstMessage`: a client stream's first message is read only once the caller is authenticated.
        `peer_now`: the peer is read now (not for a read answered in one message, audited only if its
        handler raises: then, while the call is alive)."""
        call = _Call(rule or Rule("unknown", lambda r: Scope("", "", "", lambda: PlasmaError("")), True), context)
        if peer_now:
            call.peer = str(context.peer() or "")
        try:
            if rule is None:
                raise Unimplemented("this method has no authorization rule")
            credential = credential_of(context)
            call.caller = self.gate.remembered(credential) or await self.gate.caller(credential)
            if call.caller.via == "ticket":
                raise Unauthenticated("a console ticket is good for the console gateway only")
            if isinstance(request, _FirstMessage):
                request = await request.read()
            call.scope = rule.scope(request)
            scope = call.scope
            if rule.decide and not self.gate.settled(call.caller, rule.action, scope.org_id, scope.project_id,
                                                     scope.missing):
                await self.gate.require(call.caller, rule.action, scope.org_id, scope.project_id, scope.missing)
        except PlasmaError as err:
            self._record(call, str(err.code))
            await context.abort_with_status(to_grpc_status(err, logctx.get("request_id")))
        caller.CURRENT.set(caller.Admitted(call.caller, self.gate))  # type: ignore[arg-type]
        logctx.bind_one("principal", call.caller.principal_id if call.caller else "")  # log fields, event actor
        return call

    def _finish(self, call: _Call, context: Any) -> None:
        code = context.code()
        self._record(call, "OK" if code in (None, grpc.StatusCode.OK, 0) else getattr(code, "name", str(code)))

    def _wrap(self, handler: Any, rule: Rule | None) -> Any:
        if handler.request_streaming and not handler.response_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._stream_unary(handler.stream_unary, rule),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        if handler.response_streaming and not handler.request_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._unary_stream(handler.unary_stream, rule),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        if not handler.request_streaming:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_unary(handler.unary_unary, rule),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        return handler  # no bidirectional RPC in the public services

    def _unary_unary(self, inner: Any, rule: Rule | None) -> Callable[..., Awaitable[Any]]:
        if rule is not None and not rule.mutating:
            return self._read(inner, rule)

        async def guarded(request: Any, context: Any) -> Any:
            call = await self._admit(rule, request, context)
            try:
                return await inner(request, context)
            finally:
                self._finish(call, context)

        return guarded

    def _read(self, inner: Any, rule: Rule) -> Callable[..., Awaitable[Any]]:
        """`_unary_unary` of a rule that does not mutate: audited only when it fails (every servicer
        fails by raising: no answer status is looked at after a success)."""
        async def guarded(request: Any, context: Any) -> Any:
            call = await self._admit(rule, request, context, peer_now=False)
            try:
                return await inner(request, context)
            except BaseException:
                self._finish(call, context)
                raise

        return guarded

    def _unary_stream(self, inner: Any, rule: Rule | None) -> Callable[..., AsyncIterator[Any]]:
        async def guarded(request: Any, context: Any) -> AsyncIterator[Any]:
            call = await self._admit(rule, request, context)
            try:
                async for item in inner(request, context):
                    yield item
            finally:
                self._finish(call, context)

        return guarded

    def _stream_unary(self, inner: Any, rule: Rule | None) -> Callable[..., Awaitable[Any]]:
        async def guarded(requests: AsyncIterator[Any], context: Any) -> Any:
            head = _FirstMessage(requests)
            call = await self._admit(rule, head, context)
            first = head.message

            async def replay() -> AsyncIterator[Any]:
                if first is not None:
                    yield first
                async for item in requests:
                    yield item

            try:
                return await inner(replay(), context)
            finally:
                self._finish(call, context)

        return guarded


class _FirstMessage:
    """A client stream's first message, read on demand (after authentication) and kept for replay."""

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self.requests = requests
        self.message: Any = None

    async def read(self) -> Any:
        self.message = await anext(aiter(self.requests), None)
        return _Empty() if self.message is None else self.message


class _Empty:
    """Stands for the missing first message of an empty client stream: every field empty."""

    def __getattr__(self, name: str) -> Any:
        return _Empty() if name == "metadata" else ""

