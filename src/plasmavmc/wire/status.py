"""Errors across the wire: our error tree <-> gRPC status, in ONE table.

Server side, `to_grpc_status(err)` turns a `PlasmaError` into a gRPC status whose details
(`grpc-status-details-bin`, a google.rpc.Status) carry a `google.rpc.ErrorInfo` (reason = the spec code,
domain "plasmavmc", metadata {"field": ...}) and our own `ErrorDetail`. Client side, `from_rpc_error`
rebuilds the same `PlasmaError` subclass, so a caller of `PlasmaClient` catches `VmNotFound` exactly as
code inside the server does. Agent calls use the same path, so an agent's error reaches the API user
unchanged.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from plasmavmc import errors as e
from plasmavmc.errors import ErrorCode, PlasmaError
from plasmavmc.v1 import types_pb2

DOMAIN = "plasmavmc"

#: spec code -> (gRPC status, the PlasmaError subclass a client raises)
TABLE: dict[ErrorCode, tuple[grpc.StatusCode, type[PlasmaError]]] = {
    ErrorCode.VM_NOT_FOUND: (grpc.StatusCode.NOT_FOUND, e.VmNotFound),
    ErrorCode.IMAGE_NOT_FOUND: (grpc.StatusCode.NOT_FOUND, e.ImageNotFound),
    ErrorCode.NODE_NOT_FOUND: (grpc.StatusCode.NOT_FOUND, e.NodeNotFound),
    ErrorCode.NOT_FOUND: (grpc.StatusCode.NOT_FOUND, e.NotFound),
    ErrorCode.NO_SUITABLE_NODE: (grpc.StatusCode.RESOURCE_EXHAUSTED, e.NoSuitableNode),
    ErrorCode.QUOTA_EXCEEDED: (grpc.StatusCode.RESOURCE_EXHAUSTED, e.QuotaExceeded),
    ErrorCode.NETWORK_FULL: (grpc.StatusCode.RESOURCE_EXHAUSTED, e.NetworkFull),
    ErrorCode.HYPERVISOR_ERROR: (grpc.StatusCode.INTERNAL, e.HypervisorError),
    ErrorCode.INVALID_STATE: (grpc.StatusCode.FAILED_PRECONDITION, e.InvalidState),
    ErrorCode.INVALID_ARGUMENT: (grpc.StatusCode.INVALID_ARGUMENT, e.InvalidArgument),
    ErrorCode.ALREADY_EXISTS: (grpc.StatusCode.ALREADY_EXISTS, e.AlreadyExists),
    ErrorCode.CONFLICT: (grpc.StatusCode.ABORTED, e.Conflict),
    ErrorCode.PERMISSION_DENIED: (grpc.StatusCode.PERMISSION_DENIED, e.PermissionDenied),
    ErrorCode.UNAUTHENTICATED: (grpc.StatusCode.UNAUTHENTICATED, e.Unauthenticated),
    ErrorCode.UNIMPLEMENTED: (grpc.StatusCode.UNIMPLEMENTED, e.Unimplemented),
    ErrorCode.UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, e.Unavailable),
    ErrorCode.STORE_ERROR: (grpc.StatusCode.UNAVAILABLE, e.StoreError),
    ErrorCode.INTERNAL: (grpc.StatusCode.INTERNAL, PlasmaError),
}

_BY_GRPC = {
    grpc.StatusCode.NOT_FOUND: ErrorCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.INVALID_STATE,
    grpc.StatusCode.ABORTED: ErrorCode.CONFLICT,
    grpc.StatusCode.UNIMPLEMENTED: ErrorCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: ErrorCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.UNAVAILABLE,
    # a call this client did not cancel (that raises CancelledError here), cancelled by a server stopping
    # or a connection going away: try again, as for UNAVAILABLE
    grpc.StatusCode.CANCELLED: ErrorCode.UNAVAILABLE,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.UNAUTHENTICATED,
}


def _pack(msg: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)  # type: ignore[arg-type]
    return packed


class _Status(grpc.Status):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, object], ...]):
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


def to_grpc_status(err: PlasmaError, request_id: str = "") -> grpc.Status:
    """The status for `err`; with `request_id`, the message ends `(request id ...)` and the trailing
    metadata carries `x-request-id`, so a caller can quote it."""
    grpc_code = TABLE.get(err.code, (grpc.StatusCode.INTERNAL, PlasmaError))[0]
    info = error_details_pb2.ErrorInfo(reason=str(err.code), domain=DOMAIN)
    if err.field:
        info.metadata["field"] = err.field
    detail = types_pb2.ErrorDetail(code=str(err.code), field=err.field or "", retryable=err.retryable)
    message = f"{err.message} (request id {request_id})" if request_id else err.message
    status = status_pb2.Status(
        code=getattr(code_pb2, grpc_code.name), message=message, details=[_pack(info), _pack(detail)]
    )
    result: grpc.Status = rpc_status.to_status(status)
    if not request_id:
        return result
    return _Status(result.code, result.details, (*result.trailing_metadata, ("x-request-id", request_id)))


def error_from_detail(code: ErrorCode, message: str, field: str | None) -> PlasmaError:
    cls = TABLE.get(code, (grpc.StatusCode.INTERNAL, PlasmaError))[1]
    err = PlasmaError.__new__(cls)
    PlasmaError.__init__(err, message, field=field or None, code=code)
    return err


def from_rpc_error(exc: grpc.RpcError) -> PlasmaError:
    """The `PlasmaError` a failed call carries; foreign failures get a code from the gRPC status."""
    message = exc.details() or str(exc.code())
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for packed in status.details:
            if packed.Is(types_pb2.ErrorDetail.DESCRIPTOR):
                detail = types_pb2.ErrorDetail()
                packed.Unpack(detail)
                try:
                    code = ErrorCode(detail.code)
                except ValueError:
                    code = ErrorCode.INTERNAL
                return error_from_detail(code, status.message, detail.field)
    code = _BY_GRPC.get(exc.code(), ErrorCode.INTERNAL)
    return error_from_detail(code, message, None)
