"""Descriptor-driven random and boundary protobuf messages for the fuzz test.

Walks a message descriptor and fills each field, at random, with nothing, a boundary value (0, -1,
the type's extremes, an unknown enum number, a 100 KB string, control characters) or a plausible value
(a UUID, a short name, a known enum number), so that a run reaches both the edge checks and the code
behind them. Long lists (40, 200 entries) only at the top level, so nested lists cannot multiply into
messages of millions of fields. Seeded: a failing message can be rebuilt from its seed.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

INT32 = (0, 1, -1, 2**31 - 1, -(2**31), 7, 4096)
INT64 = (0, 1, -1, 2**63 - 1, -(2**63), 2**40, 3600)
UINT32 = (0, 1, 2**32 - 1, 2**31, 64)
UINT64 = (0, 1, 2**64 - 1, 2**63, 2**40)
FLOATS = (0.0, -1.0, 1e308, float("inf"), float("-inf"), float("nan"), 0.5)
STRINGS = (
    "", "a", "vm-1", "default", "node-1", "../../etc/passwd", "a" * 64, "x" * 100_000, "\x00", "a\nb",
    "\x1b[31mred\x1b[0m", "é漢字", "http://127.0.0.1:1/x", "-rf", "a,b=c", " ", "%s%n", "ünïcode\u202e",
)
_INTS = {
    FieldDescriptor.TYPE_INT32: INT32, FieldDescriptor.TYPE_SINT32: INT32, FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64, FieldDescriptor.TYPE_SINT64: INT64, FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32, FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64, FieldDescriptor.TYPE_FIXED64: UINT64,
}
MAX_DEPTH = 4


def _string(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(STRINGS)
    if roll < 0.7:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 40))).replace("\ud800", "")


def _scalar(fd: FieldDescriptor, rng: random.Random) -> Any:
    t = fd.type
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return rng.choice([*known, *known, -1, 99, 2**31 - 1, rng.randrange(-(2**31), 2**31)])
    if t in _INTS:
        pool = _INTS[t]
        return rng.choice(pool) if rng.random() < 0.8 else rng.randrange(min(pool), max(pool) + 1)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = rng.choice(FLOATS)
        return value if t == FieldDescriptor.TYPE_DOUBLE or abs(value) < 3e38 or value != value else 3e38
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice((0, 1, 16, 300, 70_000)))
    return _string(rng)


def _fill(msg: Message, desc: Descriptor, rng: random.Random, depth: int) -> None:
    for fd in desc.fields:
        if rng.random() < 0.35:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            target = getattr(msg, fd.name)
            key_fd, val_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            for _ in range(rng.choice((0, 1, 3, 80) if depth == 0 else (0, 1, 3))):
                key = _scalar(key_fd, rng)
                if val_fd.message_type is not None:
                    if depth < MAX_DEPTH:
                        _fill(target[key], val_fd.message_type, rng, depth + 1)
                else:
                    target[key] = _scalar(val_fd, rng)
        elif fd.is_repeated:
            target = getattr(msg, fd.name)
            for _ in range(rng.choice((0, 1, 2, 3, 40, 200) if depth == 0 else (0, 1, 2, 3))):
                if fd.message_type is not None:
                    if depth >= MAX_DEPTH:
                        break
                    _fill(target.add(), fd.message_type, rng, depth + 1)
                else:
                    target.append(_scalar(fd, rng))
        elif fd.message_type is not None:
            if depth < MAX_DEPTH:
                child = getattr(msg, fd.name)
                child.SetInParent()
                _fill(child, fd.message_type, rng, depth + 1)
        else:
            setattr(msg, fd.name, _scalar(fd, rng))


def random_message(desc: Descriptor, seed: int) -> bytes:
    """The wire bytes of one random message of type `desc`; 1 in 12 is plain garbage instead."""
    rng = random.Random(seed)
    if rng.random() < 1 / 12:
        return rng.randbytes(rng.choice((1, 5, 64, 1000)))
    msg = GetMessageClass(desc)()
    _fill(msg, desc, rng, 0)
    return msg.SerializeToString()
