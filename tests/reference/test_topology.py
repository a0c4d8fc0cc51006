"""The reference topology over real HTTP: four node processes, really wired (ATS chapter 8).

One topology serves the whole module. Its seed catalogs are small ones written here, so that the
routes are known: 101001/330101 is held by the municipal node 330100, 101001/330001 by the
provincial node, 301001/000001 by the department, 101001/100001 by the national node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conformance import signing
from conformance.codes import org_check_character, uscc_check_character
from conformance.reference.launcher import Topology, start_topology

pytestmark = pytest.mark.timeout(120)

NATIONAL, PROVINCIAL, MUNICIPAL = "100000", "330000", "330100"
_FIRST17 = "11110000" + "00001312" + org_check_character("00001312")
DEPARTMENT = _FIRST17 + uscc_check_character(_FIRST17)
CODES = {
    NATIONAL: "101001/100001",
    PROVINCIAL: "101001/330001",
    MUNICIPAL: "101001/330101",
    DEPARTMENT: "301001/000001",
}
UNHELD = "101001/999999"
TIMEOUT = httpx.Timeout(15.0)


def _entry(code: str, node_id: str) -> dict[str, Any]:
    department = code.startswith("3")
    return {
        "resource_code": code,
        "name": f"区县人口统计 {node_id}",
        "classification": {
            "type": "DEPARTMENT" if department else "BASE",
            "path": ["部门", "统计", "人口"] if department else ["人口", "户籍", "常住人口"],
        },
        "provider": {"name": "统计部门", "code": DEPARTMENT if department else "330000"},
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
        "node_id": node_id,
        "updated_at": "2024-01-02T08:00:00+08:00",
    }


def write_seed(folder: Path, node_id: str, code: str) -> str:
    """A seed catalog file with one unconditional resource and two records; its file name."""
    catalog = {
        "node_id": node_id,
        "roles": {
            "unconditional": code,
            "conditional": code,
            "not_shared": code,
            "population": code,
        },
        "entries": [_entry(code, node_id)],
        "records": {code: [{"region": "330102", "count": 5}, {"region": "330103", "count": 7}]},
    }
    name = f"seed-{node_id}.json"
    (folder / name).write_text(json.dumps(catalog, ensure_ascii=False), encoding="utf-8")
    return name


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    folder = tmp_path_factory.mktemp("topology")
    seeds = {node_id: write_seed(folder, node_id, code) for node_id, code in CODES.items()}
    with start_topology(
        folder, seeds=seeds, department_id=DEPARTMENT, cascade_timeout_s=2.0
    ) as running:
        yield running


def call(
    topology: Topology,
    at: str,
    app_id: str,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A request signed with an app registered at node `at`."""
    content = b"" if body is None else json.dumps(body).encode()
    signed = signing.sign_headers(
        method=method,
        target=path,
        body=content,
        app_id=app_id,
        secret=topology.secret(at, app_id),
    )
    if content:
        signed["Content-Type"] = "application/json"
    return httpx.request(
        method,
        topology.url(at) + path,
        content=content,
        headers={**signed, **(headers or {})},
        timeout=TIMEOUT,
    )


