"""The cascade rules of the reference node that need no server: entries, pushes, subtrees, hops."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from starlette.requests import Request

from conformance.reference.cascade import entry_problem, parse_push
from conformance.reference.config import ChildConfig
from conformance.reference.errors import AtsError
from conformance.reference.routing import hop_limit, in_subtree, route_header

TODAY = date(2026, 11, 25)
DEPARTMENT = "11110000000013127H"

VALID_ENTRY: dict[str, Any] = {
    "resource_code": "101001/330101",
    "name": "常住人口统计",
    "classification": {"type": "BASE", "path": ["人口", "户籍", "常住人口"]},
    "provider": {"name": "杭州市统计局", "code": "330100"},
    "summary": "按区县统计的常住人口",
    "format": {"kind": "DATABASE", "type": "json"},
    "items": [
        {"name": "region", "data_type": "C", "length": 6, "semantic": "DIVISION_CODE"},
        {"name": "count", "data_type": "I"},
    ],
    "share": {"type": "UNCONDITIONAL", "condition": "", "method": "API"},
    "open": {"open": False, "condition": "不开放"},
    "update_cycle": "YEARLY",
    "published_at": "2024-01-01",
    "related_codes": [],
    "node_id": "330100",
    "updated_at": "2024-01-02T08:00:00+08:00",
}


def _changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    entry = copy.deepcopy(VALID_ENTRY)
    target = entry
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return entry


def test_a_valid_entry_has_no_problem() -> None:
    assert entry_problem(VALID_ENTRY, TODAY) is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("classification", "type"), "TOPIC", id="classification disagrees with code"),
        pytest.param(("classification", "path"), ["人口", "户籍"], id="path too short"),
        pytest.param(("provider", "code"), "990000", id="provider code is no division"),
        pytest.param(("provider", "code"), DEPARTMENT[:-1] + "X", id="bad credit code"),
        pytest.param(("published_at",), "2027-01-01", id="published in the future"),
        pytest.param(("updated_at",), "2023-12-31T08:00:00+08:00", id="updated before publishing"),
        pytest.param(("related_codes",), ["101001"], id="malformed related code"),
        pytest.param(("share", "condition"), "", id="conditional share without condition"),
        pytest.param(("update_cycle",), "HOURLY", id="unknown update cycle"),
    ],
)
def test_an_entry_breaking_the_table_has_a_problem(path: tuple[Any, ...], value: Any) -> None:
    entry = _changed(path, value)
    if path == ("share", "condition"):
        entry["share"]["type"] = "CONDITIONAL"
    assert entry_problem(entry, TODAY)


def test_duplicate_item_names_are_a_problem() -> None:
    entry = copy.deepcopy(VALID_ENTRY)
    entry["items"][1]["name"] = "region"
    assert "unique" in str(entry_problem(entry, TODAY))


def test_a_missing_field_is_a_problem() -> None:
    entry = copy.deepcopy(VALID_ENTRY)
    del entry["update_cycle"]
    assert entry_problem(entry, TODAY)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="not JSON"),
        pytest.param(b"[]", id="not an object"),
        pytest.param(
            b'{"source_node_id":"330100","seq":0,"full":true,"entries":[],"deleted":[]}',
            id="seq zero",
        ),
        pytest.param(
            b'{"source_node_id":"330100","seq":true,"full":true,"entries":[],"deleted":[]}',
            id="seq boolean",
        ),
        pytest.param(
            b'{"source_node_id":"330100","seq":1,"full":"yes","entries":[],"deleted":[]}',
            id="full not boolean",
        ),
        pytest.param(
            b'{"source_node_id":"330100","seq":1,"full":true,"entries":[1],"deleted":[]}',
            id="entry not an object",
        ),
        pytest.param(
            b'{"source_node_id":"330100","seq":1,"full":true,"entries":[]}', id="deleted missing"
        ),
    ],
)
def test_a_malformed_push_answers_400(body: bytes) -> None:
    with pytest.raises(AtsError) as raised:
        parse_push(body)
    assert (raised.value.status, raised.value.code) == (400, "INVALID_REQUEST")


def test_a_well_formed_push_is_parsed() -> None:
    push = parse_push(
        b'{"source_node_id":"330100","seq":3,"full":false,"entries":[],"deleted":["101001/330101"]}'
    )
    assert (push.source_node_id, push.seq, push.full, push.deleted) == (
        "330100",
        3,
        False,
        ("101001/330101",),
    )


def _child(node_id: str, level: str) -> ChildConfig:
    return ChildConfig(node_id, "n", level, "http://127.0.0.1:1", "node-x", "s" * 32)


@pytest.mark.parametrize(
    ("node_id", "child", "inside"),
    [
        ("330000", _child("330000", "provincial"), True),
        ("330100", _child("330000", "provincial"), True),
        ("330102", _child("330000", "provincial"), True),
        ("320100", _child("330000", "provincial"), False),
        ("100000", _child("330000", "provincial"), False),
        ("330102", _child("330100", "municipal"), False),
        (DEPARTMENT, _child(DEPARTMENT, "department"), True),
        ("110000", _child(DEPARTMENT, "department"), False),
    ],
)
def test_a_subtree_is_the_child_and_for_a_province_its_divisions(
    node_id: str, child: ChildConfig, inside: bool
) -> None:
    assert in_subtree(node_id, child) is inside


def _request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw})


@pytest.mark.parametrize("value", ["0", "9", "-1", "abc", "1.5", "", "٣"])
def test_a_hop_limit_outside_1_to_8_answers_400(value: str) -> None:
    with pytest.raises(AtsError) as raised:
        hop_limit(_request(x_hop_limit=value))
    assert raised.value.status == 400


def test_an_absent_hop_limit_lets_the_first_forward_carry_7() -> None:
    assert hop_limit(_request()) - 1 == 7
    assert hop_limit(_request(x_hop_limit="3")) == 3


def test_the_route_of_an_answer_ends_with_the_answering_node() -> None:
    assert route_header(_request(), "330000") == "330000"
    assert route_header(_request(x_route="100000, 330000"), "330100") == "100000,330000,330100"
