"""The reference node settles what the bundled description promises (issue 20).

A page has no digit bound (a page past the end has no items, ATS-API-08); ``1.0`` and ``3.0`` are
integers (ATS-API-09); a filter the description gives a pattern answers 400 when misshapen
(ATS-API-05).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from refnode import ROLES, ThreadNode, start_thread_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadNode]:
    running = start_thread_node(tmp_path_factory.mktemp("points"))
    yield running
    running.stop()


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/catalog/resources?page=1234567890",
        "/api/v1/catalog/resources?page=" + "9" * 40,
        "/api/v1/subscriptions?page=99999999999999999999",
        "/api/v1/audit/events?page=99999999999999999999&size=100",
    ],
)
def test_a_page_past_the_end_has_no_items_however_many_digits(
    node: ThreadNode, target: str
) -> None:
    app = "admin" if "audit" in target else "consumer"
    response = node.call("GET", target, app=app)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["items"] == []
    assert str(answer["page"]) == target.partition("page=")[2].partition("&")[0]


def test_a_share_query_page_of_1_0_is_page_1(node: ThreadNode) -> None:
    whole = node.query(ROLES["unconditional"], {"page": 1, "size": 2})
    spelled = node.query(ROLES["unconditional"], {"page": 1.0, "size": 2.0})
    assert spelled.status_code == 200, spelled.text
    assert spelled.json()["items"] == whole.json()["items"]
    assert (spelled.json()["page"], spelled.json()["size"]) == (1, 2)
    assert node.query(ROLES["unconditional"], {"page": 1.5}).status_code == 400


def test_a_cascade_seq_of_3_0_is_the_integer_3(node: ThreadNode) -> None:
    body = {"source_node_id": "330100", "seq": 3.0, "full": True, "entries": [], "deleted": []}
    response = node.call("POST", "/api/v1/cascade/catalog", app="child", json_body=body)
    assert response.status_code == 200, response.text
    onward = {**body, "seq": 4.0, "full": False}
    assert (
        node.call("POST", "/api/v1/cascade/catalog", app="child", json_body=onward).status_code
        == 200
    )
    skipped = {**body, "seq": 6, "full": False}
    assert (
        node.call("POST", "/api/v1/cascade/catalog", app="child", json_body=skipped).status_code
        == 409
    )
    fractional = {**body, "seq": 3.5}
    assert (
        node.call("POST", "/api/v1/cascade/catalog", app="child", json_body=fractional).status_code
        == 400
    )


@pytest.mark.parametrize(
    ("target", "app"),
    [
        ("/api/v1/subscriptions?resource_code=abc", "consumer"),
        ("/api/v1/subscriptions?resource_code=101001%2F33000", "consumer"),
        ("/api/v1/audit/events?request_id=!!", "admin"),
        ("/api/v1/audit/events?request_id=short", "admin"),
        ("/api/v1/audit/events?app_id=a%20b", "admin"),
    ],
)
def test_a_misshapen_filter_answers_400(node: ThreadNode, target: str, app: str) -> None:
    response = node.call("GET", target, app=app)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("target", "app"),
    [
        (f"/api/v1/subscriptions?resource_code={ROLES['conditional']}", "consumer"),
        ("/api/v1/audit/events?request_id=abcdef12-0000", "admin"),
        ("/api/v1/audit/events?app_id=consumer-a", "admin"),
    ],
)
def test_a_well_shaped_filter_is_applied(node: ThreadNode, target: str, app: str) -> None:
    assert node.call("GET", target, app=app).status_code == 200
