"""Which action each RPC of the public services needs, on which scope: ONE table, read by `auth.py`.

Action names extend spec §10.1 to every RPC (`plasmavmc:<resource>:<verb>`). A scope function reads the
org/project a request addresses (validating the names: bad input is INVALID_ARGUMENT naming the field)
and says what to answer when the caller may not see it: the resource's own not-found error, worded like
a truly missing one. A rule with `decide=False` admits any authenticated caller (the servicer narrows
the answer to what the caller may see). References *inside* a request (a VM in an image source, `kernel_id` in
image metadata) are authorized by the servicer through `api/caller.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from plasmavmc import validation
from plasmavmc.errors import NodeNotFound, NotFound, PlasmaError, image_not_found, vm_not_found


class Scope(NamedTuple):  # made once per call: a tuple is the cheapest immutable record to build
    org_id: str
    project_id: str
    resource: str
    missing: Callable[[], PlasmaError]


@dataclass(frozen=True)
class Rule:
    action: str
    scope: Callable[[Any], Scope]
    mutating: bool
    decide: bool = True  # False: any authenticated caller (the servicer narrows); `action` names it in the audit


def _org(org_id: str, field: str = "org_id") -> str:
    return validation.name(org_id, field)


def _project_missing(org_id: str, project_id: str) -> Callable[[], PlasmaError]:
    if project_id:
        return lambda: NotFound(f"project {org_id}/{project_id} not found", field="project_id")
    return lambda: NotFound(f"org {org_id} not found", field="org_id")


def vm_scope(ref: Any) -> Scope:
    org, project = _org(ref.org_id, "vm.org_id"), validation.name(ref.project_id, "vm.project_id")
    return Scope(org, project, f"vm/{org}/{project}/{ref.vm_id}", lambda: vm_not_found(org, project, ref.vm_id))


def project_scope(org_id: str, project_id: str, what: str) -> Scope:
    org, project = _org(org_id), validation.name(project_id, "project_id")
    return Scope(org, project, f"{what}/{org}/{project}", _project_missing(org, project))


def org_scope(org_id: str, what: str, project_id: str = "") -> Scope:
    org = _org(org_id)
    project = validation.name(project_id, "project_id") if project_id else ""
    resource = "/".join(p for p in (what, org, project) if p)
    return Scope(org, project, resource, _project_missing(org, project))


def image_scope(request: Any) -> Scope:
    org = _org(request.org_id)
    return Scope(org, "", f"image/{org}/{request.image_id}", lambda: image_not_found(org, request.image_id))


def node_scope(request: Any) -> Scope:
    node = request.node_id
    return Scope("", "", f"node/{node}", lambda: NodeNotFound(f"node {node!r} does not exist", field="node_id"))


def platform(what: str) -> Callable[[Any], Scope]:
    return lambda request: Scope("", "", what, lambda: NotFound(f"{what} not found"))


def _rule(action: str, scope: Callable[[Any], Scope], mutating: bool = True) -> Rule:
    return Rule(action, scope, mutating)


def _vm(verb: str, mutating: bool = True) -> Rule:
    return Rule(f"plasmavmc:vms:{verb}", lambda r: vm_scope(r.vm), mutating)


def _image(verb: str, mutating: bool = True) -> Rule:
    return Rule(f"plasmavmc:images:{verb}", image_scope, mutating)


def _node(verb: str, mutating: bool = True) -> Rule:
    return Rule(f"plasmavmc:nodes:{verb}", node_scope, mutating)


def _project(resource: str, verb: str, what: str, mutating: bool = True) -> Rule:
    """A project-scoped resource (networks, security groups): the request names org_id and project_id."""
    return Rule(f"plasmavmc:{resource}:{verb}", lambda r: project_scope(r.org_id, r.project_id, what), mutating)


def _iam_org(verb: str, mutating: bool = True, org: Callable[[Any], str] = lambda r: r.org_id) -> Rule:
    return Rule(f"plasmavmc:iam:{verb}", lambda r: org_scope(org(r), "iam") if org(r) else platform("iam")(r),
                mutating)


def _authenticated(verb: str, mutating: bool) -> Rule:
    return Rule(f"plasmavmc:iam:{verb}", platform("iam"), mutating, decide=False)


VM = "/plasmavmc.v1.VmService/"
IMAGE = "/plasmavmc.v1.ImageService/"
NODE = "/plasmavmc.v1.NodeService/"
QUOTA = "/plasmavmc.v1.QuotaService/"
IAM = "/plasmavmc.v1.IamService/"
NETWORK = "/plasmavmc.v1.NetworkService/"
SG = "/plasmavmc.v1.SecurityGroupService/"

RULES: dict[str, Rule] = {
    VM + "CreateVm": _rule("plasmavmc:vms:create", lambda r: project_scope(r.org_id, r.project_id, "vm")),
    # RunVm: a create (this rule) that streams the new VM's console (its own check, `vm_service.RunVm`)
    VM + "RunVm": _rule("plasmavmc:vms:create", lambda r: project_scope(r.org_id, r.project_id, "vm")),
    VM + "GetVm": _vm("get", False),
    # all_projects: the whole org's VMs, so the caller needs the permission on the org (admins)
    VM + "ListVms": _rule("plasmavmc:vms:list", lambda r: org_scope(r.org_id, "vm") if r.all_projects
                          else project_scope(r.org_id, r.project_id, "vm"), False),
    VM + "UpdateVm": _vm("update"),
    VM + "DeleteVm": _vm("delete"),
    VM + "StartVm": _vm("start"),
    VM + "StopVm": _vm("stop"),
    VM + "RebootVm": _vm("reboot"),
    VM + "ResetVm": _vm("reset"),
    VM + "AttachDisk": _vm("attach_disk"),
    VM + "DetachDisk": _vm("detach_disk"),
    VM + "AttachNic": _vm("attach_nic"),
    VM + "DetachNic": _vm("detach_nic"),
    VM + "GetConsole": _vm("console", False),
    VM + "WatchVm": _vm("watch", False),
    VM + "SnapshotVm": _vm("snapshot"),
    VM + "RestoreVm": _vm("restore"),
    VM + "ListSnapshots": _vm("list_snapshots", False),
    VM + "DeleteSnapshot": _vm("delete_snapshot"),
    IMAGE + "CreateImage": _rule("plasmavmc:images:create", lambda r: org_scope(r.org_id, "image")),
    IMAGE + "GetImage": _image("get", False),
    IMAGE + "ListImages": _rule("plasmavmc:images:list", lambda r: org_scope(r.org_id, "image"), False),
    IMAGE + "UpdateImage": _image("update"),
    IMAGE + "DeleteImage": _image("delete"),
    IMAGE + "UploadImage": _rule("plasmavmc:images:upload", lambda r: org_scope(r.metadata.org_id, "image")),
    IMAGE + "DownloadImage": _image("download", False),
    IMAGE + "ConvertImage": _image("convert"),
    NODE + "ListNodes": _rule("plasmavmc:nodes:list", platform("node"), False),
    NODE + "GetNode": _node("get", False),
    NODE + "CordonNode": _node("cordon"),
    NODE + "UncordonNode": _node("uncordon"),
    NODE + "DrainNode": _node("drain"),
    NODE + "DeleteNode": _node("delete"),
    QUOTA + "GetQuota": _rule("plasmavmc:quotas:get", lambda r: org_scope(r.org_id, "quota", r.project_id), False),
    QUOTA + "SetQuota": _rule("plasmavmc:quotas:set", lambda r: org_scope(r.org_id, "quota", r.project_id)),
    NETWORK + "CreateNetwork": _project("networks", "create", "network"),
    NETWORK + "GetNetwork": _project("networks", "get", "network", False),
    NETWORK + "ListNetworks": _project("networks", "list", "network", False),
    NETWORK + "DeleteNetwork": _project("networks", "delete", "network"),
    SG + "CreateSecurityGroup": _project("security_groups", "create", "security_group"),
    SG + "GetSecurityGroup": _project("security_groups", "get", "security_group", False),
    SG + "ListSecurityGroups": _project("security_groups", "list", "security_group", False),
    SG + "SetSecurityGroupRules": _project("security_groups", "update", "security_group"),
    SG + "DeleteSecurityGroup": _project("security_groups", "delete", "security_group"),
    IAM + "CreateOrg": _rule("plasmavmc:iam:create_org", platform("iam")),
    IAM + "ListOrgs": _authenticated("list_orgs", False),
    IAM + "CreateProject": _iam_org("create_project"),
    IAM + "ListProjects": _iam_org("list", False),
    IAM + "CreatePrincipal": _iam_org("create_principal", org=lambda r: r.principal.org_id),
    IAM + "ListPrincipals": _iam_org("list", False),
    IAM + "CreateBinding": _iam_org("create_binding"),
    IAM + "DeleteBinding": _iam_org("delete_binding"),
    IAM + "ListBindings": _iam_org("list", False),
    IAM + "CreateApiKey": _authenticated("create_api_key", True),  # the servicer decides on the principal's org
    IAM + "IssueToken": _authenticated("issue_token", True),  # for the caller itself
    IAM + "WhoAmI": _authenticated("whoami", False),
    IAM + "RotateSigningKey": _rule("plasmavmc:iam:rotate_keys", platform("iam")),
    IAM + "CreateConsoleTicket": _vm("console"),
    IAM + "ListAuditEvents": Rule(
        "plasmavmc:audit:list",
        lambda r: org_scope(r.org_id, "audit", r.project_id) if r.org_id else platform("audit")(r), False),
}
