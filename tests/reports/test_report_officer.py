"""report.html and summary.md as the certification officer reads and signs them: verdict and
findings first with the clause's text, the deciding exchange marked, the report's id and digest,
the certification request, a sign-off block, and the subscriptions in an appendix."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

from report_builders import Page, clauses, exchange, load_results, make_report

from conformance.profile import load_clauses, load_profile
from conformance.report import write_reports
from conformance.report.html import render_html
from conformance.report.markdown import render_summary
from conformance.report.model import RunReport, Verdict

REQUEST = {
    "node_name": "浙江省数据共享交换平台",
    "operator": "浙江省大数据发展管理局",
    "vendor": "示例软件有限公司",
    "product": "交换节点",
    "version": "2.4.0",
    "contact": "张联系",
    "tester": "李测试",
    "reviewer": "王审核",
}


def _failing_report() -> tuple[RunReport, str]:
    must = next(c for c in clauses() if c.level == "MUST")
    evidence = [exchange('{"first": 1}'), exchange('{"decisive": "the last one"}', status=200)]
    report = make_report({must.id: Verdict.FAIL}, evidence={must.id: evidence})
    target = {**report.target, "request": REQUEST}
    created = {"subscriptions": [{"subscription_id": "SUB-0001", "status": "REVOKED"}]}
    return dataclasses.replace(report, target=target, created=created), must.id


def test_findings_come_first_with_the_clause_text_and_the_deciding_exchange() -> None:
    report, clause = _failing_report()
    page = render_html(report)
    order = [page.index(f'id="{name}"') for name in ("verdict", "findings", "request", "target")]
    assert order == sorted(order)
    findings = page[page.index('id="findings"') : page.index('id="request"')]
    text = next(c for c in load_clauses() if c.id == clause).summary
    assert html.escape(text.zh, quote=False) in findings
    assert html.escape(text.en, quote=False) in findings
    assert f'id="finding-{clause}"' in findings
    decisive = findings[findings.index('class="exchange decisive"') :]
    assert "the last one" in html.unescape(decisive)
    assert "first" not in html.unescape(decisive.split("</div>\n</div>")[0])
    # The sign-off closes the body; the created subscriptions and every clause with its full
    # evidence follow as appendices.
    marks = [page.index(f'id="{name}"') for name in ("load", "sign-off", "created", "clauses")]
    assert marks == sorted(marks)


def test_the_page_names_the_report_and_its_digest_as_report_json_is_sealed(
    tmp_path: Path,
) -> None:
    report, _ = _failing_report()
    paths = write_reports(report, tmp_path)
    sealed = json.loads(paths["report.json"].read_text(encoding="utf-8"))["integrity"]["digest"]
    page = paths["report.html"].read_text(encoding="utf-8")
    summary = paths["summary.md"].read_text(encoding="utf-8")
    assert sealed in page
    assert f"report.json SM3: `{sealed}`" in summary
    assert f"-{sealed[:8].upper()}" in page


def test_the_request_and_sign_off_are_on_the_page_in_both_languages() -> None:
    report, _ = _failing_report()
    page = render_html(report)
    for value in REQUEST.values():
        assert value in page
    assert "认证申请" in page
    assert "Certification request" in page
    assert "签字确认" in page
    assert "Sign-off" in page
    assert Page(page).external_references() == []


def test_the_banner_headline_is_in_both_languages() -> None:
    report, _ = _failing_report()
    page = render_html(report)
    headline = page[page.index('id="headline"') : page.index('id="identity"')]
    assert '<span class="l-zh" lang="zh-CN">未通过认证：通过' in headline
    assert f'<span class="l-en" lang="en">{report.headline()}' in headline


def test_summary_md_has_findings_first_and_a_sign_off() -> None:
    report, clause = _failing_report()
    summary = render_summary(report)
    assert summary.index("## 发现项 Findings") < summary.index("## 认证申请 Certification request")
    assert summary.index("## 认证申请") < summary.index("## 运行信息 Run")
    assert f"| {clause} | MUST | FAIL |" in summary
    assert "未通过认证" in summary.splitlines()[0]
    assert "- 运营单位 operator: 浙江省大数据发展管理局" in summary
    assert "## 签字确认 Sign-off" in summary
    assert summary.index("## 签字确认") < summary.index("## 附录 A")


def test_a_clean_run_says_there_are_no_findings() -> None:
    page = render_html(make_report())
    assert "No findings: every assessed clause passes." in page
    assert "无发现项" in render_summary(make_report())


def test_load_figures_are_translated_and_beside_their_thresholds() -> None:
    page = render_html(make_report(load=load_results()))
    load = page[page.index('id="load"') :]
    assert "延迟 p95（毫秒）" in load
    assert "Latency p95 (ms)" in load
    # share-query is ATS-PERF-01: its p95 bound is the provincial profile's parameter.
    bound = next(c for c in load_profile("provincial").clauses if c.id == "ATS-PERF-01")
    assert f"≤ {bound.params['p95_ms']}" in load
