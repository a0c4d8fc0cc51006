"""Verdict rules and the writers: report.json, junit.xml, summary.md render the same model."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.report import write_reports
from conformance.report.model import ClauseResult, RunReport, RunVerdict, SkipCause, Verdict

P, F, E, S = Verdict.PASS, Verdict.FAIL, Verdict.ERROR, Verdict.SKIP


def result(
    clause_id: str, level: str, verdict: Verdict, cause: SkipCause | None = None
) -> ClauseResult:
    return ClauseResult(
        id=clause_id,
        level=level,
        chapter=clause_id.split("-")[1],
        title={"zh": "标题", "en": "title"},
        verdict=verdict,
        reason="expected 401 UNAUTHENTICATED, received 200 OK" if verdict in (F, E) else "ok",
        skip_cause=cause,
        evidence=({"note": "seen"},),
    )


def report(*clauses: ClauseResult, lab: bool = False, partial: bool = False) -> RunReport:
    return RunReport(
        profile="provincial",
        suite_version="0.1.0",
        started_at="2026-11-25T00:00:00Z",
        finished_at="2026-11-25T00:00:09Z",
        target={"base_url": "http://127.0.0.1:1", "node_id": "330000", "level": "provincial"},
        clauses=clauses,
        lab=lab,
        partial=partial,
    )


@pytest.mark.parametrize(
    ("clauses", "lab", "partial", "verdict"),
    [
        ([("MUST", P), ("SHOULD", P)], False, False, RunVerdict.CERTIFIED),
        ([("MUST", P), ("SHOULD", F)], False, False, RunVerdict.CERTIFIED_WITH_FINDINGS),
        ([("MUST", P), ("SHOULD", E)], False, False, RunVerdict.CERTIFIED_WITH_FINDINGS),
        ([("MUST", F), ("SHOULD", P)], False, False, RunVerdict.NOT_CERTIFIED),
        ([("MUST", E)], False, False, RunVerdict.NOT_CERTIFIED),
        ([("MUST", P), ("MAY", F)], False, False, RunVerdict.CERTIFIED_WITH_FINDINGS),
        ([("MUST", P)], True, False, RunVerdict.LAB_CONFORMANT),
        ([("MUST", P), ("SHOULD", F)], True, False, RunVerdict.LAB_CONFORMANT),
        ([("MUST", F)], True, False, RunVerdict.NOT_CERTIFIED),
        ([("MUST", P)], False, True, RunVerdict.LAB_CONFORMANT),
    ],
    ids=[
        "every clause passing certifies",
        "a failing SHOULD is a finding",
        "an erring SHOULD is a finding",
        "a failing MUST does not certify",
        "an erring MUST does not certify",
        "a failing MAY is a finding",
        "a passing lab run is lab conformant",
        "a lab run with findings is lab conformant",
        "a lab run with a failing MUST does not certify",
        "a passing partial run is never certified",
    ],
)
def test_run_verdict(
    clauses: list[tuple[str, Verdict]], lab: bool, partial: bool, verdict: RunVerdict
) -> None:
    results = [result(f"ATS-API-{i:02d}", level, v) for i, (level, v) in enumerate(clauses, 1)]
    assert report(*results, lab=lab, partial=partial).verdict is verdict


def test_a_must_clause_without_check_keeps_a_run_from_certifying() -> None:
    run = report(
        result("ATS-API-01", "MUST", P),
        result("ATS-API-02", "MUST", S, SkipCause.NOT_IMPLEMENTED),
    )
    assert run.verdict is RunVerdict.NOT_CERTIFIED
    assert "1 MUST clauses not implemented" in run.headline()


def test_a_not_applicable_must_clause_does_not_block() -> None:
    run = report(
        result("ATS-API-01", "MUST", P), result("ATS-CAS-02", "MUST", S, SkipCause.NOT_APPLICABLE)
    )
    assert run.verdict is RunVerdict.CERTIFIED


def test_an_unassessed_must_clause_keeps_a_run_from_certifying(tmp_path: Path) -> None:
    run = report(
        result("ATS-API-01", "MUST", P), result("ATS-CAS-02", "MUST", S, SkipCause.NOT_ASSESSED)
    )
    assert run.verdict is RunVerdict.LAB_CONFORMANT
    assert "MUST clauses not assessed (ATS-CAS-02): never a certification" in run.headline()
    assert run.summary()["must_not_assessed"] == 1
    paths = write_reports(run, tmp_path)
    assert "MUST clauses not assessed (never a certification)" in paths["summary.md"].read_text()
    assert 'id="unassessed"' in paths["report.html"].read_text()
    assert RunReport.from_dict(json.loads(paths["report.json"].read_text())) == run


def test_an_unassessed_should_clause_does_not_block() -> None:
    run = report(
        result("ATS-API-01", "MUST", P), result("ATS-CAS-11", "SHOULD", S, SkipCause.NOT_ASSESSED)
    )
    assert run.verdict is RunVerdict.CERTIFIED


def test_reports_render_one_model(tmp_path: Path) -> None:
    run = report(
        result("ATS-API-01", "MUST", P),
        result("ATS-AUTH-05", "MUST", F),
        result("ATS-NODE-05", "SHOULD", E),
        result("ATS-CAS-02", "MUST", S, SkipCause.NOT_APPLICABLE),
    )
    paths = write_reports(run, tmp_path)
    document = json.loads(paths["report.json"].read_text())
    assert document["verdict"] == "NOT_CERTIFIED"
    assert document["counts"] == {"PASS": 1, "FAIL": 1, "ERROR": 1, "SKIP": 1}
    assert {"standard", "profile", "suite_version", "started_at", "finished_at", "target",
            "clauses", "load"} <= set(document)  # fmt: skip
    assert RunReport.from_dict(document) == run

    suite = ET.parse(paths["junit.xml"]).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == ["API", "AUTH", "NODE", "CAS"]
    failure = cases[1].find("failure")
    assert failure is not None
    assert "received 200 OK" in (failure.get("message") or "")
    assert cases[2].find("error") is not None
    assert cases[3].find("skipped") is not None

    summary = paths["summary.md"].read_text()
    assert "NOT_CERTIFIED" in summary
    assert "| ATS-AUTH-05 | MUST | FAIL |" in summary
