"""`plasmavmc.store.keys`: the spec §8.1 layout, and no key part can escape its prefix."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plasmavmc.store import keys

BAD_PARTS = ["", "/", "a/b", "../x", "..", ".", "x/"]

# every helper, with the argument position that gets the bad part
BUILDERS: list[tuple[str, Callable[[str], str]]] = [
    ("vm.org", lambda p: keys.vm(p, "proj", "vm1")),
    ("vm.project", lambda p: keys.vm("org", p, "vm1")),
    ("vm.id", lambda p: keys.vm("org", "proj", p)),
    ("vms_in.org", lambda p: keys.vms_in(p)),
    ("vms_in.project", lambda p: keys.vms_in("org", p)),
    ("vm_name.name", lambda p: keys.vm_name("org", "proj", p)),
    ("vm_name.org", lambda p: keys.vm_name(p, "proj", "web")),
    ("image.org", lambda p: keys.image(p, "img")),
    ("image.id", lambda p: keys.image("org", p)),
    ("public_image", keys.public_image),
    ("node", keys.node),
    ("assignment", keys.assignment),
    ("pending", lambda p: keys.pending(1, p)),
]


@pytest.mark.parametrize("part", BAD_PARTS)
@pytest.mark.parametrize(("name", "build"), BUILDERS, ids=[name for name, _ in BUILDERS])
def test_bad_parts_are_rejected(name: str, build: Callable[[str], str], part: str) -> None:
    with pytest.raises(ValueError, match="invalid key part"):
        build(part)


def test_layout_matches_spec() -> None:
    assert keys.vm("o", "p", "v") == "plasmavmc/vms/o/p/v"
    assert keys.image("o", "i") == "plasmavmc/images/o/i"
    assert keys.public_image("i") == "plasmavmc/images/public/i"
    assert keys.node("n") == "plasmavmc/nodes/n"
    assert keys.assignment("v") == "plasmavmc/scheduler/assignments/v"
    assert keys.pending(42, "v") == "plasmavmc/scheduler/pending/00000000000000000042/v"


def test_list_prefixes_contain_their_keys_only() -> None:
    assert keys.vms_in() == keys.VMS
    assert keys.vm("o", "p", "v").startswith(keys.vms_in("o", "p"))
    assert keys.vm("o", "p", "v").startswith(keys.vms_in("o"))
    # a sibling org whose name extends another's is not under it
    assert not keys.vm("org2", "p", "v").startswith(keys.vms_in("org"))
    assert keys.vms_in("o").endswith("/") and keys.vms_in("o", "p").endswith("/")


def test_names_and_vms_do_not_share_a_prefix() -> None:
    assert not keys.vm_name("o", "p", "web").startswith(keys.VMS)


def test_pending_orders_by_time() -> None:
    earlier, later = keys.pending(9, "b"), keys.pending(10, "a")
    assert earlier < later  # zero padding makes string order the numeric order
