"""`vm create`'s cloud-init options and `vm ssh`'s argv (the parts that need no server)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from plasmavmc.cli.common import UsageError
from plasmavmc.cli.guest_commands import cloud_init_spec, ssh_argv
from plasmavmc.cli.main import _parse, build_parser
from plasmavmc.types.vm import CloudInitSpec, NetworkSpec, VirtualMachine, VmSpec

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKu7f me@host"
VM_ID = "0b6f3c1e-8d4a-4c61-9a53-2f8e0f4d7a10"


def test_create_options_make_the_seed(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text(f"# a comment\n{KEY}\n\n")
    (tmp_path / "ud").write_text("#!/bin/sh\ntrue\n")
    args = build_parser().parse_args(["vm", "create", "x", "--image", "i", "--ssh-key", str(tmp_path / "k.pub"),
                                      "--user-data", str(tmp_path / "ud"), "--hostname", "h1",
                                      "--security-group", "ssh"])
    assert cloud_init_spec(args) == CloudInitSpec(user_data="#!/bin/sh\ntrue\n", ssh_authorized_keys=(KEY,),
                                                  hostname="h1")
    assert args.security_group == ["ssh"]
    plain = build_parser().parse_args(["vm", "create", "x", "--image", "i"])
    assert cloud_init_spec(plain) is None
    missing = build_parser().parse_args(["vm", "create", "x", "--image", "i", "--ssh-key", str(tmp_path / "no")])
    with pytest.raises(UsageError, match="--ssh-key"):
        cloud_init_spec(missing)


def test_ssh_argv_targets_the_api_address() -> None:
    nic = NetworkSpec(id="nic0", network_id="n", ip_address="10.0.0.7")
    vm = VirtualMachine(id=VM_ID, name="deb1", org_id="o", project_id="p", spec=VmSpec(network=(nic,)))
    args = _parse(["vm", "ssh", "deb1", "-i", "/k", "--ssh-option", "BatchMode=yes", "--", "cloud-init", "status"])
    assert isinstance(args, argparse.Namespace)
    argv = ssh_argv(vm, args)
    assert argv[0] == "ssh" and f"HostKeyAlias=plasmavmc-{VM_ID}" in argv
    assert argv[argv.index("-l") + 1] == "debian" and argv[argv.index("-i") + 1] == "/k"
    assert argv[-4:] == ["--", "10.0.0.7", "cloud-init", "status"] and "BatchMode=yes" in argv
    assert ssh_argv(vm, build_parser().parse_args(["vm", "ssh", "deb1"]))[-2:] == ["--", "10.0.0.7"]
    assert _parse(["vm", "get", "deb1", "--", "x"]) == 2  # only `vm ssh` takes a remote command
    bare = VirtualMachine(id=VM_ID, name="deb1", org_id="o", project_id="p")
    with pytest.raises(UsageError, match="no IP address"):
        ssh_argv(bare, build_parser().parse_args(["vm", "ssh", "deb1"]))
