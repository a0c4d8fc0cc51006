"""The probes that close the places where a broken node passed: small pages, values that need a
`semantic`, and the lookup of an entry a child pushed when the subtree held none before.

The faults these probes catch (page-starts-early, signature-ignores-query, substring-filter,
unsigned-catalog, phone-without-semantic) are proven to fail exactly their clauses by
test_protocol_checks.py and test_data_chapters.py, which take every fault of the registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_node import data_node

from conformance.checks._semantics import recognised_semantic
from conformance.checks._small_pages import SMALL_PAGES, small_sizes
from conformance.client import NodeClient
from conformance.data import data_dir

POPULATION = json.loads((data_dir("fixtures") / "catalogs" / "330000.json").read_text("utf-8"))


@pytest.mark.parametrize("count", [*range(2, 40), 99, 100, 101, 997, 1000, 100_000])
def test_small_sizes_split_the_collection_one_of_them_unevenly(count: int) -> None:
    sizes = small_sizes(count)
    assert sizes
    assert all(1 <= s < count and s <= 100 for s in sizes)
    assert any(count % s == 0 for s in sizes)
    # Only 2 has no size below it that leaves a short last page.
    assert count == 2 or any(count % s for s in sizes)
    # A small collection is split into about SMALL_PAGES pages, so every page is read.
    if 2 < count <= 30:
        assert any(count % s and -(-count // s) <= SMALL_PAGES for s in sizes)


def test_nothing_to_split_below_two_items() -> None:
    assert small_sizes(0) == []
    assert small_sizes(1) == []


def _column(code: str, item: str) -> list[str]:
    return [r[item] for r in POPULATION["records"][code][:20]]


@pytest.mark.parametrize(
    ("code", "item", "semantic"),
    [
        ("101001/330001", "id_number", "ID_NUMBER"),
        ("101001/330001", "phone", "PHONE"),
        ("101001/330001", "division_code", "DIVISION_CODE"),
        ("102001/330002", "uscc", "USCC"),
    ],
)
def test_values_show_their_semantic(code: str, item: str, semantic: str) -> None:
    assert recognised_semantic(_column(code, item)) == semantic


@pytest.mark.parametrize(
    "values",
    [
        # Too few distinct values to tell a scheme from a coincidence.
        ["330102194509304553", "330102194509304553", None],
        # One check character wrong: not every value is an id number.
        ["330102194509304553", "330102195112291373", "330102195112291374"],
        # Postal codes share the division codes' structure, not their list.
        ["310012", "310013", "310014"],
        # Names, addresses, free text and non-strings are never recognised.
        ["秦健", "肖晓东", "王芳"],
        [13800000000, 13900000000, 13700000000],
        ["1380000000", "1390000000", "1370000000"],
    ],
)
def test_other_values_show_none(values: list[object]) -> None:
    assert recognised_semantic(values) is None


def _empty_the_child(client: NodeClient) -> None:
    """The child 330100 withdraws its entries (a full push of none, ATS §8)."""
    push = {"source_node_id": "330100", "seq": 2, "full": True, "entries": [], "deleted": []}
    ex = client.post("/api/v1/cascade/catalog", app="as_child", json=push)
    assert ex.status == 200, ex.summary()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("fault", "verdict"), [(None, "PASS"), ("lookup-local-only", "FAIL")])
def test_a_childs_entry_is_pushed_and_looked_up(
    tmp_path: Path, fault: str | None, verdict: str
) -> None:
    with data_node(tmp_path, [fault] if fault else []) as node:
        _empty_the_child(node.client)
        seen, reason, ctx = node.check("ATS-CAT-03")
        subtree = node.client.get(
            "/api/v1/catalog/resources", app="consumer", params={"scope": "subtree", "size": 100}
        )
    assert seen == verdict, reason
    pushes = [e for e in ctx.evidence.entries if e.get("target") == "/api/v1/cascade/catalog"]
    # One push of a generated entry, one that restores what the child held (nothing).
    assert len(pushes) == 2
    assert all(e["node_id"] == "330000" for e in subtree.json()["items"])
    if fault:
        assert "pushed by the child 330100" in reason
