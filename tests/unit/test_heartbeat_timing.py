"""When an agent heartbeats (`agent/heartbeats.next_beat`): the interval jittered so a fleet started in
step drifts apart, and a retry after a failure spread over the interval but never later than it."""

from __future__ import annotations

import random

from plasmavmc.agent.heartbeats import next_beat


def test_intervals_are_jittered_around_the_configured_one() -> None:
    rng = random.Random(7)
    beats = [next_beat(5.0, False, rng) for _ in range(2000)]
    assert all(4.5 <= b <= 5.5 for b in beats)
    assert max(beats) - min(beats) > 0.8  # spread, not one value
    assert abs(sum(beats) / len(beats) - 5.0) < 0.05  # the rate stays the configured one


def test_retries_after_a_failure_spread_within_the_interval() -> None:
    rng = random.Random(7)
    retries = [next_beat(5.0, True, rng) for _ in range(2000)]
    assert all(2.5 <= r <= 5.0 for r in retries)  # never later than the interval: the node stays alive
    buckets = {int((r - 2.5) / 0.5) for r in retries}
    assert buckets == {0, 1, 2, 3, 4}  # a fleet's retries land all over, not in one burst
