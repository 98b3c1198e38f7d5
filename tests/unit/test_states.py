"""The transition table against the spec's state machine (§3.2), every pair of the 10 x 10.

The expected set is written out here independently of the table, so a change to either shows up.
"""

from __future__ import annotations

import itertools

import pytest

from plasmavmc.errors import InvalidState
from plasmavmc.types.states import ALLOWED, VmState, can_transition, check_transition, transition

S = VmState
EXPECTED = {
    (S.PENDING, S.CREATING),
    (S.PENDING, S.ERROR),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.DELETED),
    (S.CREATING, S.STOPPED),
    (S.CREATING, S.ERROR),
    (S.CREATING, S.FAILED),
    (S.CREATING, S.DELETED),
    (S.STOPPED, S.STARTING),
    (S.STOPPED, S.MIGRATING),
    (S.STOPPED, S.PENDING),
    (S.STOPPED, S.ERROR),
    (S.STOPPED, S.DELETED),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.STOPPED),
    (S.STARTING, S.ERROR),
    (S.STARTING, S.FAILED),
    (S.RUNNING, S.RUNNING),
    (S.RUNNING, S.STOPPING),
    (S.RUNNING, S.STOPPED),
    (S.RUNNING, S.MIGRATING),
    (S.RUNNING, S.ERROR),
    (S.RUNNING, S.DELETED),
    (S.STOPPING, S.STOPPED),
    (S.STOPPING, S.ERROR),
    (S.MIGRATING, S.RUNNING),
    (S.MIGRATING, S.STOPPED),
    (S.MIGRATING, S.ERROR),
    (S.ERROR, S.PENDING),
    (S.ERROR, S.STARTING),
    (S.ERROR, S.STOPPING),
    (S.ERROR, S.STOPPED),
    (S.ERROR, S.RUNNING),
    (S.ERROR, S.FAILED),
    (S.ERROR, S.DELETED),
    (S.FAILED, S.DELETED),
}
ALL_PAIRS = list(itertools.product(VmState, VmState))


def test_ten_states() -> None:
    assert len(VmState) == 10
    assert set(ALLOWED) == set(VmState)


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS])
def test_every_pair(current: VmState, target: VmState) -> None:
    allowed = (current, target) in EXPECTED
    assert can_transition(current, target) is allowed
    if allowed:
        assert transition(current, target, vm_id="t", operation="op") is target
    else:
        with pytest.raises(InvalidState) as info:
            check_transition(current, target, operation="op")
        assert current.value.upper() in info.value.message


def test_deleted_and_failed_are_terminal_but_for_cleanup() -> None:
    assert ALLOWED[S.DELETED] == frozenset()
    assert ALLOWED[S.FAILED] == frozenset({S.DELETED})