def query(
    topology: Topology, at: str, code: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return call(topology, at, "consumer-a", "POST", f"/api/v1/share/{code}/query", {}, headers)


def wait_for(condition: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_the_nodes_are_wired_as_the_plan_says(topology: Topology) -> None:
    descriptor = call(topology, PROVINCIAL, "consumer-a", "GET", "/api/v1/node").json()
    assert descriptor["parent_id"] == NATIONAL
    # 330200 is the child slot a live run emulates (fixtures/topology.yaml): wired, not started.
    assert [c["node_id"] for c in descriptor["children"]] == [MUNICIPAL, "330200"]
    national = call(topology, NATIONAL, "consumer-a", "GET", "/api/v1/node").json()
    assert {c["node_id"] for c in national["children"]} == {PROVINCIAL, DEPARTMENT}


def test_a_municipal_entry_is_visible_in_the_national_subtree(topology: Topology) -> None:
    path = "/api/v1/catalog/resources?scope=subtree&size=100"
    listed = call(topology, NATIONAL, "consumer-a", "GET", path).json()
    held = {e["resource_code"]: e["node_id"] for e in listed["items"]}
    assert held == {code: node_id for node_id, code in CODES.items()}
    local = call(topology, NATIONAL, "consumer-a", "GET", "/api/v1/catalog/resources").json()
    assert [e["resource_code"] for e in local["items"]] == [CODES[NATIONAL]]


def test_a_query_at_the_provincial_node_routes_down_to_the_municipal_node(
    topology: Topology,
) -> None:
    answer = query(topology, PROVINCIAL, CODES[MUNICIPAL], {"X-Request-Id": "route-down-0001"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Route"] == f"{PROVINCIAL},{MUNICIPAL}"
    assert answer.headers["X-Request-Id"] == "route-down-0001"
    assert answer.json()["total"] == 2


def test_a_query_at_the_municipal_node_routes_up_via_national(topology: Topology) -> None:
    answer = query(topology, MUNICIPAL, CODES[DEPARTMENT])
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Route"] == f"{MUNICIPAL},{PROVINCIAL},{NATIONAL},{DEPARTMENT}"


def test_a_code_no_node_holds_answers_404_where_routing_ends(topology: Topology) -> None:
    answer = query(topology, MUNICIPAL, UNHELD)
    assert answer.status_code == 404
    assert answer.json()["code"] == "NOT_FOUND"
    assert answer.headers["X-Route"] == f"{MUNICIPAL},{PROVINCIAL},{NATIONAL}"


def test_a_routed_query_is_audited_at_every_node_with_its_request_id(topology: Topology) -> None:
    query(topology, MUNICIPAL, CODES[NATIONAL], {"X-Request-Id": "audit-route-0001"})
    for node_id in (MUNICIPAL, PROVINCIAL, NATIONAL):
        path = "/api/v1/audit/events?request_id=audit-route-0001"
        assert wait_for(
            lambda n=node_id, p=path: call(topology, n, "admin", "GET", p).json()["total"] >= 1
        ), node_id
        event = call(topology, node_id, "admin", "GET", path).json()["items"][0]
        assert (event["origin_node"], event["origin_app"]) == (MUNICIPAL, "consumer-a")


def test_a_query_from_the_parent_for_an_unheld_code_is_not_sent_back_up(
    topology: Topology,
) -> None:
    answer = call(
        topology,
        PROVINCIAL,
        f"node-{NATIONAL}",
        "POST",
        f"/api/v1/share/{UNHELD}/query",
        {},
        {"X-Origin-Node": NATIONAL, "X-Origin-App": "consumer-a", "X-Route": NATIONAL},
    )
    assert answer.status_code == 404
    assert answer.headers["X-Route"] == f"{NATIONAL},{PROVINCIAL}"


def test_a_hop_limit_of_1_answers_508_without_forwarding(topology: Topology) -> None:
    answer = query(topology, PROVINCIAL, CODES[MUNICIPAL], {"X-Hop-Limit": "1"})
    assert answer.status_code == 508
    assert answer.json()["code"] == "LOOP_DETECTED"
    assert answer.headers["X-Route"] == PROVINCIAL


@pytest.mark.parametrize("value", ["0", "9", "two"])
def test_a_hop_limit_outside_1_to_8_answers_400(topology: Topology, value: str) -> None:
    answer = query(topology, PROVINCIAL, CODES[MUNICIPAL], {"X-Hop-Limit": value})
    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_REQUEST"


def test_a_hop_limit_of_2_reaches_the_next_node_only(topology: Topology) -> None:
    assert query(topology, PROVINCIAL, CODES[MUNICIPAL], {"X-Hop-Limit": "2"}).status_code == 200
    answer = query(topology, MUNICIPAL, CODES[DEPARTMENT], {"X-Hop-Limit": "2"})
    assert answer.status_code == 508
    assert answer.headers["X-Route"] == f"{MUNICIPAL},{PROVINCIAL}"


def test_a_route_through_this_node_answers_508(topology: Topology) -> None:
    answer = query(topology, PROVINCIAL, CODES[MUNICIPAL], {"X-Route": f"{NATIONAL},{PROVINCIAL}"})
    assert answer.status_code == 508
    assert answer.json()["code"] == "LOOP_DETECTED"


def test_an_admin_sync_pushes_the_subtree_with_the_next_seq(topology: Topology) -> None:
    first = call(topology, PROVINCIAL, "admin", "POST", "/api/v1/cascade/sync")
    assert first.status_code == 200, first.text
    assert first.json()["pushed"] == 2
    second = call(topology, PROVINCIAL, "admin", "POST", "/api/v1/cascade/sync").json()
    assert second["seq"] == first.json()["seq"] + 1


def test_a_sync_at_the_national_node_answers_404(topology: Topology) -> None:
    assert call(topology, NATIONAL, "admin", "POST", "/api/v1/cascade/sync").status_code == 404


def test_a_child_change_reaches_the_national_node_within_5_s(topology: Topology) -> None:
    municipal = json.loads(
        (topology.workdir / f"seed-{MUNICIPAL}.json").read_text(encoding="utf-8")
    )["entries"]
    added = _entry("101001/330102", MUNICIPAL)
    national_has = lambda code: (  # noqa: E731
        call(topology, NATIONAL, "admin", "GET", f"/api/v1/catalog/resources/{code}").status_code
        == 200
    )
    pushed = call(
        topology,
        PROVINCIAL,
        f"node-{MUNICIPAL}",
        "POST",
        "/api/v1/cascade/catalog",
        {
            "source_node_id": MUNICIPAL,
            "seq": 100,
            "full": True,
            "entries": [*municipal, added],
            "deleted": [],
        },
    )
    assert pushed.json() == {"accepted": 2}
    started = time.monotonic()
    assert wait_for(lambda: national_has(added["resource_code"]))
    assert time.monotonic() - started < 5
    removal = call(
        topology,
        PROVINCIAL,
        f"node-{MUNICIPAL}",
        "POST",
        "/api/v1/cascade/catalog",
        {
            "source_node_id": MUNICIPAL,
            "seq": 101,
            "full": False,
            "entries": [],
            "deleted": [added["resource_code"]],
        },
    )
    assert removal.json() == {"accepted": 0}
    started = time.monotonic()
    assert wait_for(lambda: not national_has(added["resource_code"]))
    assert time.monotonic() - started < 5
    assert national_has(CODES[MUNICIPAL])


def test_the_target_file_certifies_the_provincial_node_with_real_neighbours(
    topology: Topology, tmp_path: Path
) -> None:
    target = yaml.safe_load(topology.write_target(tmp_path / "target.yaml").read_text("utf-8"))
    assert target["node"] == {
        "base_url": topology.url(PROVINCIAL),
        "level": "provincial",
        "node_id": PROVINCIAL,
        "parent_id": NATIONAL,
        "ca_bundle": None,
        "http_url": None,
    }
    assert set(target["apps"]) == {"consumer", "consumer_b", "admin", "load"}
    parent, child = target["neighbours"]["parent"], target["neighbours"]["child"]
    assert target["neighbours"]["live"] is True
    assert topology.url(NATIONAL).endswith(parent["listen"])
    # The neighbours' credentials are real: the national node's app at the provincial node works.
    as_parent = parent["as_parent"]
    assert as_parent["secret"] == topology.secret(PROVINCIAL, as_parent["app_id"])
    assert child["candidate"]["secret"] == topology.secret(MUNICIPAL, child["candidate"]["app_id"])
    assert target["resources"]["unconditional"] == CODES[PROVINCIAL]
