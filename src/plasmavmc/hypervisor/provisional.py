"""A provisional create (agent.proto `CreateVmRequest.provisional`): the control plane's word on whether
the claim it sent the create ahead of has committed.

The control plane sends a RunVm's create to the chosen node as soon as placement chose it, and commits
the claim (and the VM's record) while the node boots: the boot no longer waits for the commit. Until
the word comes the VM is the node's only provisionally: a backend that boots it before the word keeps
nothing of it that would outlive the agent (its handle says `provisional`: an agent that restarts
removes such a VM instead of adopting it) and writes no record; a backend that cannot do that waits
for the word before it makes anything (`committed`). No word (the control plane's commit failed, it
went away, or `WAIT_S` passed) is `Abandoned`: the agent removes the VM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from plasmavmc.errors import Conflict

WAIT_S = 60.0  # the longest a node waits for the word; a claim's commit takes milliseconds
DETAIL = "provisional"  # the handle detail of a VM whose claim is not known to have committed


class Abandoned(Conflict):
    """The claim a provisional create was sent ahead of did not commit (or nobody said it did)."""


class Commitment:
    """The word on one provisional create, read once from `word` (True: committed; False: the caller
    ended its request stream without it)."""

    def __init__(self, word: Callable[[], Awaitable[bool]]) -> None:
        self._word = word
        self._read: asyncio.Future[bool] | None = None
        self.confirmed = False

    async def wait(self) -> None:
        """Until the claim committed; `Abandoned` if it did not, or no word came within `WAIT_S`."""
        if self._read is None:
            self._read = asyncio.ensure_future(self._listen())
        if not await asyncio.shield(self._read):
            raise Abandoned("the control plane did not commit this VM's claim: the VM is removed")
        self.confirmed = True

    async def _listen(self) -> bool:
        try:
            async with asyncio.timeout(WAIT_S):
                return await self._word()
        except (TimeoutError, Exception):
            return False


async def committed(commitment: Commitment | None) -> None:
    """Until `commitment`'s claim committed (at once without one); `Abandoned` if it did not."""
    if commitment is not None:
        await commitment.wait()


def is_provisional(details: Mapping[str, str]) -> bool:
    """Whether a handle's `details` mark its VM as one whose claim is not known to have committed."""
    return details.get(DETAIL) == "true"
