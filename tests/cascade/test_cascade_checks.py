"""The CAS checks with emulated neighbours: every one passes on the clean reference node; each
fault fails exactly its CAS clauses in the fault matrix (tests/test_fault_matrix.py, bench
"cascade")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import requests
from cascade_node import Candidate, emulated_candidate, misjudged

from conformance import signing
from conformance.checks import CheckContext, cascade
from conformance.client import NodeClient


def test_every_cas_check_passes_on_the_clean_node(tmp_path: Path) -> None:
    with emulated_candidate(tmp_path) as node:
        verdicts = node.verdicts()
    assert misjudged(verdicts, []) == []


def test_the_evidence_names_the_latency_and_the_forwarded_hop_limits(tmp_path: Path) -> None:
    with emulated_candidate(tmp_path) as node:
        _, _, prompt = node.check("ATS-CAS-11")
        _, _, hops = node.check("ATS-CAS-06")
    notes = [e["note"] for e in prompt.evidence.entries if "note" in e]
    assert any("addition re-pushed after" in n for n in notes), notes
    notes = [e["note"] for e in hops.evidence.entries if "note" in e]
    assert any("absent→7" in n for n in notes), notes


def test_no_secret_reaches_the_evidence(tmp_path: Path) -> None:
    with emulated_candidate(tmp_path) as node:
        contexts = [node.check(c)[2] for c in ("ATS-CAS-02", "ATS-CAS-04", "ATS-CAS-09")]
        secrets = node.client.target.secrets()
    text = repr([ctx.evidence.entries for ctx in contexts])
    assert secrets
    assert not any(s in text for s in secrets)


def _without(node: Candidate, role: str) -> Candidate:
    """The same candidate, certified with a target file that names no ``role`` neighbour."""
    target = node.client.target
    assert target.neighbours is not None
    alone = replace(target, neighbours=replace(target.neighbours, **{role: None}))
    return Candidate(NodeClient(alone), node.neighbours)


def test_a_target_without_a_child_does_not_assess_the_parent_clauses(tmp_path: Path) -> None:
    # A provincial node has children: the clauses apply, the target file is what lacks the child,
    # so they are not assessed (no certification), never passed by (ATS-CAS-02/03/04/10/11).
    with emulated_candidate(tmp_path) as node:
        alone = _without(node, "child")
        try:
            verdicts = alone.verdicts()
        finally:
            alone.client.close()
    skipped = {"ATS-CAS-02", "ATS-CAS-03", "ATS-CAS-04", "ATS-CAS-10", "ATS-CAS-11"}
    assert {c for c, (v, _) in verdicts.items() if v == "SKIP"} == skipped, verdicts
    assert all("the target file names no neighbours.child" in verdicts[c][1] for c in skipped)
    assert (
        "ATS-CAS-02 needs an emulated child to push to the candidate" in verdicts["ATS-CAS-02"][1]
    )
    assert alone.skip_causes == dict.fromkeys(skipped, "not_assessed")
    assert misjudged(verdicts, [], may_skip=tuple(skipped)) == []


def test_a_target_without_a_parent_does_not_assess_the_child_clauses(tmp_path: Path) -> None:
    # Every level but national has a parent (ATS §0): ATS-CAS-01/05/10/11 apply, and without
    # neighbours.parent they are not assessed; the routing clauses use the child instead.
    with emulated_candidate(tmp_path) as node:
        alone = _without(node, "parent")
        try:
            verdicts = alone.verdicts()
        finally:
            alone.client.close()
    skipped = {"ATS-CAS-01", "ATS-CAS-05", "ATS-CAS-10", "ATS-CAS-11"}
    assert {c for c, (v, _) in verdicts.items() if v == "SKIP"} == skipped, verdicts
    assert all("the target file names no neighbours.parent" in verdicts[c][1] for c in skipped)
    assert alone.skip_causes == dict.fromkeys(skipped, "not_assessed")
    assert misjudged(verdicts, [], may_skip=tuple(skipped)) == []


def test_a_target_without_neighbours_does_not_assess_the_routing_clauses(tmp_path: Path) -> None:
    with emulated_candidate(tmp_path) as node:
        target = node.client.target
        alone = Candidate(NodeClient(replace(target, neighbours=None)), node.neighbours)
        try:
            verdicts = alone.verdicts(("ATS-CAS-06", "ATS-CAS-09"))
        finally:
            alone.client.close()
    assert {c: v for c, (v, _) in verdicts.items()} == dict.fromkeys(
        ("ATS-CAS-06", "ATS-CAS-09"), "SKIP"
    ), verdicts
    assert "neither neighbours.parent nor neighbours.child" in verdicts["ATS-CAS-06"][1]
    assert alone.skip_causes == dict.fromkeys(verdicts, "not_assessed")


def test_a_stale_request_a_neighbour_receives_is_a_finding_of_the_check(tmp_path: Path) -> None:
    # ATS chapter 3 holds for the candidate's own requests to its neighbours (ATS-AUTH-05): the
    # check during which a neighbour refused a reused nonce fails, naming it.
    path, body = "/api/v1/share/101001/330199/query", b"{}"

    def reusing_a_nonce(ctx: CheckContext) -> None:
        assert ctx.neighbours is not None
        child = ctx.neighbours.child
        assert child is not None
        signed = signing.sign_headers(
            method="POST", target=path, body=body, app_id=child.spec.candidate.app_id,
            secret=child.spec.candidate.secret, nonce=signing.new_nonce(),
        )  # fmt: skip
        for _ in range(2):
            requests.post(f"{child.url}{path}", data=body, headers=signed, timeout=5)

    with emulated_candidate(tmp_path) as node:
        verdict, reason, ctx = node.run_as("ATS-CAS-09", cascade._witnessed(reusing_a_nonce))
        secrets = node.client.target.secrets()
    assert verdict == "FAIL"
    assert "the emulated child refused 1 request(s) of the node" in reason
    assert "ATS-AUTH-05" in reason
    received = [e for e in ctx.evidence.entries if e.get("target") == path]
    assert [e["stale"] is None for e in received] == [True, False]
    assert received[0]["request_headers"]["X-Signature"] == "***"
    assert not [s for s in secrets if s in repr(received)]
