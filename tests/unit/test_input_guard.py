"""The request guard's message checks and the URL policy, as pure functions (the e2e tests and the fuzz
test run them behind real ports)."""

from __future__ import annotations

import ipaddress

import pytest

from plasmavmc.errors import InvalidArgument
from plasmavmc.images.fetch import UrlPolicy, split
from plasmavmc.limits import MAX_FIELD_BYTES, MAX_REPEATED
from plasmavmc.v1 import agent_pb2, image_pb2, node_pb2, types_pb2, vm_pb2
from plasmavmc.wire.guard import _decoder, _has_enums, _Undecodable, check_message


def refused_field(msg: object) -> str | None:
    try:
        check_message(msg)  # type: ignore[arg-type]
    except InvalidArgument as err:
        return err.field
    return None


def test_a_sane_message_passes() -> None:
    req = vm_pb2.CreateVmRequest(name="web", org_id="o", project_id="p", hypervisor=types_pb2.HYPERVISOR_TYPE_KVM)
    req.spec.cpu.vcpus = 2
    req.labels["a"] = "b"
    assert refused_field(req) is None


def test_an_unknown_enum_number_is_named_by_its_path() -> None:
    req = vm_pb2.CreateVmRequest()
    req.spec.disks.add().bus = 77  # type: ignore[assignment]
    assert refused_field(req) == "spec.disks[0].bus"


def test_unspecified_in_a_list_is_refused_but_alone_it_is_a_default() -> None:
    assert refused_field(agent_pb2.HeartbeatRequest(node=node_pb2.Node(id="n", hypervisors=[0]))) == \
        "node.hypervisors[0]"  # type: ignore[list-item]
    assert refused_field(vm_pb2.CreateVmRequest(hypervisor=0)) is None  # type: ignore[arg-type]


def test_oversized_fields_and_lists_are_refused() -> None:
    assert refused_field(vm_pb2.CreateVmRequest(name="a" * (MAX_FIELD_BYTES + 1))) == "name"
    many = vm_pb2.CreateVmRequest()
    for i in range(MAX_REPEATED + 1):
        many.labels[f"k{i}"] = "v"
    assert refused_field(many) == "labels"
    chunk = image_pb2.UploadImageRequest(chunk=b"\0" * (MAX_FIELD_BYTES * 4))
    assert refused_field(chunk) is None  # upload chunks are bounded by gRPC's message size instead


@pytest.mark.parametrize(("address", "refused"), [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("169.254.169.254", True),
    ("10.0.0.1", True), ("172.16.5.4", True), ("192.168.1.1", True), ("100.64.0.1", True), ("0.0.0.0", True),
    ("224.0.0.1", True), ("240.0.0.1", True), ("fe80::1", True), ("fc00::1", True),
    ("8.8.8.8", False), ("2001:4860:4860::8888", False),
])
def test_url_policy_refuses_every_non_public_address(address: str, refused: bool) -> None:
    assert (UrlPolicy().refusal(ipaddress.ip_address(address)) is not None) == refused


def test_url_policy_allow_list_and_own_addresses() -> None:
    policy = UrlPolicy(allow=(ipaddress.ip_network("10.1.0.0/16"),), own=frozenset({ipaddress.ip_address("8.8.4.4")}))
    assert policy.refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1")) is not None
    assert "this server" in (policy.refusal(ipaddress.ip_address("8.8.4.4")) or "")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "http://", "http://[::1/", "ftp://a/b"])
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        split(url)
    assert info.value.field == "source.url.url"


def test_small_requests_without_enums_skip_the_walk_and_the_rest_do_not() -> None:
    assert not _has_enums(vm_pb2.GetVmRequest.DESCRIPTOR)
    assert _has_enums(vm_pb2.ListVmsRequest.DESCRIPTOR) and _has_enums(vm_pb2.CreateVmRequest.DESCRIPTOR)
    get = _decoder(vm_pb2.GetVmRequest.FromString)
    small = vm_pb2.GetVmRequest(vm=vm_pb2.VmRef(org_id="o", project_id="p", vm_id="v"))
    assert get(small.SerializeToString()) == small
    big = vm_pb2.GetVmRequest(vm=vm_pb2.VmRef(org_id="o", project_id="p", vm_id="v" * (MAX_FIELD_BYTES + 1)))
    refused = get(big.SerializeToString())
    assert isinstance(refused, _Undecodable) and refused.error.field == "vm.vm_id"
    listing = _decoder(vm_pb2.ListVmsRequest.FromString)
    bad_enum = vm_pb2.ListVmsRequest(org_id="o", project_id="p", states=[99])  # a few bytes, walked all the same
    refused = listing(bad_enum.SerializeToString())
    assert isinstance(refused, _Undecodable) and refused.error.field == "states[0]"
