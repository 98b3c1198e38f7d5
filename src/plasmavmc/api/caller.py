"""The authenticated caller of the request being served, for servicers that authorize a second thing
(a VM named inside an image request, an image named in metadata) or record who acted (`created_by`).

The auth interceptor (`api/auth.py`) sets it before the servicer method runs, in the same task.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import NamedTuple

from plasmavmc.errors import PlasmaError, Unauthenticated
from plasmavmc.iam.authz import Decision
from plasmavmc.iam.gate import Gate
from plasmavmc.iam.model import Caller


class Admitted(NamedTuple):  # made once per call: a tuple is the cheapest immutable record to build
    caller: Caller
    gate: Gate


CURRENT: ContextVar[Admitted | None] = ContextVar("plasmavmc_caller", default=None)


def current() -> Admitted:
    admitted = CURRENT.get()
    if admitted is None:  # a servicer reached without the interceptor: refuse rather than act
        raise Unauthenticated("no authenticated caller")
    return admitted


def principal_id() -> str:
    return current().caller.principal_id


async def require(action: str, org_id: str, project_id: str, missing: Callable[[], PlasmaError]) -> None:
    admitted = current()
    await admitted.gate.require(admitted.caller, action, org_id, project_id, missing)


async def may(action: str, org_id: str, project_id: str) -> bool:
    admitted = current()
    return await admitted.gate.decide(admitted.caller, action, org_id, project_id) is Decision.ALLOW
