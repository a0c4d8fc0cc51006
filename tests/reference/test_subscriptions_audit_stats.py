"""Chapters 6 (SUB), 9 (AUD), 10 (STAT) and the rate limit of ATS-SEC-03."""

from __future__ import annotations

import time

import pytest
from refnode import CATALOG, ROLES, Node
from test_api import assert_error

from conformance import signing

ENTRIES = {e["resource_code"]: e for e in CATALOG["entries"]}
PURPOSE = "用于跨部门业务协同办理的数据核验"


def _subscribe(node: Node, code: str, app: str = "consumer", **extra) -> dict:
    response = node.call(
        "POST",
        "/api/v1/subscriptions",
        app=app,
        json_body={"resource_code": code, "purpose": PURPOSE, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _decide(node: Node, subscription_id: str, decision: str):
    return node.call(
        "POST",
        f"/api/v1/subscriptions/{subscription_id}/decision",
        app="admin",
        json_body={"decision": decision, "reason": "审核意见"},
    )


def test_an_unconditional_subscription_is_approved_at_once(node: Node) -> None:
    made = _subscribe(node, ROLES["unconditional"])
    assert made["status"] == "APPROVED"
    assert set(made) >= {
        "subscription_id",
        "status",
        "resource_code",
        "app_id",
        "fields",
        "unmasked",
        "purpose",
        "created_at",
    }
    assert _subscribe(node, ROLES["unconditional"], unmasked=True)["status"] == "PENDING"
    assert _subscribe(node, ROLES["conditional"])["status"] == "PENDING"


def test_subscribing_to_not_shared_or_undeclared_items_is_refused(node: Node) -> None:
    body = {"resource_code": ROLES["not_shared"], "purpose": PURPOSE}
    assert_error(
        node.call("POST", "/api/v1/subscriptions", app="consumer", json_body=body), 403, "FORBIDDEN"
    )
    body = {"resource_code": ROLES["conditional"], "purpose": PURPOSE, "fields": ["nope"]}
    assert_error(
        node.call("POST", "/api/v1/subscriptions", app="consumer", json_body=body),
        400,
        "INVALID_REQUEST",
    )
    body = {"resource_code": ROLES["conditional"], "purpose": "short"}
    assert_error(
        node.call("POST", "/api/v1/subscriptions", app="consumer", json_body=body),
        400,
        "INVALID_REQUEST",
    )


def test_a_consumer_sees_only_its_own_subscriptions(node: Node) -> None:
    mine = _subscribe(node, ROLES["conditional"], app="consumer")
    assert_error(
        node.call("GET", f"/api/v1/subscriptions/{mine['subscription_id']}", app="consumer_b"),
        404,
        "NOT_FOUND",
    )
    theirs = _subscribe(node, ROLES["conditional"], app="consumer_b")
    listed = node.call("GET", "/api/v1/subscriptions?size=100", app="consumer_b").json()
    assert theirs["subscription_id"] in {s["subscription_id"] for s in listed["items"]}
    assert all(s["app_id"] == "consumer-b" for s in listed["items"])
    everything = node.call("GET", "/api/v1/subscriptions?size=100", app="admin").json()
    assert mine["subscription_id"] in {s["subscription_id"] for s in everything["items"]}
    ordered = [(s["created_at"], s["subscription_id"]) for s in everything["items"]]
    assert ordered == sorted(ordered)


def test_the_approval_workflow_of_a_conditional_resource(node: Node) -> None:
    code = ROLES["conditional"]
    names = [i["name"] for i in ENTRIES[code]["items"]]
    assert_error(node.query(code, app="consumer_b"), 403, "SUBSCRIPTION_REQUIRED")
    made = _subscribe(node, code, app="consumer_b", fields=names[:2])
    by_consumer = node.call(
        "POST",
        f"/api/v1/subscriptions/{made['subscription_id']}/decision",
        app="consumer_b",
        json_body={"decision": "APPROVE"},
    )
    assert_error(by_consumer, 403, "FORBIDDEN")
    approved = _decide(node, made["subscription_id"], "APPROVE")
    assert approved.status_code == 200
    assert approved.json()["status"] == "APPROVED"
    assert_error(_decide(node, made["subscription_id"], "REJECT"), 409, "CONFLICT")
    answer = node.query(code, app="consumer_b").json()
    assert answer["items"]
    assert all(list(r) == names[:2] for r in answer["items"])
    assert_error(node.query(code, {"fields": [names[2]]}, app="consumer_b"), 403, "FORBIDDEN")
    revoked = node.call("DELETE", f"/api/v1/subscriptions/{made['subscription_id']}", app="admin")
    assert revoked.json()["status"] == "REVOKED"
    assert_error(node.query(code, app="consumer_b"), 403, "SUBSCRIPTION_REQUIRED")
    again = node.call("DELETE", f"/api/v1/subscriptions/{made['subscription_id']}", app="admin")
    assert_error(again, 409, "CONFLICT")


def test_a_rejected_subscription_keeps_queries_refused(node: Node) -> None:
    code = "101001001/330005"
    made = _subscribe(node, code, app="consumer_b")
    assert _decide(node, made["subscription_id"], "REJECT").json()["status"] == "REJECTED"
    assert_error(node.query(code, app="consumer_b"), 403, "SUBSCRIPTION_REQUIRED")


def test_an_unmasked_subscription_lifts_masking(node: Node) -> None:
    code = ROLES["population"]
    made = _subscribe(node, code, app="consumer_b", unmasked=True)
    _decide(node, made["subscription_id"], "APPROVE")
    answer = node.query(code, {"size": 3}, app="consumer_b").json()
    assert answer["masked"] == []
    assert answer["items"] == CATALOG["records"][code][:3]


def _events(node: Node, query: str) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        found = node.call("GET", f"/api/v1/audit/events?size=100&{query}", app="admin").json()[
            "items"
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("app", "request_body", "status", "outcome"),
    [
        ("load", {}, 200, "ALLOWED"),
        ("load", {"fields": ["x"]}, 400, "DENIED"),
        ("admin", {}, 403, "DENIED"),
    ],
)
def test_every_share_query_is_audited(node: Node, app, request_body, status, outcome) -> None:
    request_id = "audit-" + signing.new_nonce()[:20]
    code = ROLES["unconditional"]
    response = node.call(
        "POST",
        f"/api/v1/share/{code}/query",
        app=app,
        json_body=request_body,
        headers={"X-Request-Id": request_id},
    )
    assert response.status_code == status
    (event,) = _events(node, f"request_id={request_id}")
    assert event["action"] == "QUERY"
    assert (event["status"], event["outcome"]) == (status, outcome)
    assert event["resource_code"] == code
    assert event["origin_node"] == "330000"
    assert event["origin_app"] == node.apps[app].app_id


def test_every_401_is_an_auth_failure_with_the_claimed_app(node: Node) -> None:
    request_id = "auth-" + signing.new_nonce()[:20]
    headers = node.signed("GET", "/api/v1/node")
    headers.update({"X-Signature": "00" * 32, "X-Request-Id": request_id})
    assert node.http.get("/api/v1/node", headers=headers).status_code == 401
    (event,) = _events(node, f"request_id={request_id}")
    assert (event["action"], event["app_id"], event["outcome"]) == (
        "AUTH_FAILURE",
        "load",
        "DENIED",
    )
    unsigned = "anon-" + signing.new_nonce()[:20]
    node.call("GET", "/api/v1/node", app=None, headers={"X-Request-Id": unsigned})
    (event,) = _events(node, f"request_id={unsigned}")
    assert event["app_id"] is None


def test_the_audit_trail_is_append_only(node: Node) -> None:
    before = node.call("GET", "/api/v1/audit/events?size=5", app="admin").json()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert_error(
            node.call(method, "/api/v1/audit/events", app="admin"), 405, "METHOD_NOT_ALLOWED"
        )
    after = node.call("GET", "/api/v1/audit/events?size=5", app="admin").json()
    assert after["items"] == before["items"]
    ids = [e["event_id"] for e in after["items"]]
    assert ids == sorted(ids)


def test_audit_events_filter_by_app_and_time(node: Node) -> None:
    # An event of consumer-b of this test's own, whatever ran before it on this node.
    assert node.query(ROLES["unconditional"], app="consumer_b").status_code == 200
    events = _events(node, "app_id=consumer-b")
    assert events
    assert all(e["app_id"] == "consumer-b" for e in events)
    late = node.call("GET", "/api/v1/audit/events?since=2999-01-01T00:00:00Z", app="admin").json()
    assert late["items"] == []
    assert late["total"] == 0
    assert_error(
        node.call("GET", "/api/v1/audit/events?since=soon", app="admin"), 400, "INVALID_REQUEST"
    )


def test_stats_answer_the_month(node: Node) -> None:
    before = node.call("GET", "/api/v1/stats", app="admin").json()
    local = CATALOG["entries"]
    assert before["resources_total"] == len(local)
    assert before["resources_shared"] == sum(1 for e in local if e["share"]["type"] != "NOT_SHARED")
    assert before["systems_integrated"] == 12
    node.query(ROLES["unconditional"])
    node.call("GET", "/api/v1/nowhere")
    after = node.call("GET", "/api/v1/stats", app="admin").json()
    assert after["calls_total"] >= before["calls_total"] + 3
    assert after["calls_failed"] >= before["calls_failed"] + 1
    assert after["collaborative_apps"] >= 1
    # Both neighbours of the test node are down.
    assert after["connectivity_rate"] == 0.0
    assert len(after["period"]) == 7


def test_a_burst_over_the_limit_draws_429_then_service_resumes(node: Node) -> None:
    target = "/api/v1/node"
    statuses = []
    retry_after = None
    for _ in range(100):
        response = node.call("GET", target, app="consumer")
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert_error(response, 429, "RATE_LIMITED")
            retry_after = int(response.headers["retry-after"])
    assert 429 in statuses
    assert retry_after is not None
    assert retry_after >= 1
    time.sleep(retry_after)
    assert node.call("GET", target, app="consumer").status_code == 200


def test_a_steady_rate_under_half_the_limit_is_never_limited(node: Node) -> None:
    time.sleep(1.1)
    for _ in range(30):
        assert node.call("GET", "/api/v1/node", app="consumer").status_code == 200
        time.sleep(0.05)
