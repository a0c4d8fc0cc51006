"""Reports CI can carry: junit.xml small with the reason per case and evidence in attachments,
report.json complete for failing clauses and sampled for passing ones, allure results tidy."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from report_builders import clauses, exchange, make_report

from conformance.report import write_reports
from conformance.report.allure_results import clean_message, finish_allure_results
from conformance.report.html import html_from_json
from conformance.report.integrity import verify_file
from conformance.report.model import EVIDENCE_SAMPLE, RunReport, Verdict


def _report() -> tuple[RunReport, str, str]:
    failing = next(c.id for c in clauses() if c.level == "MUST")
    passing = next(c.id for c in clauses() if c.id != failing)
    many = [exchange(f'{{"n": {i}}}') for i in range(EVIDENCE_SAMPLE + 4)]
    report = make_report({failing: Verdict.FAIL}, evidence={passing: many, failing: many})
    return report, passing, failing


def test_report_json_keeps_failing_evidence_whole_and_samples_passing_evidence(
    tmp_path: Path,
) -> None:
    report, passing, failing = _report()
    paths = write_reports(report, tmp_path)
    document = json.loads(paths["report.json"].read_text(encoding="utf-8"))
    by_id = {c["id"]: c for c in document["clauses"]}
    assert len(by_id[failing]["evidence"]) == EVIDENCE_SAMPLE + 4
    assert "evidence_total" not in by_id[failing]
    assert len(by_id[passing]["evidence"]) == EVIDENCE_SAMPLE
    assert by_id[passing]["evidence_total"] == EVIDENCE_SAMPLE + 4
    # Read back and written again, the report is the same document: its digest still holds.
    assert RunReport.from_dict(document).to_dict()["clauses"] == document["clauses"]
    assert verify_file(paths["report.json"]).state == 0


def test_junit_keeps_the_reason_per_case_and_the_evidence_in_attachments(tmp_path: Path) -> None:
    report, passing, failing = _report()
    paths = write_reports(report, tmp_path)
    cases = {
        c.get("name", "").split(" ")[0]: c for c in ET.parse(paths["junit.xml"]).iter("testcase")
    }
    failure = cases[failing].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(f"{failing}: ")
    out = cases[failing].findtext("system-out") or ""
    assert f"[[ATTACHMENT|junit-attachments/{failing}.json]]" in out
    assert '"n": 1' not in paths["junit.xml"].read_text(encoding="utf-8")
    attached = json.loads((tmp_path / f"junit-attachments/{failing}.json").read_text("utf-8"))
    assert len(attached) == EVIDENCE_SAMPLE + 4
    assert cases[passing].findtext("system-out", "").startswith(f"{passing}: ")


def test_allure_messages_lose_the_exception_class_and_tags_are_not_repeated(
    tmp_path: Path,
) -> None:
    assert clean_message("conformance.plugin.ClauseOutcome: ATS-AUTH-05: replayed") == (
        "ATS-AUTH-05: replayed"
    )
    assert clean_message("AssertionError: ATS-X-01: no") == "ATS-X-01: no"
    assert clean_message("Skipped: lab run: plain HTTP") == "lab run: plain HTTP"
    assert clean_message(
        "XFAIL ATS-X-01: WAIVED\n\n_pytest.outcomes.XFailed: ATS-X-01: WAIVED"
    ) == ("ATS-X-01: WAIVED")
    results = tmp_path / "allure-results"
    results.mkdir()
    labels = [{"name": "tag", "value": "MUST"}, {"name": "tag", "value": "must"}]
    labels.append({"name": "epic", "value": "AUTH"})
    result = {"statusDetails": {"message": "conformance.plugin.ClauseError: ATS-A-01: x"}}
    (results / "1-result.json").write_text(json.dumps({**result, "labels": labels}), "utf-8")
    report, _, _ = _report()
    finish_allure_results(results, report)
    tidy = json.loads((results / "1-result.json").read_text(encoding="utf-8"))
    assert tidy["statusDetails"]["message"] == "ATS-A-01: x"
    assert [label["value"] for label in tidy["labels"]] == ["MUST", "AUTH"]
    properties = (results / "environment.properties").read_text(encoding="utf-8")
    assert "verdict=NOT_CERTIFIED\n" in properties
    assert "suite_version=0.1.0\n" in properties
    assert json.loads((results / "executor.json").read_text("utf-8"))["name"]


def test_a_page_rendered_again_from_report_json_says_the_evidence_is_a_sample(
    tmp_path: Path,
) -> None:
    report, passing, _ = _report()
    paths = write_reports(report, tmp_path)
    page = html_from_json(paths["report.json"], tmp_path / "again.html").read_text("utf-8")
    row = page[page.index(f'id="{passing}"') :]
    assert f"{EVIDENCE_SAMPLE} / {EVIDENCE_SAMPLE + 4}" in row[: row.index("</tr>")]
