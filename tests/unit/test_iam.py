"""Credentials and decisions of `plasmavmc.iam`, over a real SQLite store: tokens (algorithm, key id,
expiry, rotation), API keys (hashed, checked), the bootstrap file, and the role table."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import jwt
import pytest
from argon2 import PasswordHasher

from plasmavmc.errors import Unauthenticated
from plasmavmc.iam import apikeys
from plasmavmc.iam.authn import Authenticator
from plasmavmc.iam.authz import Decision, rbac_decide
from plasmavmc.iam.bootstrap import bootstrap
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.model import ApiKey, Binding, Caller, Role
from plasmavmc.iam.tokens import TokenKeys
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.iam import Principal


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(str(tmp_path / "state.db"))
    try:
        yield s
    finally:
        await s.close()


async def test_token_round_trip_and_refusals(store: SqliteStore) -> None:
    tokens = TokenKeys(store)
    token = await tokens.issue("alice", 60)
    claims = await tokens.verify(token)
    assert claims is not None and claims.subject == "alice"
    assert jwt.get_unverified_header(token)["alg"] == "HS256" and jwt.get_unverified_header(token)["kid"]
    expired = await tokens.issue("alice", 60, now=time.time() - 120)
    assert await tokens.verify(expired) is None
    head, payload, _ = token.split(".")
    unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": jwt.get_unverified_header(token)["kid"]})
                                        .encode()).decode().rstrip("=")
    assert await tokens.verify(f"{unsigned}.{payload}.") is None  # alg "none" is never accepted
    assert await tokens.verify(f"{head}.{payload}.AAAA") is None
    assert await tokens.verify("not-a-token") is None


async def test_rotation_keeps_old_tokens_until_the_key_is_retired(store: SqliteStore) -> None:
    tokens = TokenKeys(store)
    old_kid = (await tokens.signing_key()).kid
    old = await tokens.issue("bob", 600)
    new_kid = (await tokens.rotate()).kid
    new = await tokens.issue("bob", 600)
    assert jwt.get_unverified_header(new)["kid"] == new_kid != old_kid
    other_replica = TokenKeys(store)  # another server reads the same ring
    assert await other_replica.verify(old) is not None and await other_replica.verify(new) is not None
    assert await tokens.retire(old_kid)
    assert await TokenKeys(store).verify(old) is None
    assert await TokenKeys(store).verify(new) is not None


async def test_api_keys_are_stored_hashed_and_checked(store: SqliteStore) -> None:
    directory = Directory(store)
    await directory.create_principal(Principal("svc"))
    key, record = apikeys.new_key("svc")
    await directory.add_api_key(record)
    raw = (await store.get(keys.iam_api_key(record.id)))
    assert raw is not None and key.split("_", 2)[2].encode() not in raw.value  # only the argon2 hash is stored
    authn = Authenticator(directory, TokenKeys(store))
    assert (await authn.caller(key)).principal_id == "svc"
    with pytest.raises(Unauthenticated):
        await authn.caller(key[:-2] + ("AA" if not key.endswith("AA") else "BB"))
    with pytest.raises(Unauthenticated):
        await authn.caller(None)


async def _svc_key(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> tuple[Directory, str, ApiKey, list[str]]:
    """A principal `svc` with one API key in the store, and the list each argon2 run appends to."""
    directory = Directory(store)
    await directory.create_principal(Principal("svc"))
    key, record = apikeys.new_key("svc")
    await directory.add_api_key(record)
    runs: list[str] = []

    class Counted(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            runs.append(str(password))
            return super().verify(hash, password)

    monkeypatch.setattr(apikeys, "_HASHER", Counted())
    return directory, key, record, runs


async def test_an_api_key_is_verified_once_for_concurrent_calls(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, key, _, runs = await _svc_key(store, monkeypatch)
    verifier = apikeys.ApiKeyVerifier(directory)
    found = await asyncio.gather(*(verifier.principal_of(key) for _ in range(32)))
    assert found == ["svc"] * 32 and len(runs) == 1  # one argon2 run (off the loop) for 32 calls
    bad = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    assert await asyncio.gather(*(verifier.principal_of(bad) for _ in range(8))) == [None] * 8
    assert len(runs) == 2


async def test_a_remembered_key_is_checked_again_without_argon2_until_its_record_changes(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, key, record, runs = await _svc_key(store, monkeypatch)
    monkeypatch.setattr(apikeys, "CACHE_SECONDS", 0.0)  # every call finds its remembered answer expired
    verifier = apikeys.ApiKeyVerifier(directory)
    assert [await verifier.principal_of(key) for _ in range(5)] == ["svc"] * 5
    assert len(runs) == 1  # the record read again each time, argon2 run once
    await store.delete(keys.iam_api_key(record.id))  # revoked
    assert await verifier.principal_of(key) is None
    key_id = (apikeys.split(key) or ("", ""))[0]
    await directory.add_api_key(apikeys.record_for("svc", key_id, "another-secret"))  # same id, new hash
    assert await verifier.principal_of(key) is None  # verified against the new hash: refused
    assert len(runs) == 2


async def test_bootstrap_writes_a_private_admin_key_once(store: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "lib" / "admin.token"
    directory = Directory(store)
    assert await bootstrap(directory, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    caller = await Authenticator(directory, TokenKeys(store)).caller(path.read_text().strip())
    assert caller.principal_id == "admin" and caller.is_system_admin()
    assert not await bootstrap(directory, path)  # a second start changes nothing


async def test_bootstrap_registers_a_key_already_in_the_file(store: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    key = f"pvk_{'a' * 16}_secret-given-by-the-operator"
    path.write_text(key + "\n")
    assert await bootstrap(Directory(store), path)
    assert path.read_text().strip() == key
    assert (await Authenticator(Directory(store), TokenKeys(store)).caller(key)).principal_id == "admin"


def _caller(*bindings: Binding) -> Caller:
    return Caller("p", bindings)


@pytest.mark.parametrize(("binding", "action", "org", "project", "want"), [
    (Binding("p", Role.PROJECT_VIEWER, "a", "w"), "plasmavmc:vms:get", "a", "w", Decision.ALLOW),
    (Binding("p", Role.PROJECT_VIEWER, "a", "w"), "plasmavmc:vms:delete", "a", "w", Decision.DENY),
    (Binding("p", Role.PROJECT_MEMBER, "a", "w"), "plasmavmc:vms:delete", "a", "w", Decision.ALLOW),
    (Binding("p", Role.PROJECT_MEMBER, "a", "w"), "plasmavmc:vms:get", "a", "ops", Decision.HIDDEN),
    (Binding("p", Role.PROJECT_MEMBER, "a", "w"), "plasmavmc:vms:get", "b", "w", Decision.HIDDEN),
    (Binding("p", Role.PROJECT_MEMBER, "a", "w"), "plasmavmc:images:get", "a", "", Decision.ALLOW),
    (Binding("p", Role.PROJECT_MEMBER, "a", "w"), "plasmavmc:images:delete", "a", "", Decision.DENY),
    (Binding("p", Role.PROJECT_MEMBER, "a", "w"), "plasmavmc:nodes:drain", "", "", Decision.DENY),
    (Binding("p", Role.ORG_ADMIN, "a"), "plasmavmc:images:delete", "a", "", Decision.ALLOW),
    (Binding("p", Role.ORG_ADMIN, "a"), "plasmavmc:vms:reboot", "a", "any", Decision.ALLOW),
    (Binding("p", Role.ORG_ADMIN, "a"), "plasmavmc:quotas:set", "a", "", Decision.DENY),
    (Binding("p", Role.ORG_ADMIN, "a"), "plasmavmc:vms:get", "b", "w", Decision.HIDDEN),
    (Binding("p", Role.SYSTEM_ADMIN), "plasmavmc:nodes:drain", "", "", Decision.ALLOW),
    (Binding("p", Role.SYSTEM_ADMIN), "plasmavmc:quotas:set", "b", "w", Decision.ALLOW),
])  # fmt: skip
def test_role_table(binding: Binding, action: str, org: str, project: str, want: Decision) -> None:
    assert rbac_decide(_caller(binding), action, org, project) is want


def test_no_binding_sees_nothing_of_an_org() -> None:
    assert rbac_decide(_caller(), "plasmavmc:vms:get", "a", "w") is Decision.HIDDEN
    assert rbac_decide(_caller(), "plasmavmc:nodes:list", "", "") is Decision.DENY


def test_every_public_rpc_has_an_authorization_rule() -> None:
    from plasmavmc.api.authz_rules import RULES
    from plasmavmc.v1 import iam_pb2, image_pb2, network_pb2, node_pb2, quota_pb2, vm_pb2

    methods = {f"/{service.full_name}/{m.name}"
               for module in (vm_pb2, image_pb2, node_pb2, quota_pb2, iam_pb2, network_pb2)
               for service in module.DESCRIPTOR.services_by_name.values() for m in service.methods}
    assert methods == set(RULES)
    for name, rule in RULES.items():
        assert rule.action.startswith(("plasmavmc:vms:", "plasmavmc:images:", "plasmavmc:nodes:",
                                       "plasmavmc:quotas:", "plasmavmc:iam:", "plasmavmc:audit:",
                                       "plasmavmc:networks:", "plasmavmc:security_groups:")), name
