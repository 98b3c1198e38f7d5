"""The per-call caches of IAM, over a real SQLite store: a credential's caller is remembered (and the
decisions made for it) no longer than each part may be trusted — bindings, API-key verification, token
verification — and a retired signing key forgets them at once; the cache is a bounded LRU."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from plasmavmc.errors import NotFound, PermissionDenied, Unauthenticated
from plasmavmc.iam import apikeys, authn
from plasmavmc.iam.authn import Authenticator
from plasmavmc.iam.authz import Decision, RbacAuthorizer
from plasmavmc.iam.cache import ExpiringLru
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.gate import Gate
from plasmavmc.iam.tokens import TokenKeys
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.iam import Binding, Principal, Role

VIEWER = Binding("p", Role.PROJECT_VIEWER, "o1", "p1")


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    store = await SqliteStore.open(str(tmp_path / "state.db"))
    d = Directory(store)
    await d.create_principal(Principal("p"))
    await d.create_org("o1")
    await d.create_project("o1", "p1")
    try:
        yield d
    finally:
        await store.close()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)  # polling, with a deadline


async def test_a_caller_is_remembered_with_its_decisions_until_its_bindings_expire(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(authn, "BINDINGS_SECONDS", 0.2)
    await directory.bind(VIEWER)
    tokens = TokenKeys(directory.store)
    gate, rbac = Authenticator(directory, tokens), RbacAuthorizer()
    token = await tokens.issue("p", 600)
    first = await gate.caller(token)
    assert await gate.caller(token) is first  # remembered: no second verification or lookup
    assert await rbac.decide(first, "plasmavmc:vms:get", "o1", "p1") is Decision.ALLOW
    assert first.decisions[("plasmavmc:vms:get", "o1", "p1")] is Decision.ALLOW
    await directory.unbind(VIEWER)

    async def unbound() -> bool:
        caller = await gate.caller(token)
        return caller is not first and await rbac.decide(caller, "plasmavmc:vms:get", "o1", "p1") is Decision.HIDDEN

    await until(unbound)  # the revoked binding stops counting once its time is up, decisions with it


async def test_retiring_a_signing_key_forgets_remembered_callers_at_once(directory: Directory) -> None:
    tokens = TokenKeys(directory.store)
    gate = Authenticator(directory, tokens)
    token = await tokens.issue("p", 600)
    assert (await gate.caller(token)).principal_id == "p"
    assert await tokens.retire((await tokens.signing_key()).kid)
    with pytest.raises(Unauthenticated):
        await gate.caller(token)


async def test_a_remembered_api_key_caller_lasts_no_longer_than_its_verification(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apikeys, "CACHE_SECONDS", 0.2)
    monkeypatch.setattr(authn, "BINDINGS_SECONDS", 600.0)  # the key's time is the shorter one
    key, record = apikeys.new_key("p")
    await directory.add_api_key(record)
    gate = Authenticator(directory, TokenKeys(directory.store))
    assert (await gate.caller(key)).via == "api_key"
    await directory.store.delete(keys.iam_api_key(record.id))  # revoked

    async def refused() -> bool:
        try:
            await gate.caller(key)
        except Unauthenticated:
            return True
        return False

    await until(refused)


def test_expiring_lru_evicts_the_least_recently_used_and_honours_expiry() -> None:
    cache: ExpiringLru[str, int] = ExpiringLru(2)
    cache.put("a", 1, until=100.0)
    cache.put("b", 2, until=100.0)
    assert cache.get("a", now=1.0) == 1  # "b" is now the least recently used
    cache.put("c", 3, until=100.0)
    assert cache.get("b", now=1.0) is None and cache.get("a", now=1.0) == 1 and len(cache) == 2
    assert cache.get("c", now=100.0) is None  # expired at its time, and dropped
    assert len(cache) == 1


async def test_a_kept_decision_settles_a_call_without_asking_again(directory: Directory) -> None:
    await directory.bind(VIEWER)
    tokens = TokenKeys(directory.store)
    gate = Gate(Authenticator(directory, tokens), RbacAuthorizer())
    token = await tokens.issue("p", 600)
    assert gate.remembered(token) is None and gate.remembered(None) is None
    caller = await gate.caller(token)
    assert gate.remembered(token) is caller

    def missing() -> NotFound:
        return NotFound("vm not found")

    assert not gate.settled(caller, "plasmavmc:vms:get", "o1", "p1", missing)  # nothing kept yet
    await gate.require(caller, "plasmavmc:vms:get", "o1", "p1", missing)
    assert gate.settled(caller, "plasmavmc:vms:get", "o1", "p1", missing)
    with pytest.raises(NotFound):  # another org is hidden: kept, and refused as before
        await gate.require(caller, "plasmavmc:vms:get", "o2", "p9", missing)
    with pytest.raises(NotFound):
        gate.settled(caller, "plasmavmc:vms:get", "o2", "p9", missing)
    with pytest.raises(PermissionDenied):  # a viewer sees the project but may not delete in it
        await gate.require(caller, "plasmavmc:vms:delete", "o1", "p1", missing)
    with pytest.raises(PermissionDenied):
        gate.settled(caller, "plasmavmc:vms:delete", "o1", "p1", missing)


async def test_calls_in_flight_with_one_credential_share_one_authentication(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await directory.bind(VIEWER)
    tokens = TokenKeys(directory.store)
    gate = Authenticator(directory, tokens)
    token = await tokens.issue("p", 600)
    reads: list[str] = []
    real = directory.bindings_of

    async def counted(principal_id: str) -> list[Binding]:
        reads.append(principal_id)
        return await real(principal_id)

    monkeypatch.setattr(directory, "bindings_of", counted)
    callers = await asyncio.gather(*(gate.caller(token) for _ in range(64)))
    assert reads == ["p"]  # one store read for the 64 calls that found no remembered caller
    assert all(found is callers[0] for found in callers)
    assert len(gate._pending) == 0  # nothing left in flight
    refused = await asyncio.gather(*(gate.caller(token + "x") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(err, Unauthenticated) for err in refused)  # each waiter gets the refusal


async def test_a_waiter_that_leaves_does_not_cancel_the_others_authentication(directory: Directory) -> None:
    await directory.bind(VIEWER)
    tokens = TokenKeys(directory.store)
    gate = Authenticator(directory, tokens)
    token = await tokens.issue("p", 600)
    leaving, staying = asyncio.create_task(gate.caller(token)), asyncio.create_task(gate.caller(token))
    await asyncio.sleep(0)  # both are waiting on the one authentication now
    leaving.cancel()
    assert (await staying).principal_id == "p"
    assert leaving.cancelled()
    assert gate.remembered(token) is not None
