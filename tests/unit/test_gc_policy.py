"""The server's garbage-collector policy (`server/gc_policy.py`), each case in a fresh interpreter (a
freeze is process-wide): start-up thresholds and pause timing, what `gcpauses.freeze_alive` freezes,
that a dropped frozen object is still freed, and that a cycle among frozen objects is reclaimed by the next
full pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_configure_raises_the_young_threshold_and_times_every_pass() -> None:
    out = _run("""
        import gc
        from prometheus_client import REGISTRY
        from plasmavmc.observe import gcpauses
        from plasmavmc.server import gc_policy
        gc_policy.configure()
        gc_policy.configure()  # twice: still one timer
        assert gc.get_threshold() == (gc_policy.GEN0, 10, 10), gc.get_threshold()
        gcpauses.freeze_alive()
        gc.collect()
        print(REGISTRY.get_sample_value("plasmavmc_gc_pause_seconds_count", {"generation": "2"}))
    """)
    assert float(out) == 2.0  # freeze_alive's pass and this one


def test_freeze_alive_freezes_what_is_alive_and_a_dropped_frozen_object_is_still_freed() -> None:
    out = _run("""
        import gc, weakref
        from prometheus_client import REGISTRY
        from plasmavmc.observe import gcpauses
        from plasmavmc.server import gc_policy
        class Entry: pass
        kept = [Entry() for _ in range(1000)]
        probe = weakref.ref(kept[0])
        gc_policy.configure()
        gcpauses.freeze_alive()
        frozen = REGISTRY.get_sample_value("plasmavmc_gc_frozen_objects")
        assert frozen == gc.get_freeze_count() >= 1000, frozen
        assert all(not any(o is e for o in gc.get_objects(2)) for e in kept[:5])  # out of the passes' sight
        del kept
        print(probe() is None)  # reference counting frees it all the same
    """)
    assert out.strip() == "True"


def test_a_cycle_that_dies_frozen_is_reclaimed_by_the_next_full_pass() -> None:
    out = _run("""
        import gc, weakref
        from plasmavmc.observe import gcpauses
        from plasmavmc.server import gc_policy
        class Node: pass
        a, b = Node(), Node()
        a.other, b.other = b, a
        probe = weakref.ref(a)
        gcpauses.freeze_alive()
        del a, b
        gc.collect()
        survived = probe() is not None  # frozen: an ordinary pass does not see the dead cycle
        gcpauses.freeze_alive()  # the hourly pass unfreezes first
        print(survived, probe() is None)
    """)
    assert out.split() == ["True", "True"]


def test_a_long_full_pass_refreezes_what_survived() -> None:
    out = _run("""
        import gc
        from plasmavmc.observe import gcpauses
        from plasmavmc.server import gc_policy
        gc_policy.REFREEZE_AFTER = 0.0  # every full pass counts as long
        gc_policy.configure()
        kept = [[i] for i in range(1000)]
        before = gc.get_freeze_count()
        gc.collect()
        print(gc.get_freeze_count() - before >= 1000)
    """)
    assert out.strip() == "True"
