"""Comparisons by meaning (conformance/compare.py): the rules of the Revision of 2026-12."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conformance import compare

ENTRY: dict[str, Any] = {
    "resource_code": "101001/000001",
    "name": "人口基本信息",
    "classification": {"type": "BASE", "path": ["人口", "基本", "信息"]},
    "provider": {"name": "公安厅", "code": "330000"},
    "summary": "summary",
    "format": {"kind": "DATABASE", "type": "json"},
    "items": [
        {
            "name": "id",
            "data_type": "C",
            "length": 18,
            "semantic": "ID_NUMBER",
            "sensitive": True,
            "mask": "ID_NUMBER",
        },
        {"name": "age", "data_type": "I"},
    ],
    "share": {"type": "UNCONDITIONAL", "condition": "", "method": "API"},
    "open": {"open": False, "condition": ""},
    "update_cycle": "DAILY",
    "published_at": "2026-01-01",
    "related_codes": [],
    "node_id": "330000",
    "updated_at": "2026-12-07T01:00:00Z",
}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2026-12-07T01:00:00Z", "2026-12-07T09:00:00.000+08:00"),
        ("2026-12-07T01:00:00z", "2026-12-07T01:00:00.000000+00:00"),
        ("2026-12-06T20:00:00-05:00", "2026-12-07T01:00:00Z"),
    ],
)
def test_two_spellings_of_one_instant_are_the_same_timestamp(a: str, b: str) -> None:
    assert compare.same_instant(a, b)
    assert compare.same_value(a, b)


@pytest.mark.parametrize("text", ["2026-12-07T01:00:00", "2026-12-07", "soon", 5, None])
def test_a_timestamp_without_offset_or_no_timestamp_is_no_instant(text: object) -> None:
    assert compare.instant(text) is None
    assert not compare.same_instant(text, text)


def test_different_instants_differ() -> None:
    assert not compare.same_instant("2026-12-07T01:00:00Z", "2026-12-07T01:00:00+08:00")


@pytest.mark.parametrize(("value", "expected"), [(25, 25), (25.0, 25), (0.0, 0), (-3, -3)])
def test_integers_are_read_numerically(value: object, expected: int) -> None:
    assert compare.integer(value) == expected
    assert compare.is_integer(value)


@pytest.mark.parametrize("value", [True, False, 25.5, "25", None, [25]])
def test_a_boolean_a_fraction_or_a_string_is_no_integer(value: object) -> None:
    assert compare.integer(value) is None
    assert not compare.is_integer(value)


def test_a_boolean_equals_only_a_boolean() -> None:
    assert not compare.same_value(True, 1)
    assert not compare.same_value(0, False)
    assert compare.same_value(25, 25.0)
    assert compare.same_value({"a": [1, True]}, {"a": [1.0, True]})
    assert not compare.same_value({"a": 1}, {"a": 1, "b": 2})


def test_entries_compare_on_the_members_the_table_defines() -> None:
    other = copy.deepcopy(ENTRY)
    other["vendor_note"] = "extra members are allowed"
    other["provider"]["contact"] = "extra"
    other["items"][1]["sensitive"] = False  # the default, written out
    other["items"][0]["length"] = 18.0
    other["updated_at"] = "2026-12-07T09:00:00.000+08:00"
    assert compare.same_entry(other, ENTRY)
    assert compare.differing_members(other, ENTRY, compare.CATALOG_ENTRY_MEMBERS) == []


def test_entries_differ_where_a_defined_member_differs() -> None:
    other = copy.deepcopy(ENTRY)
    other["items"][0]["mask"] = "NAME"
    other["updated_at"] = "2026-12-07T01:00:01Z"
    del other["related_codes"]
    assert compare.differing_members(other, ENTRY, compare.CATALOG_ENTRY_MEMBERS) == [
        "items[0].mask",
        "related_codes",
        "updated_at",
    ]


def test_an_optional_member_absent_from_both_is_equal() -> None:
    a = {"name": "x", "data_type": "I"}
    assert compare.same_members(a, dict(a), compare.ITEM_MEMBERS)
    assert not compare.same_members(a, {**a, "length": 3}, compare.ITEM_MEMBERS)


@pytest.mark.parametrize(
    "value", ["330000,330100", "330000, 330100", " 330000 ,\t330100 ", "330000,,330100"]
)
def test_a_route_splits_on_commas_with_whitespace_ignored(value: str) -> None:
    assert compare.route_ids(value) == ["330000", "330100"]


def test_an_absent_route_is_empty() -> None:
    assert compare.route_ids(None) == []
    assert compare.route_ids("") == []


def test_strings_order_by_code_point() -> None:
    codes = ["101001/000001", "101001/000002", "1010010/00001", "101001a/1", "Z", "a", "人"]
    assert compare.out_of_order(codes) is None
    assert compare.by_code_point(reversed(codes)) == codes
    # "/" (U+002F) sorts before "0" (U+0030) and upper case before lower case, unlike a locale.
    assert compare.out_of_order(["101001a", "101001/"]) == 1
    assert compare.out_of_order(["b", "B"]) == 1
