"""`wire/replies.py`: a servicer registered through `add_servicer` serves every method of its service as the
generated registration does, and may answer with serialized bytes; `list_reply` assembles the same bytes
a List* response message would serialize to."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from plasmavmc.v1 import types_pb2, vm_pb2, vm_pb2_grpc
from plasmavmc.wire.replies import add_servicer, bytes_or, list_reply

SERVICE = vm_pb2.DESCRIPTOR.services_by_name["VmService"]


def _vm(i: int, note: str = "") -> types_pb2.VirtualMachine:
    return types_pb2.VirtualMachine(id=f"id-{i}", name=f"vm-{i}", org_id="o", project_id="p" + note)


@pytest.mark.parametrize("count,token,note", [(0, "", ""), (1, "", ""), (3, "next-id", ""), (2, "t", "x" * 300)])
def test_list_reply_is_the_message_serialized(count: int, token: str, note: str) -> None:
    vms = [_vm(i, note) for i in range(count)]  # the 300-byte field needs a two-byte length
    raw = list_reply([vm.SerializeToString() for vm in vms], token)
    assert vm_pb2.ListVmsResponse.FromString(raw) == vm_pb2.ListVmsResponse(vms=vms, next_page_token=token)
    assert raw == vm_pb2.ListVmsResponse(vms=vms, next_page_token=token).SerializeToString()


def test_bytes_or_sends_bytes_as_they_are() -> None:
    serialize = bytes_or(types_pb2.VirtualMachine.SerializeToString)
    assert serialize(b"\x0a\x01x") == b"\x0a\x01x"
    assert serialize(_vm(1)) == _vm(1).SerializeToString()


class _Vms(vm_pb2_grpc.VmServiceServicer):
    async def GetVm(self, request: vm_pb2.GetVmRequest, context: grpc.aio.ServicerContext) -> bytes:
        return _vm(7, request.vm.vm_id).SerializeToString()  # already serialized

    async def ListVms(self, request: vm_pb2.ListVmsRequest, context: grpc.aio.ServicerContext) -> object:
        return vm_pb2.ListVmsResponse(vms=[_vm(1)], next_page_token="n")  # a message, serialized as usual


async def test_a_servicer_may_answer_with_bytes_or_messages() -> None:
    server = grpc.aio.server()
    add_servicer(server, _Vms(), SERVICE)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = vm_pb2_grpc.VmServiceStub(channel)
            got = await stub.GetVm(vm_pb2.GetVmRequest(vm=vm_pb2.VmRef(vm_id="q")), timeout=10)
            assert got == _vm(7, "q")
            listed = await stub.ListVms(vm_pb2.ListVmsRequest(), timeout=10)
            assert list(listed.vms) == [_vm(1)] and listed.next_page_token == "n"
            with pytest.raises(grpc.aio.AioRpcError) as missing:  # not defined by the servicer: as generated
                await stub.DeleteVm(vm_pb2.DeleteVmRequest(), timeout=10)
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


def test_every_method_is_registered_like_the_generated_code() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.handlers: dict[str, grpc.RpcMethodHandler] = {}

        def add_generic_rpc_handlers(self, handlers: object) -> None:
            pass

        def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
            assert service == SERVICE.full_name
            self.handlers = handlers

    ours, generated = Recorder(), Recorder()
    add_servicer(ours, _Vms(), SERVICE)  # type: ignore[arg-type]
    vm_pb2_grpc.add_VmServiceServicer_to_server(_Vms(), generated)  # type: ignore[no-untyped-call]
    assert ours.handlers.keys() == generated.handlers.keys()
    for name, theirs in generated.handlers.items():
        mine = ours.handlers[name]
        assert (mine.request_streaming, mine.response_streaming) == (theirs.request_streaming,
                                                                      theirs.response_streaming), name
        assert mine.request_deserializer == theirs.request_deserializer, name
