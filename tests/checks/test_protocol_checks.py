"""The checks of chapters API, NODE and AUTH against a real reference node: the clean node
passes each of them, findings and evidence read as a vendor needs them. That each fault fails
exactly its clauses is the fault matrix's part (tests/test_fault_matrix.py, bench "protocol").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from data_node import DataNode, data_node

from conformance.profile import load_profile

CHAPTERS = ("API", "NODE", "AUTH")
PROTOCOL = tuple(c.id for c in load_profile("provincial").clauses if c.chapter in CHAPTERS)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataNode]:
    with data_node(tmp_path_factory.mktemp("clean")) as node:
        yield node


@pytest.mark.timeout(60)
@pytest.mark.parametrize("clause_id", PROTOCOL)
def test_the_clean_node_passes(clean: DataNode, clause_id: str) -> None:
    verdict, reason, _ = clean.check(clause_id)
    assert verdict == "PASS", reason


@pytest.mark.timeout(60)
def test_a_finding_names_expected_seen_and_the_request(tmp_path: Path) -> None:
    with data_node(tmp_path, ["accept-replayed-nonce"]) as node:
        verdict, reason, ctx = node.check("ATS-AUTH-05")
    assert verdict == "FAIL"
    assert reason == (
        "an exact replay of a request was answered 200 OK; expected 401 UNAUTHENTICATED "
        "(GET /api/v1/node)"
    )
    requests = [e for e in ctx.evidence.entries if "method" in e]
    assert requests[-1]["target"] == "/api/v1/node"


@pytest.mark.timeout(60)
def test_no_secret_reaches_the_evidence(clean: DataNode) -> None:
    secrets = clean.client.target.secrets()
    for clause_id in ("ATS-AUTH-02", "ATS-AUTH-03", "ATS-AUTH-08", "ATS-API-05"):
        _, _, ctx = clean.check(clause_id)
        text = repr(ctx.evidence.entries)
        assert not [s for s in secrets if s in text], clause_id
        for entry in ctx.evidence.entries:
            signature = entry.get("request_headers", {}).get("X-Signature")
            assert signature in (None, "***"), clause_id


@pytest.mark.timeout(60)
def test_the_generated_cases_record_their_seed(clean: DataNode) -> None:
    verdict, reason, ctx = clean.check("ATS-API-05")
    assert verdict == "PASS", reason
    notes = [e["note"] for e in ctx.evidence.entries if "note" in e]
    assert any("hypothesis seed" in note for note in notes)
    requests = [e for e in ctx.evidence.entries if "method" in e]
    assert 50 <= len(requests) <= 150
