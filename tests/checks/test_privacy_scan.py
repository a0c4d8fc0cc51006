"""ATS-PRIV-04 judges every filtered query of the run, not only its own probes: an error answer
of an earlier check that echoes a filter value fails it."""

from __future__ import annotations

from pathlib import Path

from data_node import data_node

from conformance.checks import CheckContext
from conformance.checks._records import query
from conformance.client import EvidenceLog
from conformance.profile import load_profile


def test_an_earlier_checks_echoed_filter_value_fails_priv_04(tmp_path: Path) -> None:
    with data_node(tmp_path, ["leak-filter-value-in-error"]) as node:
        target = node.client.target
        evidence = EvidenceLog(target.secrets())
        earlier = CheckContext(
            clause=load_profile("provincial").clause("ATS-SHR-03"),
            target=target,
            client=node.client.for_clause(evidence),
            run=node.run,
            evidence=evidence,
        )
        code = target.resources["unconditional"]
        # A string for the numeric item registered_capital: 400, echoed under the fault.
        ex = query(earlier, code, {"filter": {"registered_capital": "ats-echoed-value-42"}})
        assert ex.status == 400
        assert b"ats-echoed-value-42" in ex.body
        verdict, reason, _ = node.check("ATS-PRIV-04")
    request_id = ex.request_headers["X-Request-Id"]
    assert verdict == "FAIL", reason
    assert request_id in reason, reason
    assert code in reason, reason


def test_priv_04_passes_after_the_run_on_the_clean_node(tmp_path: Path) -> None:
    with data_node(tmp_path) as node:
        verdicts = node.verdicts(["ATS-SHR-02", "ATS-SHR-03", "ATS-PRIV-03", "ATS-PRIV-04"])
        _, _, ctx = node.check("ATS-PRIV-04")
    assert {v for v, _ in verdicts.values()} == {"PASS"}, verdicts
    notes = [e["note"] for e in ctx.evidence.entries if "note" in e]
    assert any("filtered queries" in n and "audit events" in n for n in notes), notes
