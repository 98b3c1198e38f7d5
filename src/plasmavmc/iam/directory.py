"""The identity records in the state store: create (compare-and-swap "must not exist"), read, list.

Every id is validated (`plasmavmc.validation.name`) before it reaches a key. A binding must name an
existing org (and project); a principal must exist before it is bound or given a key.
"""

from __future__ import annotations

import time
from typing import TypeVar

from plasmavmc import validation
from plasmavmc.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from plasmavmc.iam.model import ApiKey, Binding, Org, Principal, Project, Role
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.records import decode_all
from plasmavmc.types import codec

T = TypeVar("T")


class Directory:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _create(self, key: str, record: object, what: str) -> None:
        try:
            await self.store.commit([Write(key, codec.dumps(record), 0)])
        except Conflict:
            raise AlreadyExists(f"{what} already exists") from None

    async def _get(self, cls: type[T], key: str) -> T | None:
        kv = await self.store.get(key)
        return None if kv is None else codec.loads(cls, kv.value)

    async def _list(self, cls: type[T], prefix: str) -> list[T]:
        return [found.value for found in decode_all(cls, await self.store.list_all(prefix))]

    async def create_org(self, org_id: str, display_name: str = "") -> Org:
        org = Org(validation.name(org_id, "org_id"), display_name[:128], int(time.time()))
        await self._create(keys.iam_org(org.id), org, f"org {org.id}")
        return org

    async def org(self, org_id: str) -> Org | None:
        return await self._get(Org, keys.iam_org(validation.name(org_id, "org_id")))

    async def orgs(self) -> list[Org]:
        return await self._list(Org, keys.IAM + "orgs/")

    async def create_project(self, org_id: str, project_id: str, display_name: str = "") -> Project:
        await self.require_scope(validation.name(org_id, "org_id"), "")
        project = Project(org_id, validation.name(project_id, "project_id"), display_name[:128], int(time.time()))
        await self._create(keys.iam_project(org_id, project.id), project, f"project {org_id}/{project.id}")
        return project

    async def projects(self, org_id: str) -> list[Project]:
        return await self._list(Project, keys.iam_projects_in(validation.name(org_id, "org_id")))

    async def require_scope(self, org_id: str, project_id: str) -> None:
        """Raise NOT_FOUND (naming the field) unless the org, and the project if given, exist."""
        if org_id and await self.org(org_id) is None:
            raise NotFound(f"org {org_id} not found", field="org_id")
        if project_id:
            path = keys.iam_project(org_id, validation.name(project_id, "project_id"))
            if await self.store.get(path) is None:
                raise NotFound(f"project {org_id}/{project_id} not found", field="project_id")

    async def create_principal(self, principal: Principal) -> Principal:
        validation.name(principal.id, "principal_id")
        if principal.org_id:
            await self.require_scope(principal.org_id, "")
        stamped = Principal(principal.id, principal.kind, principal.org_id, principal.display_name[:128],
                            int(time.time()))
        await self._create(keys.iam_principal(principal.id), stamped, f"principal {principal.id}")
        return stamped

    async def principal(self, principal_id: str) -> Principal | None:
        return await self._get(Principal, keys.iam_principal(validation.name(principal_id, "principal_id")))

    async def principals(self) -> list[Principal]:
        return await self._list(Principal, keys.IAM + "principals/")

    async def require_principal(self, principal_id: str) -> Principal:
        found = await self.principal(principal_id)
        if found is None:
            raise NotFound(f"principal {principal_id} not found", field="principal_id")
        return found

    async def bind(self, binding: Binding) -> Binding:
        await self.require_principal(binding.principal_id)
        if binding.project_id and not binding.org_id:
            raise InvalidArgument("org_id", "required when project_id is set")
        if binding.role in (Role.PROJECT_MEMBER, Role.PROJECT_VIEWER) and not binding.project_id:
            raise InvalidArgument("project_id", f"role {binding.role.value} is bound to a project")
        if binding.role is Role.ORG_ADMIN and (not binding.org_id or binding.project_id):
            raise InvalidArgument("org_id", "role org-admin is bound to an org (and no project)")
        if binding.role is Role.SYSTEM_ADMIN and binding.org_id:
            raise InvalidArgument("org_id", "role system-admin is bound at system scope (no org)")
        await self.require_scope(binding.org_id, binding.project_id)
        key = keys.iam_binding(binding.principal_id, binding.role.value, binding.org_id, binding.project_id)
        await self._create(key, binding, "binding")
        return binding

    async def unbind(self, binding: Binding) -> bool:
        key = keys.iam_binding(binding.principal_id, binding.role.value, binding.org_id, binding.project_id)
        return await self.store.delete(key)

    async def bindings_of(self, principal_id: str) -> list[Binding]:
        return await self._list(Binding, keys.iam_bindings_of(principal_id))

    async def all_bindings(self) -> list[Binding]:
        return await self._list(Binding, keys.IAM + "bindings/")

    async def add_api_key(self, key: ApiKey) -> None:
        await self.require_principal(key.principal_id)
        await self._create(keys.iam_api_key(key.id), key, "api key")

    async def api_key(self, key_id: str) -> ApiKey | None:
        return await self._get(ApiKey, keys.iam_api_key(key_id))
