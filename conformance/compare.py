"""Comparisons by meaning: the one place that says when two values of ATS are the same.

ATS compares values, not spellings (Revision of 2026-12): a timestamp is its instant and ``25.0``
is the integer 25 (ATS-API-09), strings order by Unicode code point (ATS-API-08), ``X-Route`` is
a comma-separated list whose whitespace around a comma is ignored (chapter 8), and an object
defined by the text — a catalog entry, an audit event, a subscription — may carry extra members
(§4), so two of them are the same when the members the text defines are. Every check compares
through these functions; none compares raw strings where the text compares values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

# A member specification is the members the text defines for an object: each name maps to None
# (a plain value, compared with ``same_value``), to a nested specification (an object), or to a
# one-element list holding the specification of the objects of a list.
Members = Mapping[str, Any]

# ATS §4 table: the fields of a catalog entry and of its nested objects.
ITEM_MEMBERS: Members = {
    "name": None,
    "data_type": None,
    "length": None,
    "semantic": None,
    "sensitive": None,
    "mask": None,
}
CATALOG_ENTRY_MEMBERS: Members = {
    "resource_code": None,
    "name": None,
    "classification": {"type": None, "path": None},
    "provider": {"name": None, "code": None},
    "summary": None,
    "format": {"kind": None, "type": None},
    "items": [ITEM_MEMBERS],
    "share": {"type": None, "condition": None, "method": None},
    "open": {"open": None, "condition": None},
    "update_cycle": None,
    "published_at": None,
    "related_codes": None,
    "node_id": None,
    "updated_at": None,
}
# ATS §4: `sensitive` defaults to false, so an item without it equals one with `false`.
_DEFAULTS: Mapping[str, Any] = {"sensitive": False}

# ATS §9: an audit event.
AUDIT_EVENT_MEMBERS: Members = dict.fromkeys(
    (
        "event_id",
        "time",
        "request_id",
        "app_id",
        "origin_node",
        "origin_app",
        "action",
        "resource_code",
        "outcome",
        "status",
    )
)
# ATS §6: a subscription.
SUBSCRIPTION_MEMBERS: Members = dict.fromkeys(
    (
        "subscription_id",
        "status",
        "resource_code",
        "app_id",
        "fields",
        "unmasked",
        "purpose",
        "created_at",
    )
)


def instant(value: object) -> datetime | None:
    """The instant an RFC 3339 timestamp with ``Z`` or ``±hh:mm`` stands for (ATS-API-09), or
    None when ``value`` is not one (no offset, not a string, not a timestamp)."""
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def same_instant(a: object, b: object) -> bool:
    """``a`` and ``b`` are timestamps of one instant, whatever offset or fraction each is written
    with (``2026-12-07T01:00:00Z`` is ``2026-12-07T09:00:00.000+08:00``)."""
    first, second = instant(a), instant(b)
    return first is not None and first == second


def integer(value: object) -> int | None:
    """The integer a JSON number stands for (``25`` and ``25.0`` are 25, ATS-API-09), or None
    when ``value`` is no integer; a JSON boolean is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def is_integer(value: object) -> bool:
    """``value`` is a JSON integer by ATS-API-09 (``25.0`` included, ``true`` excluded)."""
    return integer(value) is not None


def is_number(value: object) -> bool:
    """``value`` is a JSON number (a boolean is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(a: object, b: object) -> bool:
    """``a`` and ``b`` are the same JSON value by meaning: numbers numerically, a boolean only
    equal to a boolean, two timestamps of one instant equal, objects and lists member by member."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) or is_number(b):
        return is_number(a) and is_number(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b or same_instant(a, b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def differing_members(got: object, expected: object, members: Members) -> list[str]:
    """The defined members in which two objects differ (dotted paths, ``items[2].mask``); extra
    members are ignored and a member absent from both is equal (ATS §4 "extra members are
    allowed"). An empty list means the objects are the same."""
    if not isinstance(got, Mapping) or not isinstance(expected, Mapping):
        return [] if same_value(got, expected) else ["(the whole value)"]
    differing: list[str] = []
    for name, spec in members.items():
        absent = object()
        a = got.get(name, _DEFAULTS.get(name, absent))
        b = expected.get(name, _DEFAULTS.get(name, absent))
        if a is absent or b is absent:
            if a is not b:
                differing.append(name)
            continue
        differing += [f"{name}{path}" for path in _differing_nested(a, b, spec)]
    return differing


def _differing_nested(a: object, b: object, spec: Any) -> list[str]:
    if isinstance(spec, Mapping):
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return [f".{p}" for p in differing_members(a, b, spec)]
    elif isinstance(spec, list) and isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [""]
        return [
            f"[{i}].{p}"
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for p in differing_members(x, y, spec[0])
        ]
    return [] if same_value(a, b) else [""]


def same_members(got: object, expected: object, members: Members) -> bool:
    """Two objects are the same on the members the text defines (``differing_members`` empty)."""
    return not differing_members(got, expected, members)


def same_entry(got: object, expected: object) -> bool:
    """Two catalog entries are the same by the ATS §4 table (extra members, offsets ignored)."""
    return same_members(got, expected, CATALOG_ENTRY_MEMBERS)


def route_ids(value: str | None) -> list[str]:
    """The node ids of an ``X-Route`` value: comma-separated, whitespace around commas ignored
    (ATS chapter 8); an absent or empty header is the empty route."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def out_of_order(values: Sequence[str]) -> int | None:
    """The index of the first of ``values`` that sorts before its predecessor by Unicode code
    point (ATS-API-08), or None when they ascend. Python compares ``str`` by code point; this
    names the rule and keeps locale or case folding out of every check."""
    for index in range(1, len(values)):
        if values[index] < values[index - 1]:
            return index
    return None


def by_code_point(values: Iterable[str]) -> list[str]:
    """``values`` in ascending Unicode code point order (ATS-API-08)."""
    return sorted(values)
