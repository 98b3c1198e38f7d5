"""`validation.py`'s fast paths give the same answers as the full checks: a remembered good name, and a
canonical UUID recognised without parsing (other spellings uuid.UUID accepts still count)."""

from __future__ import annotations

import uuid

import pytest

from plasmavmc import validation
from plasmavmc.errors import InvalidArgument


def test_a_remembered_name_passes_and_bad_names_still_fail() -> None:
    for _ in range(2):  # the second time from the set of good names
        assert validation.name("proj-1", "project_id") == "proj-1"
    for bad in ("", "a/b", "-x", "a..b", "x" * 64):
        with pytest.raises(InvalidArgument) as refused:
            validation.name(bad, "project_id")
        assert refused.value.field == "project_id"


def test_is_uuid_fast_and_slow_forms() -> None:
    made = uuid.uuid4()
    assert validation.is_uuid(str(made))
    assert validation.is_uuid(str(made).upper()) and validation.is_uuid(made.hex)  # parsed: still ids
    assert not validation.is_uuid("vm-1") and not validation.is_uuid(str(made)[:-1])
