"""The one error tree of PlasmaVMC.

Every failure a caller can see is a `PlasmaError` carrying one of the spec's codes (Appendix A, plus the
few generic ones an API needs) and, where input was at fault, the name of the field. Foreign errors
(QMP, sqlite, OS, gRPC) are translated into this tree at the boundary where they occur, with
`raise ... from exc`. The API layer maps `code` to a gRPC status in one table (`wire/status.py`).

    PlasmaError (code, message, field, retryable)
    ├── InvalidArgument        INVALID_ARGUMENT  bad input, names the field
    ├── NotFound               *_NOT_FOUND       VM_NOT_FOUND, IMAGE_NOT_FOUND, NODE_NOT_FOUND, NOT_FOUND
    ├── AlreadyExists          ALREADY_EXISTS    duplicate name in a scope
    ├── InvalidState           INVALID_STATE     operation not allowed in the current VM state
    ├── Conflict               CONFLICT          compare-and-swap lost; retry reads again
    ├── NoSuitableNode         NO_SUITABLE_NODE  scheduling found no node (explains why)
    ├── QuotaExceeded          QUOTA_EXCEEDED    names the limit
    ├── NetworkFull            NETWORK_FULL      a network has no free address left (IPAM)
    ├── PermissionDenied       PERMISSION_DENIED
    ├── Unauthenticated        UNAUTHENTICATED   missing, expired or tampered credential
    ├── Unimplemented          UNIMPLEMENTED     names the missing feature
    ├── Unavailable            UNAVAILABLE       a peer (agent, store) cannot be reached; retryable
    ├── HypervisorError        HYPERVISOR_ERROR  the backend failed
    └── StoreError             STORE_ERROR       the state store failed
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    VM_NOT_FOUND = "VM_NOT_FOUND"
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"
    NODE_NOT_FOUND = "NODE_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    NO_SUITABLE_NODE = "NO_SUITABLE_NODE"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    NETWORK_FULL = "NETWORK_FULL"
    HYPERVISOR_ERROR = "HYPERVISOR_ERROR"
    INVALID_STATE = "INVALID_STATE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CONFLICT = "CONFLICT"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    UNAVAILABLE = "UNAVAILABLE"
    STORE_ERROR = "STORE_ERROR"
    INTERNAL = "INTERNAL"


class PlasmaError(Exception):
    """Base of every error PlasmaVMC raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL
    retryable: bool = False

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        return f"{self.code}: {self.message}{where}"


class InvalidArgument(PlasmaError):
    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class NotFound(PlasmaError):
    code = ErrorCode.NOT_FOUND


class VmNotFound(NotFound):
    code = ErrorCode.VM_NOT_FOUND


class ImageNotFound(NotFound):
    code = ErrorCode.IMAGE_NOT_FOUND


class NodeNotFound(NotFound):
    code = ErrorCode.NODE_NOT_FOUND


class AlreadyExists(PlasmaError):
    code = ErrorCode.ALREADY_EXISTS


class InvalidState(PlasmaError):
    code = ErrorCode.INVALID_STATE


class Conflict(PlasmaError):
    """A compare-and-swap lost against a concurrent writer: read again and retry."""

    code = ErrorCode.CONFLICT
    retryable = True


class NoSuitableNode(PlasmaError):
    code = ErrorCode.NO_SUITABLE_NODE
    retryable = True


class QuotaExceeded(PlasmaError):
    code = ErrorCode.QUOTA_EXCEEDED


class NetworkFull(PlasmaError):
    code = ErrorCode.NETWORK_FULL


class PermissionDenied(PlasmaError):
    code = ErrorCode.PERMISSION_DENIED


class Unauthenticated(PlasmaError):
    code = ErrorCode.UNAUTHENTICATED


class Unimplemented(PlasmaError):
    code = ErrorCode.UNIMPLEMENTED


class Unavailable(PlasmaError):
    code = ErrorCode.UNAVAILABLE
    retryable = True


class HypervisorError(PlasmaError):
    code = ErrorCode.HYPERVISOR_ERROR


class StoreError(PlasmaError):
    code = ErrorCode.STORE_ERROR
    retryable = True


def vm_not_found(org_id: str, project_id: str, vm: str) -> VmNotFound:
    """The one answer for a VM that does not exist *or* that the caller may not see (no hint which)."""
    return VmNotFound(f"VM {vm!r} does not exist in {org_id}/{project_id}", field="vm.vm_id")


def image_not_found(org_id: str, image_id: str, field: str = "image_id") -> ImageNotFound:
    """The one answer for an image that does not exist or is not visible to `org_id`."""
    return ImageNotFound(f"image {image_id!r} does not exist or is not visible to org {org_id!r}", field=field)
