"""The probes that close the places where a broken node passed: small pages, values that need a
`semantic`, and the lookup of an entry a child pushed when the subtree held none before.

The faults these probes catch (page-starts-early, signature-ignores-query, substring-filter,
unsigned-catalog, phone-without-semantic) are proven to fail exactly their clauses by
test_protocol_checks.py and test_data_chapters.py, which take every fault of the registry.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from data_node import data_node
from support.nodes import plan_node

from conformance.checks import CheckContext, Finding, RunState, registry
from conformance.checks._semantics import recognised_semantic
from conformance.checks._small_pages import SMALL_PAGES, small_sizes
from conformance.cli import build_parser
from conformance.client import EvidenceLog, NodeClient
from conformance.data import data_dir
from conformance.profile import load_clauses, load_profile
from conformance.reference.faults import FAULTS
from conformance.runner import RunOptions
from conformance.target import load_target

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


class _ForgetfulNode(BaseHTTPRequestHandler):
    """A node whose nonce memory lasts ``MEMORY_S`` instead of 600 s (the defect a replay seconds
    after first use cannot show); signatures are not its concern here, only nonces."""

    MEMORY_S = 1.0
    used: ClassVar[dict[str, float]] = {}

    def do_GET(self) -> None:
        nonce = self.headers.get("X-Nonce", "")
        now = time.monotonic()
        fresh = now - self.used.get(nonce, -1e9) > self.MEMORY_S
        self.used.setdefault(nonce, now)
        if not fresh:
            status, body = 401, {"code": "UNAUTHENTICATED", "message": "replayed"}
        elif self.path.startswith("/api/v1/audit/"):
            status, body = 403, {"code": "FORBIDDEN", "message": "role"}
        else:
            status, body = 200, {"node_id": "330000"}
        data = json.dumps({**body, "request_id": "forgetful-0001"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _auth05(folder: Path, *, thorough: bool, late_s: float) -> tuple[str, CheckContext]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForgetfulNode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target_path = plan_node(folder).target_file
        document = yaml.safe_load(target_path.read_text("utf-8"))
        document["node"]["base_url"] = f"http://127.0.0.1:{server.server_address[1]}"
        target_path.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
        clause = load_profile("provincial").clause("ATS-AUTH-05")
        clause = replace(clause, params={**clause.params, "late_replay_after_s": late_s})
        client = NodeClient(load_target(target_path))
        evidence = EvidenceLog(client.target.secrets())
        ctx = CheckContext(
            clause=clause, target=client.target, client=client.for_clause(evidence),
            run=RunState(), evidence=evidence, thorough=thorough,
        )  # fmt: skip
        try:
            registry()["ATS-AUTH-05"].function(ctx)
        except Finding as exc:
            return exc.reason, ctx
        finally:
            client.close()
        return "PASS", ctx
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
def test_the_default_run_assesses_only_the_start_of_the_nonce_window(tmp_path: Path) -> None:
    verdict, ctx = _auth05(tmp_path, thorough=False, late_s=2)
    assert verdict == "PASS"
    assert any("assessed only for its start" in str(e) for e in ctx.evidence.entries)


@pytest.mark.timeout(60)
def test_thorough_replays_near_the_end_of_the_window(tmp_path: Path) -> None:
    started = time.monotonic()
    verdict, _ = _auth05(tmp_path, thorough=True, late_s=2)
    assert time.monotonic() - started >= 2
    assert verdict.startswith("a newly signed request reusing a nonce 2 s after its first use")


@pytest.mark.parametrize(("argv", "passed"), [([], False), (["--thorough"], True)])
def test_thorough_is_off_by_default_and_reaches_the_options(argv: list[str], passed: bool) -> None:
    args = build_parser().parse_args(["run", "--target", "t.yaml", *argv])
    assert RunOptions.from_cli(args).thorough is passed


def test_the_musts_table_covers_every_must_clause_with_known_faults() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "musts.md").read_text("utf-8")
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ATS-")]
    musts = {c.id for c in load_clauses() if c.level == "MUST"}
    assert {row[0].strip("| ") for row in rows} == musts
    named = {n for row in rows for n in re.findall(r"`([a-z0-9][a-z0-9-]*)`", row[-1])}
    assert named <= set(FAULTS), named - set(FAULTS)
    assert all(row[2].strip() for row in rows)
