"""Every fault switch of chapters 1-7 and 9-12 makes the node break its clause, visibly.

Each probe runs against a node with only that fault on and asserts the defect a conformance
check must catch; the clean node passes the same assertions' opposite in the other test files.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from refnode import CATALOG, ROLES, Node, ThreadNode, start_thread_node

from conformance import codes, signing
from conformance.reference.faults import FAULTS

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = {e["resource_code"]: e for e in CATALOG["entries"]}
PURPOSE = "用于跨部门业务协同办理的数据核验"
UNCONDITIONAL = ROLES["unconditional"]
CONDITIONAL = ROLES["conditional"]
POPULATION = ROLES["population"]
TYPED = "207001/330015"

PROBES: dict[str, Callable[[Node], None]] = {}


def probe(name: str) -> Callable[[Callable[[Node], None]], Callable[[Node], None]]:
    def register(function: Callable[[Node], None]) -> Callable[[Node], None]:
        assert name in FAULTS, name
        PROBES[name] = function
        return function

    return register


def _subscribe(node: Node, code: str, app: str = "consumer", **extra: object) -> str:
    body = {"resource_code": code, "purpose": PURPOSE, **extra}
    response = node.call("POST", "/api/v1/subscriptions", app=app, json_body=body)
    assert response.status_code == 201, response.text
    return str(response.json()["subscription_id"])


def _decide(node: Node, subscription_id: str, decision: str) -> int:
    return node.call(
        "POST",
        f"/api/v1/subscriptions/{subscription_id}/decision",
        app="admin",
        json_body={"decision": decision},
    ).status_code


@probe("no-request-id")
def _(node: Node) -> None:
    assert "x-request-id" not in node.call("GET", "/api/v1/health", app=None).headers


@probe("wrong-request-id")
def _(node: Node) -> None:
    sent = {"X-Request-Id": "echo-me-12345"}
    assert node.call("GET", "/api/v1/node", headers=sent).headers["x-request-id"] != "echo-me-12345"


@probe("wrong-error-body")
def _(node: Node) -> None:
    assert "code" not in node.call("GET", "/api/v1/nowhere").json()


@probe("non-json-content-type")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/node").headers["content-type"].startswith("text/plain")


@probe("unknown-path-200")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/nowhere").status_code == 200


@probe("no-405-allow")
def _(node: Node) -> None:
    response = node.call("POST", "/api/v1/node")
    assert response.status_code == 405
    assert "allow" not in response.headers


@probe("incomplete-405-allow")
def _(node: Node) -> None:
    response = node.call("PUT", "/api/v1/subscriptions")
    assert response.status_code == 405
    assert "GET" not in response.headers["allow"]


@probe("500-on-bad-json")
def _(node: Node) -> None:
    assert node.call("POST", f"/api/v1/share/{UNCONDITIONAL}/query", body=b"{").status_code == 500


@probe("reject-unknown-members")
def _(node: Node) -> None:
    assert node.query(UNCONDITIONAL, {"extra": 1}).status_code == 400


@probe("accept-repeated-param")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/catalog/resources?page=1&page=2").status_code == 200


@probe("accept-oversized-body")
def _(node: Node) -> None:
    body = b"{" + b" " * 1_100_000 + b"}"
    assert node.call("POST", f"/api/v1/share/{UNCONDITIONAL}/query", body=body).status_code == 200


@probe("auth-before-size-check")
def _(node: Node) -> None:
    body = b"{" + b" " * 1_100_000 + b"}"
    target = f"/api/v1/share/{UNCONDITIONAL}/query"
    assert node.call("POST", target, app=None, body=body).status_code == 401


@probe("leak-stack-trace")
def _(node: Node) -> None:
    text = node.call("POST", f"/api/v1/share/{UNCONDITIONAL}/query", body=b"{").text
    assert "Traceback" in text
    assert "JSONDecodeError" in text


@probe("server-version-header")
def _(node: Node) -> None:
    assert re.search(r"\d", node.call("GET", "/api/v1/health", app=None).headers["server"])


@probe("wrong-page-total")
def _(node: Node) -> None:
    answer = node.call("GET", "/api/v1/catalog/resources?size=100").json()
    assert answer["total"] != len(answer["items"])


@probe("unstable-page-order")
def _(node: Node) -> None:
    items = node.call("GET", "/api/v1/catalog/resources?size=100").json()["items"]
    listed = [e["resource_code"] for e in items]
    assert listed != sorted(listed)


@probe("accept-size-zero")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/catalog/resources?size=0").status_code == 200


@probe("timestamp-without-offset")
def _(node: Node) -> None:
    stamp = node.call("GET", "/api/v1/health", app=None).json()["time"]
    assert not re.search(r"(Z|[+-]\d\d:\d\d)$", stamp)


@probe("health-requires-auth")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/health", app=None).status_code == 401


@probe("bad-node-descriptor")
def _(node: Node) -> None:
    assert "standard_version" not in node.call("GET", "/api/v1/node").json()


@probe("no-sm3")
def _(node: Node) -> None:
    assert (
        "HMAC-SM3"
        not in node.call("GET", "/api/v1/node", signature_method="HMAC-SHA256").json()[
            "signature_methods"
        ]
    )
    assert node.call("GET", "/api/v1/node").status_code == 401


@probe("bad-node-id")
def _(node: Node) -> None:
    body = node.call("GET", "/api/v1/node").json()
    assert codes.node_id_problem(body["node_id"], body["level"], body["parent_id"]) is not None


@probe("wrong-node-level")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/node").json()["level"] != "provincial"


@probe("wrong-parent-id")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/node").json()["parent_id"] != "100000"


@probe("clock-skew")
def _(node: Node) -> None:
    from conformance.reference import clock

    stamp = clock.parse_rfc3339(node.call("GET", "/api/v1/health", app=None).json()["time"])
    assert stamp is not None
    assert stamp.timestamp() - time.time() > 5


@probe("accept-missing-signature")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/node", app=None).status_code == 200


@probe("skip-signature-check")
def _(node: Node) -> None:
    headers = node.signed("GET", "/api/v1/catalog/resources?size=1")
    assert node.http.get("/api/v1/catalog/resources?size=2", headers=headers).status_code == 200


@probe("distinguish-unknown-app")
def _(node: Node) -> None:
    wrong = node.signed("GET", "/api/v1/node")
    wrong["X-Signature"] = "0" * 64
    unknown = signing.sign_headers(
        method="GET", target="/api/v1/node", body=b"", app_id="nobody", secret="s" * 40
    )
    a = node.http.get("/api/v1/node", headers=wrong).json()["message"]
    b = node.http.get("/api/v1/node", headers=unknown).json()["message"]
    assert a != b


@probe("no-clock-check")
def _(node: Node) -> None:
    stamp = int(time.time() * 1000) - 1_000_000
    headers = node.signed("GET", "/api/v1/node", timestamp=stamp)
    assert node.http.get("/api/v1/node", headers=headers).status_code == 200


@probe("tight-clock-window")
def _(node: Node) -> None:
    stamp = int(time.time() * 1000) - 120_000
    headers = node.signed("GET", "/api/v1/node", timestamp=stamp)
    assert node.http.get("/api/v1/node", headers=headers).status_code == 401


@probe("accept-replayed-nonce")
def _(node: Node) -> None:
    nonce = signing.new_nonce()
    for _ in range(2):
        headers = node.signed("GET", "/api/v1/node", nonce=nonce)
        assert node.http.get("/api/v1/node", headers=headers).status_code == 200


@probe("no-sha256")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/node", signature_method="HMAC-SHA256").status_code == 401


@probe("missing-role-check")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/audit/events", app="consumer").status_code == 200


@probe("catalog-missing-field")
def _(node: Node) -> None:
    assert (
        "update_cycle" not in node.call("GET", f"/api/v1/catalog/resources/{UNCONDITIONAL}").json()
    )


@probe("bad-classification")
def _(node: Node) -> None:
    entry = node.call("GET", f"/api/v1/catalog/resources/{UNCONDITIONAL}").json()
    assert codes.resource_code_problem(entry["resource_code"], entry["classification"]["type"])


@probe("duplicate-catalog-entry")
def _(node: Node) -> None:
    items = node.call("GET", "/api/v1/catalog/resources?size=100").json()["items"]
    listed = [e["resource_code"] for e in items]
    assert len(listed) != len(set(listed))


@probe("catalog-get-unknown-200")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/catalog/resources/199999/999999").status_code == 200


@probe("ignore-catalog-filters")
def _(node: Node) -> None:
    answer = node.call("GET", "/api/v1/catalog/resources?size=100&share_type=NOT_SHARED").json()
    assert any(e["share"]["type"] != "NOT_SHARED" for e in answer["items"])


@probe("dangling-related-code")
def _(node: Node) -> None:
    entry = node.call("GET", f"/api/v1/catalog/resources/{UNCONDITIONAL}").json()
    assert any(
        node.call("GET", f"/api/v1/catalog/resources/{c}").status_code == 404
        for c in entry["related_codes"]
    )


@probe("undeclared-item-in-records")
def _(node: Node) -> None:
    declared = {i["name"] for i in ENTRIES[UNCONDITIONAL]["items"]}
    record = node.query(UNCONDITIONAL).json()["items"][0]
    assert set(record) - declared


@probe("wrong-data-type")
def _(node: Node) -> None:
    record = node.query(TYPED).json()["items"][0]
    assert isinstance(record["time_limit_days"], str)


@probe("ignore-fields")
def _(node: Node) -> None:
    record = node.query(UNCONDITIONAL, {"fields": ["uscc"]}).json()["items"][0]
    assert set(record) != {"uscc"}


@probe("accept-undeclared-item")
def _(node: Node) -> None:
    assert node.query(UNCONDITIONAL, {"fields": ["no_such_item"]}).status_code == 200


@probe("loose-filter")
def _(node: Node) -> None:
    days = CATALOG["records"][TYPED][0]["time_limit_days"]
    assert node.query(TYPED, {"filter": {"time_limit_days": str(days)}}).status_code == 200


@probe("ignore-filter")
def _(node: Node) -> None:
    assert node.query(POPULATION, {"filter": {"gender": "?"}}).json()["total"] > 0


@probe("no-subscription-check")
def _(node: Node) -> None:
    assert node.query(CONDITIONAL).status_code == 200


@probe("serve-not-shared")
def _(node: Node) -> None:
    assert node.query(ROLES["not_shared"]).status_code != 403


@probe("hide-not-shared")
def _(node: Node) -> None:
    assert node.call("GET", f"/api/v1/catalog/resources/{ROLES['not_shared']}").status_code == 404


@probe("bad-check-character-in-records")
def _(node: Node) -> None:
    record = node.query(UNCONDITIONAL).json()["items"][0]
    assert codes.uscc_problem(record["uscc"]) is not None


@probe("forward-malformed-code")
def _(node: Node) -> None:
    assert node.query("not-a-code").status_code == 502


@probe("unconditional-subscription-pending")
def _(node: Node) -> None:
    subscription_id = _subscribe(node, UNCONDITIONAL)
    status = node.call("GET", f"/api/v1/subscriptions/{subscription_id}", app="consumer").json()
    assert status["status"] == "PENDING"


@probe("subscribe-not-shared")
def _(node: Node) -> None:
    _subscribe(node, ROLES["not_shared"])


@probe("show-foreign-subscriptions")
def _(node: Node) -> None:
    subscription_id = _subscribe(node, CONDITIONAL, app="consumer")
    seen = node.call("GET", f"/api/v1/subscriptions/{subscription_id}", app="consumer_b")
    assert seen.status_code == 200


@probe("redecide-subscription")
def _(node: Node) -> None:
    subscription_id = _subscribe(node, CONDITIONAL)
    assert _decide(node, subscription_id, "REJECT") == 200
    assert _decide(node, subscription_id, "APPROVE") == 200


@probe("ignore-approved-items")
def _(node: Node) -> None:
    names = [i["name"] for i in ENTRIES[CONDITIONAL]["items"]]
    subscription_id = _subscribe(node, CONDITIONAL, fields=names[:1])
    assert _decide(node, subscription_id, "APPROVE") == 200
    record = node.query(CONDITIONAL, app="consumer").json()["items"][0]
    assert set(record) != {names[0]}


@probe("ignore-revocation")
def _(node: Node) -> None:
    subscription_id = _subscribe(node, CONDITIONAL)
    assert _decide(node, subscription_id, "APPROVE") == 200
    node.call("DELETE", f"/api/v1/subscriptions/{subscription_id}", app="admin")
    assert node.query(CONDITIONAL, app="consumer").status_code == 200


@probe("skip-masking")
def _(node: Node) -> None:
    answer = node.query(POPULATION, {"size": 1}).json()
    assert answer["masked"] == []
    assert answer["items"] == CATALOG["records"][POPULATION][:1]


@probe("wrong-mask")
def _(node: Node) -> None:
    shown = node.query(POPULATION, {"size": 1}).json()["items"][0]["id_number"]
    assert shown != codes.mask(CATALOG["records"][POPULATION][0]["id_number"], "ID_NUMBER")


@probe("mask-unmasked-grant")
def _(node: Node) -> None:
    body = {"resource_code": POPULATION, "purpose": PURPOSE, "unmasked": True}
    made = node.call("POST", "/api/v1/subscriptions", app="consumer", json_body=body).json()
    assert _decide(node, str(made["subscription_id"]), "APPROVE") == 200
    answer = node.query(POPULATION, {"size": 1}).json()
    assert answer["masked"]
    assert answer["items"] != CATALOG["records"][POPULATION][:1]


@probe("unmarked-sensitive-item")
def _(node: Node) -> None:
    entry = node.call("GET", f"/api/v1/catalog/resources/{POPULATION}").json()
    phone = next(i for i in entry["items"] if i.get("semantic") == "PHONE")
    assert not phone.get("sensitive")


@probe("mask-breaks-filter")
def _(node: Node) -> None:
    real = CATALOG["records"][POPULATION][0]["id_number"]
    assert node.query(POPULATION, {"filter": {"id_number": real}}).json()["total"] == 0


@probe("leak-filter-value-in-error")
def _(node: Node) -> None:
    response = node.query(POPULATION, {"filter": {"id_number": 987654321}})
    assert response.status_code == 400
    assert "987654321" in response.text


def _events(node: Node, request_id: str) -> list[dict]:
    time.sleep(0.2)
    answer = node.call("GET", f"/api/v1/audit/events?request_id={request_id}", app="admin")
    return list(answer.json()["items"])


@probe("audit-records-filter-values")
def _(node: Node) -> None:
    real = CATALOG["records"][POPULATION][0]["id_number"]
    headers = {"X-Request-Id": "filtered-query-0001"}
    target = f"/api/v1/share/{POPULATION}/query"
    body = {"filter": {"id_number": real}}
    node.call("POST", target, app="consumer", json_body=body, headers=headers)
    assert [e.get("filter") for e in _events(node, "filtered-query-0001")] == [{"id_number": real}]


@probe("no-audit-on-denied")
def _(node: Node) -> None:
    headers = {"X-Request-Id": "denied-query-0001"}
    target = f"/api/v1/share/{CONDITIONAL}/query"
    assert (
        node.call("POST", target, app="consumer", json_body={}, headers=headers).status_code == 403
    )
    assert _events(node, "denied-query-0001") == []


@probe("no-auth-failure-audit")
def _(node: Node) -> None:
    node.call("GET", "/api/v1/node", app=None, headers={"X-Request-Id": "unsigned-0001"})
    assert _events(node, "unsigned-0001") == []


@probe("mutable-audit")
def _(node: Node) -> None:
    node.query(UNCONDITIONAL)
    assert node.call("DELETE", "/api/v1/audit/events", app="admin").status_code == 200


@probe("wrong-stats-types")
def _(node: Node) -> None:
    rate = node.call("GET", "/api/v1/stats", app="admin").json()["connectivity_rate"]
    assert isinstance(rate, str)


@probe("no-call-counting")
def _(node: Node) -> None:
    node.query(UNCONDITIONAL)
    assert node.call("GET", "/api/v1/stats", app="admin").json()["calls_total"] == 0


@probe("stale-connectivity")
def _(node: Node) -> None:
    # The test node's only child is down: a real probe would answer 0.
    assert node.call("GET", "/api/v1/stats", app="admin").json()["connectivity_rate"] == 1


@probe("no-nosniff")
def _(node: Node) -> None:
    assert "x-content-type-options" not in node.call("GET", "/api/v1/node").headers


@probe("no-cache-control")
def _(node: Node) -> None:
    assert "cache-control" not in node.call("GET", "/api/v1/catalog/resources").headers


def _burst(node: Node) -> list:
    return [node.call("GET", "/api/v1/node", app="consumer") for _ in range(110)]


@probe("no-rate-limit")
def _(node: Node) -> None:
    assert all(r.status_code == 200 for r in _burst(node))


@probe("no-retry-after")
def _(node: Node) -> None:
    limited = [r for r in _burst(node) if r.status_code == 429]
    assert limited
    assert all("retry-after" not in r.headers for r in limited)


@probe("wildcard-cors")
def _(node: Node) -> None:
    headers = {"Origin": "https://evil.example"}
    assert (
        node.call("GET", "/api/v1/node", headers=headers).headers["access-control-allow-origin"]
        == "*"
    )


@probe("slow-share-query")
def _(node: Node) -> None:
    started = time.monotonic()
    assert node.query(UNCONDITIONAL).status_code == 200
    assert time.monotonic() - started >= 0.6


@probe("slow-catalog-page")
def _(node: Node) -> None:
    started = time.monotonic()
    assert node.call("GET", "/api/v1/catalog/resources?size=100").status_code == 200
    assert time.monotonic() - started >= 0.8
    started = time.monotonic()
    assert node.call("GET", "/api/v1/catalog/resources?size=20").status_code == 200
    assert time.monotonic() - started < 0.8


@probe("5xx-under-concurrency")
def _(node: Node) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: node.query(UNCONDITIONAL), range(8)))
    assert 503 in {a.status_code for a in answers}
    assert all(a.json()["code"] == "UNAVAILABLE" for a in answers if a.status_code == 503)


@probe("page-starts-early")
def _(node: Node) -> None:
    first = node.call("GET", "/api/v1/catalog/resources?page=1&size=3").json()["items"]
    second = node.call("GET", "/api/v1/catalog/resources?page=2&size=3").json()["items"]
    assert second[0] == first[-1]


@probe("signature-ignores-query")
def _(node: Node) -> None:
    headers = node.signed("GET", "/api/v1/catalog/resources")
    assert node.http.get("/api/v1/catalog/resources?size=2", headers=headers).status_code == 200


@probe("unsorted-canonical-query")
def _(node: Node) -> None:
    target = "/api/v1/catalog/resources?size=2&page=1"
    assert node.http.get(target, headers=node.signed("GET", target)).status_code == 401
    target = "/api/v1/catalog/resources?page=1&size=2"
    assert node.http.get(target, headers=node.signed("GET", target)).status_code == 200


@probe("subscription-audit-pages-overlap")
def _(node: Node) -> None:
    for _ in range(3):
        _subscribe(node, UNCONDITIONAL)
    for path in ("/api/v1/subscriptions", "/api/v1/audit/events"):
        first = node.call("GET", f"{path}?page=1&size=2", app="admin").json()["items"]
        second = node.call("GET", f"{path}?page=2&size=2", app="admin").json()["items"]
        assert second[0] == first[-1], path


@probe("substring-filter")
def _(node: Node) -> None:
    answer = node.query(POPULATION, {"filter": {"address": "浙江省"}, "fields": ["gender"]})
    assert answer.status_code == 200
    assert answer.json()["total"] > 1


@probe("unsigned-catalog")
def _(node: Node) -> None:
    assert node.call("GET", "/api/v1/catalog/resources", app=None).status_code == 200
    assert node.call("GET", "/api/v1/node", app=None).status_code == 401


@probe("phone-without-semantic")
def _(node: Node) -> None:
    entry = node.call("GET", f"/api/v1/catalog/resources/{POPULATION}").json()
    phone = next(i for i in entry["items"] if i["name"] == "phone")
    assert "semantic" not in phone
    assert not phone.get("sensitive")
    record = node.query(POPULATION, {"fields": ["phone"]}).json()["items"][0]
    assert "*" not in record["phone"]


@pytest.fixture
def faulty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadNode]:
    running = start_thread_node(tmp_path, [request.param])
    yield running
    running.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("faulty", sorted(PROBES), indirect=True)
def test_the_fault_breaks_its_clause(faulty: ThreadNode) -> None:
    name = next(iter(faulty.faults))
    PROBES[name](faulty)


def test_the_fault_table_lists_exactly_the_faults() -> None:
    text = (ROOT / "docs" / "reference-node.md").read_text("utf-8")
    # The fault table's section only: the variant table beside it has rows of its own.
    text = text.split("## Fault switches", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (.+?) \| (.+?) \|$", text, re.MULTILINE)
    assert [name for name, _, _ in rows] == sorted(FAULTS)
    for name, _, clauses in rows:
        assert clauses.split(", ") == list(FAULTS[name].clauses)
