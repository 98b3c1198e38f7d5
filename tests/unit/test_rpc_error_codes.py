"""`wire/status.from_rpc_error` on failures that carry no PlasmaVMC detail (a server stopping, a
connection lost, a foreign server): transient ones are UNAVAILABLE, so callers that retry do."""

from __future__ import annotations

import grpc
import pytest

from plasmavmc.errors import ErrorCode
from plasmavmc.wire.status import from_rpc_error


def _error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="went away")


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.CANCELLED])
def test_transient_failures_are_unavailable(code: grpc.StatusCode) -> None:
    assert from_rpc_error(_error(code)).code == ErrorCode.UNAVAILABLE


def test_an_unknown_failure_is_internal() -> None:
    assert from_rpc_error(_error(grpc.StatusCode.DATA_LOSS)).code == ErrorCode.INTERNAL
