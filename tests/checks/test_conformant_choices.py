"""Choices ATS leaves to a node are accepted: the checks judge by the standard, not by one node."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from data_node import data_node
from hypothesis import given, settings
from requests.structures import CaseInsensitiveDict
from support.stub import ROLES, stub_context

from conformance import schemas
from conformance.checks import (
    CheckContext,
    Finding,
    Inconclusive,
    RunState,
    _catalog_walk,
    registry,
)
from conformance.checks._catalog_walk import EntryRules, parse_offset, shape_problems
from conformance.checks._payloads import (
    GeneratedCase,
    _integral_number,
    corpus,
    invalid_list_queries,
)
from conformance.checks._records import value_problem
from conformance.checks.api import _content_type_problem, _judge_walk, _out_of_order
from conformance.checks.auth import _unserved_here
from conformance.checks.catalog import _differences
from conformance.client import EvidenceLog, Exchange, NodeClient
from conformance.data import data_dir
from conformance.profile import load_profile
from conformance.target import Target, load_target

LIMIT = 1_048_576


def _answer(status: int, reason: str, body: dict[str, object], close: bool) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nX-Request-Id: edge-0000001\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + data


class _EarlyRefusal(socketserver.StreamRequestHandler):
    """Answers an oversized body with 413 after its headers and drops the connection unread."""

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        header_block, _, rest = head.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(fields.get("content-length", "0"))
        if length > LIMIT:
            # ATS-API-06: refused before authentication; the node may close the connection.
            error = {"code": "PAYLOAD_TOO_LARGE", "message": "too large"}
            self.request.sendall(
                _answer(413, "Payload Too Large", {**error, "request_id": "edge-0000001"}, True)
            )
            self.request.shutdown(socket.SHUT_RDWR)
            return
        while len(rest) < length:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            rest += chunk
        body: dict[str, object] = {"rate_limit_per_app": 1000, "items": []}
        self.request.sendall(_answer(200, "OK", body, True))


@pytest.fixture
def early_refusal(tmp_path: Path) -> Iterator[CheckContext]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EarlyRefusal)
    server.daemon_threads = True
    codes = {role: f"101001/00000{n}" for n, role in enumerate(ROLES, start=1)}
    with stub_context(server, tmp_path, "ATS-API-06", codes) as ctx:
        yield ctx


@pytest.mark.timeout(60)
def test_a_connection_dropped_after_a_413_is_conformant(early_refusal: CheckContext) -> None:
    registry()["ATS-API-06"].function(early_refusal)


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; charset=UTF-8",
        'application/json;charset="utf-8"',
    ],
)
def test_json_content_types_with_or_without_charset_are_conformant(value: str) -> None:
    assert _content_type_problem(_with_content_type(value), "application/json", ["utf-8"]) is None


@pytest.mark.parametrize(
    "value",
    [
        "text/plain; charset=utf-8",
        "application/json; charset=gbk",
        "application/problem+json",
        "application/json; version=1",
    ],
)
def test_other_content_types_are_findings(value: str) -> None:
    assert _content_type_problem(_with_content_type(value), "application/json", ["utf-8"])


def _with_content_type(value: str) -> Exchange:
    return Exchange(
        "GET", "/api/v1/node", {}, b"", 200, CaseInsensitiveDict({"Content-Type": value}), b"{}", 0
    )


def test_a_walk_in_order_with_each_entry_once_passes() -> None:
    _judge_walk(["101001/000001", "101001/000002", "201001/000001"], 3)


@pytest.mark.parametrize(
    ("seen", "total", "message"),
    [
        (["101001/000001", "101001/000001"], 2, "more than once"),
        (["101001/000002", "101001/000001"], 2, "expected ascending"),
        (["101001/000001"], 2, "expected total 2"),
    ],
)
def test_a_broken_walk_is_a_finding(seen: list[str], total: int, message: str) -> None:
    with pytest.raises(Finding, match=message):
        _judge_walk(seen, total)


# -- Choices in the data chapters (ATS §4, §5, §6) --------------------------------------------

_SEED_CATALOG = data_dir("fixtures") / "catalogs" / "330000.json"


def _unconditional_entry() -> dict[str, Any]:
    seed = json.loads(_SEED_CATALOG.read_text("utf-8"))
    code = seed["roles"]["unconditional"]
    return next(e for e in seed["entries"] if e["resource_code"] == code)


def test_null_optional_item_members_read_as_absent() -> None:
    # ATS §4: length, semantic, sensitive and mask are optional; null spells "absent".
    entry = _unconditional_entry()
    for item in entry["items"]:
        item.setdefault("semantic", None)
        item.setdefault("mask", None)
        if item["data_type"] != "C":
            item["length"] = None
    rules = EntryRules(today=date(2100, 1, 1), zone=parse_offset("+08:00"), name_max_chars=100)
    required = load_profile("provincial").clause("ATS-CAT-01").params["required_fields"]
    assert shape_problems(entry, required) == []
    assert rules.problems(entry) == []


def test_a_null_length_of_a_character_item_is_still_missing() -> None:
    entry = _unconditional_entry()
    entry["items"][0]["length"] = None
    rules = EntryRules(today=date(2100, 1, 1), zone=parse_offset("+08:00"), name_max_chars=100)
    assert any("length" in line for line in rules.problems(entry))


def test_a_lookup_with_extra_members_and_another_offset_is_the_listed_entry() -> None:
    # ATS §4 allows extra members; ATS-API-09 lets one instant be written with any offset.
    listed = _unconditional_entry()
    table = load_profile("provincial").clause("ATS-CAT-01").params["required_fields"]
    looked_up = {**listed, "record_count": 120, "updated_at": "2020-11-29T14:05:56.000Z"}
    assert _differences(looked_up, listed, table) == []
    renamed = {**listed, "name": listed["name"] + "（副本）"}
    assert _differences(renamed, listed, table) == ["name"]


@pytest.mark.parametrize("subscription_id", ["sub-0001", 42])
def test_a_subscription_id_may_be_a_string_or_an_integer(subscription_id: object) -> None:
    # ATS §6 names subscription_id without fixing its JSON type.
    subscription = {
        "subscription_id": subscription_id,
        "status": "PENDING",
        "resource_code": "105001/330003",
        "app_id": "consumer-a",
        "fields": [],
        "unmasked": False,
        "purpose": "a purpose of ten characters or more",
        "created_at": "2017-08-15T09:30:00+08:00",
    }
    assert schemas.validation_errors("subscription", subscription) == []


@settings(max_examples=200, deadline=None, database=None)
@given(invalid_list_queries(100))
def test_no_generated_page_or_size_reads_as_a_whole_number(case: GeneratedCase) -> None:
    # Some stacks read page=1.0 as page 1; ATS-API-05 does not decide it, so it is never sent.
    for name, value in parse_qsl(str(case.payload), keep_blank_values=True):
        if name in ("page", "size") and "not an integer" in case.description:
            assert not _integral_number(value), case.payload


def _target_of_level(folder: Path, level: str) -> Target:
    path = folder / "target.yaml"
    node_id, parent_id = {"municipal": ("330100", "330000"), "provincial": ("330000", "100000")}[
        level
    ]
    path.write_text(
        yaml.safe_dump(
            {
                "node": {
                    "base_url": "http://127.0.0.1:1",
                    "level": level,
                    "node_id": node_id,
                    "parent_id": parent_id,
                },
                "apps": {
                    name: {"app_id": name.replace("_", "-"), "secret": "s" * 40}
                    for name in ("consumer", "consumer_b", "admin")
                },
                "resources": {
                    "unconditional": "101001/000001",
                    "conditional": "101001/000002",
                    "not_shared": "101001/000003",
                    "population": "101001/000004",
                },
                "lab": True,
            }
        ),
        "utf-8",
    )
    return load_target(path)


@pytest.mark.parametrize(("level", "may_lack"), [("municipal", True), ("provincial", False)])
def test_only_a_childless_node_may_lack_the_push_path(
    tmp_path: Path, level: str, may_lack: bool
) -> None:
    # ATS §0: municipal and department nodes have no children, so no catalog push reaches them.
    push = next(
        e for e in corpus("role-table")["endpoints"] if e["path"] == "/api/v1/cascade/catalog"
    )
    target = _target_of_level(tmp_path, level)
    ctx = CheckContext(
        clause=load_profile(level).clause("ATS-AUTH-08"),
        target=target,
        client=NodeClient(target, EvidenceLog(target.secrets())),
        run=RunState(),
        evidence=EvidenceLog(target.secrets()),
    )
    try:
        assert _unserved_here(ctx, push) is may_lack
    finally:
        ctx.client.close()


def _catalog_with_typed_items(folder: Path) -> Path:
    """The seed catalog with the unconditional resource holding boolean and integer items."""
    seed = json.loads(_SEED_CATALOG.read_text("utf-8"))
    code = seed["roles"]["unconditional"]
    entry = next(e for e in seed["entries"] if e["resource_code"] == code)
    entry["items"] = [
        {"name": "name", "data_type": "C", "length": 100},
        {"name": "active", "data_type": "L"},
        {"name": "staff", "data_type": "I"},
    ]
    seed["records"][code] = [
        {"name": f"单位{n:02d}", "active": n % 3 == 0, "staff": n % 4} for n in range(12)
    ]
    path = folder / "typed.json"
    path.write_text(json.dumps(seed, ensure_ascii=False), "utf-8")
    return path


@pytest.mark.timeout(180)
def test_a_filter_miss_keeps_the_item_type_so_a_strict_node_passes(tmp_path: Path) -> None:
    # ATS-SHR-03: the reference node answers 400 to a number for a boolean item or a fraction
    # for an integer one; the check's non-matching filters must stay well typed.
    catalog = _catalog_with_typed_items(tmp_path)
    with data_node(tmp_path, catalog=str(catalog)) as node:
        verdict, reason, _ = node.check("ATS-SHR-03")
    assert verdict == "PASS", reason


@pytest.mark.parametrize(
    "ids",
    [
        [1, 2, 10],
        [1.0, 2, 10.0],
        ["e-0001", "e-0002", "e-0010"],
        ["evt-10", "evt-11", "evt-9"],
        ["0b9e7c1a-8f2d-4c3e-9a11-2f6d", "5e0c2d4b-1a3f-4e5d-8b7c-9d0e", "c1f0e2d3-4b5a"],
        ["a1", "b", "c"],
    ],
)
def test_event_ids_ascending_as_numbers_or_text_are_in_order(ids: list[object]) -> None:
    # ATS-API-08 orders audit events by event_id, which ATS lets be a string or an integer;
    # strings by code point (Revision of 2026-12: "evt-10" before "evt-9"), numbers numerically.
    assert _out_of_order([{"event_id": i} for i in ids], ("event_id",)) is None


def test_subscriptions_ordered_by_instant_then_id_are_in_order() -> None:
    # The same instant written with two offsets is one time; the id breaks the tie.
    items = [
        {"created_at": "2017-08-15T01:30:00Z", "subscription_id": "s-2"},
        {"created_at": "2017-08-15T09:30:00.000+08:00", "subscription_id": "s-3"},
        {"created_at": "2017-08-15T09:30:01+08:00", "subscription_id": "s-1"},
    ]
    assert _out_of_order(items, ("created_at", "subscription_id")) is None


@pytest.mark.parametrize(
    ("items", "members"),
    [
        ([{"event_id": 10}, {"event_id": 9}], ("event_id",)),
        ([{"event_id": "evt-10"}, {"event_id": "evt-09"}], ("event_id",)),
        ([{"event_id": "evt-9"}, {"event_id": "evt-10"}], ("event_id",)),
        ([{"event_id": "b"}, {"event_id": "B"}], ("event_id",)),
        (
            [
                {"created_at": "2017-08-15T09:30:00+08:00", "subscription_id": "s-3"},
                {"created_at": "2017-08-15T01:30:00Z", "subscription_id": "s-2"},
            ],
            ("created_at", "subscription_id"),
        ),
    ],
)
def test_a_list_out_of_order_is_found(
    items: list[dict[str, object]], members: tuple[str, ...]
) -> None:
    assert _out_of_order(items, members) == (items[0], items[1])


class _EndlessCatalog(http.server.BaseHTTPRequestHandler):
    """A broken node: every catalog page is full and total claims a billion entries."""

    def do_GET(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        page, size = int(query.get("page", "1")), int(query.get("size", "20"))
        items = [{"resource_code": f"101001/{(page - 1) * size + n:06d}"} for n in range(size)]
        data = json.dumps({"items": items, "page": page, "size": size, "total": 10**9}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.mark.timeout(60)
@pytest.mark.parametrize("strict", [True, False])
def test_a_catalog_walk_stops_at_its_page_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EndlessCatalog)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(_catalog_walk, "MAX_PAGES", 3)
    target = _target_of_level(tmp_path, "provincial")
    document = yaml.safe_load(Path(target.source).read_text("utf-8"))
    document["node"]["base_url"] = f"http://127.0.0.1:{server.server_address[1]}"
    Path(target.source).write_text(yaml.safe_dump(document), "utf-8")
    target = load_target(Path(target.source))
    evidence = EvidenceLog(target.secrets())
    client = NodeClient(target, evidence)
    ctx = CheckContext(
        clause=load_profile("provincial").clause("ATS-CAT-01"),
        target=target,
        client=client,
        run=RunState(),
        evidence=evidence,
    )
    try:
        walk = _catalog_walk.CatalogWalk(ctx, strict=strict)
        with pytest.raises(Inconclusive, match="past 3 pages"):
            for _ in walk:
                pass
        assert walk.requests == 3
    finally:
        client.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ("aGVsbG8=", True),
        ("aGVsbG8", True),
        ("aGVs\r\nbG8=", True),
        ("a-_b", True),
        ("a+/b", True),
        ("", True),
        ("a+_b", False),
        ("abcde", False),
        ("aGVsbG8==", False),
        ("ab!c", False),
    ],
)
def test_a_base64_value_is_judged_by_what_the_text_says(value: str, fits: bool) -> None:
    # ATS-SHR-01 says "base64 string" only: either RFC 4648 alphabet, padded or not, one line or
    # MIME lines; a value that decodes to no whole bytes is none.
    problem = value_problem(value, {"name": "photo", "data_type": "B"})
    assert (problem is None) is fits, problem
