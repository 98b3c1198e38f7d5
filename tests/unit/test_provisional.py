"""The word on a provisional create (`hypervisor/provisional.py`): read once, True confirms, anything else
(False, an error of the call, no word in time) abandons."""

from __future__ import annotations

import asyncio

import pytest

from plasmavmc.hypervisor import provisional
from plasmavmc.hypervisor.provisional import Abandoned, Commitment, committed, is_provisional


def word_of(*answers: bool | BaseException) -> tuple[Commitment, list[int]]:
    reads: list[int] = []

    async def word() -> bool:
        reads.append(1)
        answer = answers[len(reads) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return Commitment(word), reads


async def test_committed_confirms_and_the_word_is_read_once() -> None:
    commitment, reads = word_of(True)
    assert not commitment.confirmed
    await commitment.wait()
    await commitment.wait()
    assert commitment.confirmed and reads == [1]


@pytest.mark.parametrize("answer", [False, ConnectionError("call ended")], ids=["stream ended", "call failed"])
async def test_no_commit_is_abandoned(answer: bool | BaseException) -> None:
    commitment, reads = word_of(answer)
    with pytest.raises(Abandoned) as err:
        await commitment.wait()
    assert err.value.code == "CONFLICT" and not commitment.confirmed
    with pytest.raises(Abandoned):
        await commitment.wait()
    assert reads == [1]


async def test_no_word_in_time_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provisional, "WAIT_S", 0.05)
    never = asyncio.Event()

    async def word() -> bool:
        await never.wait()
        return True

    commitment = Commitment(word)
    with pytest.raises(Abandoned):
        await commitment.wait()
    assert not commitment.confirmed


async def test_a_waiter_cancelled_leaves_the_word_to_the_next() -> None:
    gate = asyncio.Event()

    async def word() -> bool:
        await gate.wait()
        return True

    commitment = Commitment(word)
    waiter = asyncio.create_task(commitment.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    await commitment.wait()
    assert commitment.confirmed


async def test_without_a_commitment_nothing_waits() -> None:
    await committed(None)


def test_the_handle_mark() -> None:
    assert is_provisional({provisional.DETAIL: "true", "jailed": "true"})
    assert not is_provisional({"jailed": "true"}) and not is_provisional({provisional.DETAIL: "false"})
