"""The CLI parser's habits that need no server: every option has help showing its default, global
options parse the same anywhere, profiles resolve in order, `--version`, confirmation on a terminal,
color only on a terminal without NO_COLOR, and the output formats of a record."""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from plasmavmc.cli import output as out
from plasmavmc.cli.main import build_parser, main
from plasmavmc.cli.options import resolve, subparsers_of
from plasmavmc.types.node import Node, NodeState


def _parsers() -> list[argparse.ArgumentParser]:
    top = build_parser()
    return [top, *subparsers_of(top)]


def test_every_option_has_help_and_shows_its_default() -> None:
    for parser in _parsers():
        help_text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            assert action.help, f"{parser.prog} {action.option_strings} has no help"
            takes_value = action.nargs != 0
            if takes_value and not action.required:
                flag = action.option_strings[-1]
                shown = "default" in (action.help or "") or action.default not in (None, argparse.SUPPRESS)
                assert shown, f"{parser.prog} {flag}: help does not say the default"
        assert "global options" in help_text or parser.prog == "plasmavmc"


@pytest.mark.parametrize("argv", [
    ["-o", "json", "--project", "p", "vm", "list"],
    ["vm", "-o", "json", "list", "--project", "p"],
    ["vm", "list", "-o", "json", "--project", "p"],
])
def test_global_options_anywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    resolve(args, {"PLASMAVMC_CLI_CONFIG": "/nonexistent.toml"})
    assert (args.output, args.project, args.org, args.endpoint) == ("json", "p", "default", "http://127.0.0.1:8080")


def test_precedence_flag_env_profile_default(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('default_cloud = "a"\n[clouds.a]\nendpoints = ["http://a:1", "http://b:1"]\norg = "oa"\n'
                   'project = "pa"\ntoken = "t"\n')
    env = {"PLASMAVMC_CLI_CONFIG": str(cfg), "PLASMAVMC_PROJECT": "penv"}
    args = build_parser().parse_args(["vm", "list", "--org", "oflag"])
    assert resolve(args, env).name == "a"
    assert (args.endpoint, args.org, args.project, args.token, args.output) == (
        "http://a:1", "oflag", "penv", "t", "table")
    assert args.cloud == "a"


def test_addr_env_is_the_servers_not_the_clis() -> None:
    args = build_parser().parse_args(["vm", "list"])
    resolve(args, {"PLASMAVMC_ADDR": "0.0.0.0:9", "PLASMAVMC_CLI_CONFIG": "/nonexistent.toml"})
    assert args.endpoint == "http://127.0.0.1:8080"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("plasmavmc ")


def test_destructive_command_asks_on_a_terminal(tmp_path: Path) -> None:
    """`vm delete` on a TTY without --yes asks; "n" cancels before anything is sent (exit 1)."""
    env = {**os.environ, "PLASMAVMC_ENDPOINT": "127.0.0.1:1", "PLASMAVMC_CLI_CONFIG": str(tmp_path / "none")}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "plasmavmc.cli", "vm", "delete", "web-1"], env=env,
                            stdin=follower, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        seen += os.read(leader, 1024)  # blocks until the prompt arrives (or the child exits: EOF/EIO)
    os.write(leader, b"n\n")
    assert proc.wait(60) == 1
    rest = b""
    try:
        while chunk := os.read(leader, 1024):
            rest += chunk
    except OSError:  # EIO: the child closed the terminal
        pass
    os.close(leader)
    assert b"delete vm web-1" in seen and b"cancelled" in rest  # never reached the (unreachable) server


def test_color_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Tty())
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert out.color("RUNNING") == "\x1b[32mRUNNING\x1b[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert out.color("RUNNING") == "RUNNING"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert out.color("RUNNING") == "RUNNING"


def test_formats_and_columns() -> None:
    node = Node(id="n1", name="n1", state=NodeState.READY)
    rows = [out.node_row(node)]
    table = out.render("table", None, node, out.NODE_COLUMNS, rows)
    assert table.splitlines()[0].startswith("ID") and "READY" in table
    assert json.loads(out.render("json", None, node, out.NODE_COLUMNS, rows))["id"] == "n1"
    assert yaml.safe_load(out.render("yaml", None, node, out.NODE_COLUMNS, rows))["state"] == "ready"
    assert out.render("value", ["id", "STATE"], node, out.NODE_COLUMNS, rows) == "n1 READY"
    assert json.loads(out.render("json", ["id"], [node], out.NODE_COLUMNS, rows)) == [{"id": "n1"}]
    with pytest.raises(out.ColumnError):
        out.render("json", ["colour"], node, out.NODE_COLUMNS, rows)
