"""`observe.steps`: a backend's step timings as one log line, and the bench's reading of it."""

from __future__ import annotations

from plasmavmc.observe.steps import Steps, parse


def test_steps_line_reads_back_in_order() -> None:
    took = Steps()
    took.done("dir")
    took.done("flush")
    line = took.line("vm v1: pooled backend steps")
    assert line.startswith("vm v1: pooled backend steps: dir ") and line.endswith(" ms")
    found = parse(f"2026-11-27 21:00:00 INFO plasmavmc.x: {line}", "pooled backend steps")
    assert found is not None and list(found) == ["dir", "flush"]
    assert all(0 <= s < 1 for s in found.values())


def test_parse_finds_only_its_kind() -> None:
    assert parse("vm v1: pooled backend steps: boot 10.50 ms", "pooled backend steps") == {"boot": 0.0105}
    assert parse("vm v1: pooled backend steps: boot 10.50 ms", "create+start steps") is None
    assert parse("vm v1: create+start steps: boot ten ms", "create+start steps") is None
    logged = "vm v1: create+start steps: a 1 ms, b 2.5 ms [request_id=r1]"  # the log context after it
    assert parse(logged, "create+start steps") == {"a": 0.001, "b": 0.0025}
