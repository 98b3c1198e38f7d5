"""The stop marker Firecracker and mvisor leave before they end their process (`hypervisor/common.py`): the exit it
classifies is a requested one only for the process it names."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.hypervisor.common import mark_stop, stop_reason


def test_the_marker_names_its_process_and_reason(tmp_path: Path) -> None:
    marker = tmp_path / "stop.reason"
    assert stop_reason(marker, 4242) is None  # nothing asked
    mark_stop(marker, 4242, "delete")
    assert stop_reason(marker, 4242) == "delete"
    assert stop_reason(marker, 4243) is None  # an earlier run's marker says nothing of a later process
    mark_stop(marker, 4243, "guest_poweroff")
    assert (stop_reason(marker, 4242), stop_reason(marker, 4243)) == (None, "guest_poweroff")
    assert [p.name for p in tmp_path.iterdir()] == ["stop.reason"]  # replaced atomically, no temp left


def test_a_marker_without_a_reason_reads_as_a_stop(tmp_path: Path) -> None:
    marker = tmp_path / "stop.reason"
    marker.write_text("17")
    assert stop_reason(marker, 17) == "stop"
