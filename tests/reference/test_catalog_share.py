"""Chapters 4 (CAT), 5 (SHR) and 7 (PRIV) on the seeded provincial catalog."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from refnode import CATALOG, ROLES, Node
from test_api import assert_error

from conformance import codes

ENTRIES = {e["resource_code"]: e for e in CATALOG["entries"]}
POPULATION = ROLES["population"]


def _all(node: Node, query: str = "") -> list[dict]:
    items: list[dict] = []
    page = 1
    while True:
        answer = node.call("GET", f"/api/v1/catalog/resources?size=100&page={page}{query}").json()
        items += answer["items"]
        if len(items) >= answer["total"] or not answer["items"]:
            return items
        page += 1


def test_the_local_catalog_is_the_seeded_one(node: Node) -> None:
    assert [e["resource_code"] for e in _all(node)] == sorted(ENTRIES)
    assert _all(node, "&scope=subtree") == _all(node)


@pytest.mark.parametrize("code", sorted(ENTRIES)[:5])
def test_an_entry_is_found_with_its_slash_raw_or_encoded(node: Node, code: str) -> None:
    expected = ENTRIES[code]
    assert node.call("GET", f"/api/v1/catalog/resources/{code}").json() == expected
    for encoded in (code.replace("/", "%2F"), code.replace("/", "%2f")):
        assert node.call("GET", f"/api/v1/catalog/resources/{encoded}").json() == expected


def test_an_unknown_code_is_404(node: Node) -> None:
    assert_error(node.call("GET", "/api/v1/catalog/resources/199999/999999"), 404, "NOT_FOUND")
    assert_error(node.call("GET", "/api/v1/catalog/resources/not-a-code"), 404, "NOT_FOUND")


@pytest.mark.parametrize("share_type", ["UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED"])
def test_the_share_type_filter_is_exact(node: Node, share_type: str) -> None:
    got = {e["resource_code"] for e in _all(node, f"&share_type={share_type}")}
    assert got == {c for c, e in ENTRIES.items() if e["share"]["type"] == share_type}


def test_the_keyword_filter_is_a_case_sensitive_substring(node: Node) -> None:
    keyword = "人口"
    got = {e["resource_code"] for e in _all(node, f"&keyword={quote(keyword)}")}
    assert got == {c for c, e in ENTRIES.items() if keyword in e["name"] or keyword in e["summary"]}
    assert got


def test_the_updated_since_filter_keeps_later_entries(node: Node) -> None:
    stamps = sorted(e["updated_at"] for e in ENTRIES.values())
    middle = stamps[len(stamps) // 2]
    got = {e["resource_code"] for e in _all(node, f"&updated_since={quote(middle)}")}
    assert got == {c for c, e in ENTRIES.items() if e["updated_at"] >= middle}
    shifted = middle.replace("Z", "+08:00")
    assert _all(node, f"&updated_since={quote(shifted)}")


@pytest.mark.parametrize(
    "query", ["share_type=OPEN", "scope=all", "updated_since=yesterday", "updated_since=2024-01-01"]
)
def test_an_invalid_filter_is_400(node: Node, query: str) -> None:
    assert_error(node.call("GET", f"/api/v1/catalog/resources?{query}"), 400, "INVALID_REQUEST")


def test_an_unconditional_resource_answers_its_records(node: Node) -> None:
    code = ROLES["unconditional"]
    entry = ENTRIES[code]
    answer = node.query(code, {"size": 100}).json()
    names = [i["name"] for i in entry["items"]]
    assert answer["resource_code"] == code
    assert answer["total"] == len(CATALOG["records"][code])
    assert answer["items"]
    assert all(list(r) == names for r in answer["items"])
    assert node.query(code).json()["size"] == 20


def test_fields_select_exactly_those_items(node: Node) -> None:
    code = ROLES["unconditional"]
    names = [i["name"] for i in ENTRIES[code]["items"]]
    answer = node.query(code, {"fields": [names[1], names[0]]}).json()
    assert answer["items"]
    assert all(set(r) == {names[0], names[1]} for r in answer["items"])
    assert node.query(code, {"fields": []}).json()["items"][0].keys() == set(names)


@pytest.mark.parametrize(
    "request_body",
    [{"fields": ["no_such_item"]}, {"filter": {"no_such_item": 1}}, {"fields": ["uscc", "uscc"]}],
)
def test_undeclared_or_repeated_items_are_400(node: Node, request_body: dict) -> None:
    assert_error(node.query(ROLES["unconditional"], request_body), 400, "INVALID_REQUEST")


def test_filters_are_exact_and_conjunctive(node: Node) -> None:
    code = ROLES["unconditional"]
    records = CATALOG["records"][code]
    sample = records[0]
    pair = {k: sample[k] for k in list(sample)[:2]}
    answer = node.query(code, {"filter": pair, "size": 100}).json()
    expected = [r for r in records if all(r.get(k) == v for k, v in pair.items())]
    assert answer["total"] == len(expected)
    assert answer["items"] == expected[:100]


def test_a_filter_value_of_the_wrong_json_type_is_400_without_echo(node: Node) -> None:
    code = ROLES["unconditional"]
    item = next(i for i in ENTRIES[code]["items"] if i["data_type"] == "C")
    secret_value = 330102199001011234
    response = node.query(code, {"filter": {item["name"]: secret_value}})
    assert_error(response, 400, "INVALID_REQUEST")
    assert str(secret_value) not in response.text


def test_numbers_never_equal_strings_or_booleans(node: Node) -> None:
    code = "207001/330015"
    records = CATALOG["records"][code]
    days = records[0]["time_limit_days"]
    as_int = node.query(code, {"filter": {"time_limit_days": days}, "size": 100}).json()
    assert as_int["total"] == sum(1 for r in records if r["time_limit_days"] == days)
    assert node.query(code, {"filter": {"time_limit_days": str(days)}}).status_code == 400
    flag = node.query(code, {"filter": {"online": True}, "size": 100}).json()
    assert flag["total"] == sum(1 for r in records if r["online"] is True)
    assert node.query(code, {"filter": {"online": 1}}).status_code == 400


def test_values_fit_their_data_types_and_semantics(node: Node) -> None:
    for code, entry in ENTRIES.items():
        if entry["share"]["type"] != "UNCONDITIONAL" or entry["share"]["method"] != "API":
            continue
        answer = node.query(code, {"size": 100}).json()
        items = {i["name"]: i for i in entry["items"]}
        for record in answer["items"]:
            for name, value in record.items():
                if value is None or name in answer["masked"]:
                    continue
                semantic = items[name].get("semantic")
                if semantic == "USCC":
                    assert codes.uscc_problem(value) is None
                if semantic == "DIVISION_CODE":
                    assert codes.division_problem(value) is None


def test_sensitive_items_are_masked_and_listed(node: Node) -> None:
    entry = ENTRIES[POPULATION]
    sensitive = [i for i in entry["items"] if i.get("sensitive")]
    answer = node.query(POPULATION, {"size": 50}).json()
    assert answer["masked"] == [i["name"] for i in sensitive]
    originals = CATALOG["records"][POPULATION]
    for shown, original in zip(answer["items"], originals, strict=False):
        for item in sensitive:
            assert shown[item["name"]] == codes.mask(original[item["name"]], item["mask"])


def test_masked_lists_selected_items_even_without_records(node: Node) -> None:
    answer = node.query(
        POPULATION, {"fields": ["gender", "name"], "filter": {"gender": "?"}}
    ).json()
    assert answer["items"] == []
    assert answer["masked"] == ["name"]


def test_filtering_on_a_sensitive_item_uses_the_real_value(node: Node) -> None:
    original = CATALOG["records"][POPULATION][3]
    answer = node.query(POPULATION, {"filter": {"id_number": original["id_number"]}}).json()
    assert answer["total"] == 1
    assert answer["items"][0]["id_number"] == codes.mask(original["id_number"], "ID_NUMBER")


def test_not_shared_is_403_while_its_entry_stays_visible(node: Node) -> None:
    code = ROLES["not_shared"]
    assert_error(node.query(code), 403, "FORBIDDEN")
    assert node.call("GET", f"/api/v1/catalog/resources/{code}").status_code == 200


def test_conditional_without_subscription_is_403_subscription_required(node: Node) -> None:
    assert_error(node.query(ROLES["conditional"], app="consumer_b"), 403, "SUBSCRIPTION_REQUIRED")


def test_a_resource_not_shared_over_the_api_is_400(node: Node) -> None:
    code = next(
        c
        for c, e in ENTRIES.items()
        if e["share"]["method"] != "API" and e["share"]["type"] != "NOT_SHARED"
    )
    assert_error(node.query(code), 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "code", ["abc", "101001", "401001/000001", "101001/1234567", "..%2F..%2Fetc"]
)
def test_a_malformed_code_is_404_and_not_forwarded(node: Node, code: str) -> None:
    response = node.query(code)
    assert_error(response, 404, "NOT_FOUND")
    assert response.headers["x-route"] == "330000"


def test_a_query_for_an_unreachable_subtree_is_answered_by_routing(node: Node) -> None:
    response = node.query("101001/999999")
    assert response.status_code in (404, 502, 504)
    assert response.headers["x-route"].startswith("330000")


def test_a_routed_query_from_the_parent_for_an_unknown_code_is_404(node: Node) -> None:
    response = node.call(
        "POST",
        "/api/v1/share/101001/999999/query",
        app="parent",
        json_body={},
        headers={"X-Origin-Node": "100000", "X-Origin-App": "far-app", "X-Route": "100000"},
    )
    assert_error(response, 404, "NOT_FOUND")
    assert response.headers["x-route"] == "100000,330000"


def test_a_routed_query_is_masked_for_its_origin(node: Node) -> None:
    response = node.call(
        "POST",
        f"/api/v1/share/{POPULATION}/query",
        app="parent",
        json_body={"size": 1},
        headers={"X-Origin-Node": "100000", "X-Origin-App": "far-app", "X-Route": "100000"},
    )
    assert response.status_code == 200
    assert response.json()["masked"]
    assert response.headers["x-route"] == "100000,330000"
