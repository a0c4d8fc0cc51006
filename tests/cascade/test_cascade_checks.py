"""The CAS checks with emulated neighbours: every one passes on the clean reference node, and
each fault switch that breaks a CAS clause fails exactly the CAS clauses it names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cascade_node import CAS, Candidate, cascade_faults, emulated_candidate, misjudged

from conformance.client import NodeClient
from conformance.reference.faults import FAULTS


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


def test_a_target_without_a_child_skips_the_parent_clauses(tmp_path: Path) -> None:
    with emulated_candidate(tmp_path) as node:
        target = node.client.target
        assert target.neighbours is not None
        alone = replace(target, neighbours=replace(target.neighbours, child=None))
        client = NodeClient(alone)
        try:
            verdicts = Candidate(client, node.neighbours).verdicts()
        finally:
            client.close()
    skipped = {"ATS-CAS-02", "ATS-CAS-03", "ATS-CAS-04", "ATS-CAS-10", "ATS-CAS-11"}
    assert {c for c, (v, _) in verdicts.items() if v == "SKIP"} == skipped, verdicts
    assert all("no child neighbour" in verdicts[c][1] for c in skipped)
    assert misjudged(verdicts, [], may_skip=tuple(skipped)) == []


@pytest.mark.parametrize("fault", cascade_faults())
def test_fault_fails_exactly_its_cas_clauses(tmp_path: Path, fault: str) -> None:
    broken = [c for c in FAULTS[fault].clauses if c in CAS]
    with emulated_candidate(tmp_path, [fault]) as node:
        verdicts = node.verdicts()
    assert misjudged(verdicts, broken) == []
