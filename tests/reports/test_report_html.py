"""report.html: one self-contained bilingual page that escapes everything a node sent."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from markupsafe import escape
from report_builders import HOSTILE, Page, clauses, exchange, load_results, make_report

from conformance.cli import main
from conformance.report import write_reports
from conformance.report.html import TEMPLATES, labels, render_html, scrub_text
from conformance.report.model import RunReport, RunVerdict, Verdict


def _failing(level: str) -> str:
    return next(c.id for c in clauses() if c.level == level)


@pytest.mark.parametrize(
    ("verdict", "options"),
    [
        (RunVerdict.CERTIFIED, {}),
        (RunVerdict.CERTIFIED_WITH_FINDINGS, {"verdicts": {_failing("SHOULD"): Verdict.FAIL}}),
        (RunVerdict.LAB_CONFORMANT, {"lab": True}),
        (RunVerdict.NOT_CERTIFIED, {"verdicts": {_failing("MUST"): Verdict.ERROR}}),
        (
            RunVerdict.INCOMPLETE,
            {"stopped": {"stage": "preflight", "at": "connect", "reason": "nothing answers"}},
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, RunVerdict) else "",
)
def test_the_banner_names_the_run_verdict_in_both_languages(
    verdict: RunVerdict, options: dict
) -> None:
    report = make_report(**options)
    assert report.verdict is verdict
    page = render_html(report)
    banner = Page(page).elements("section", id="verdict")
    assert banner
    assert banner[0]["data-verdict"] == verdict.value
    label = labels()["run_verdicts"][verdict.value]
    assert label["zh"] in page
    assert label["en"] in page


def test_the_banners_chinese_labels_are_the_certification_words() -> None:
    names = {k: v["zh"] for k, v in labels()["run_verdicts"].items()}
    assert names == {
        "CERTIFIED": "认证通过",
        "CERTIFIED_WITH_FINDINGS": "认证通过（有发现项）",
        "LAB_CONFORMANT": "实验室一致",
        "NOT_CERTIFIED": "未通过认证",
        "INCOMPLETE": "未完成",
    }


def test_every_label_has_chinese_and_english() -> None:
    def leaves(node: object, place: str) -> list[str]:
        if isinstance(node, dict) and set(node) == {"zh", "en"}:
            return [place] if not (node["zh"] and node["en"]) else []
        if isinstance(node, dict):
            return [p for k, v in node.items() for p in leaves(v, f"{place}.{k}")]
        return [place]

    raw = yaml.safe_load((TEMPLATES / "labels.yaml").read_text(encoding="utf-8"))
    assert leaves(raw, "labels") == []


def test_the_page_references_nothing_outside_itself() -> None:
    evidence = {c.id: [exchange('{"link": "https://cdn.example/x.js"}')] for c in clauses()[:3]}
    page = render_html(make_report(evidence=evidence, load=load_results()))
    parsed = Page(page)
    assert parsed.external_references() == []
    assert len(parsed.scripts) == 1
    assert not any("src" in attrs for tag, attrs in parsed.tags if tag == "script")


def test_the_policy_admits_only_the_pages_own_script() -> None:
    parsed = Page(render_html(make_report()))
    policy = parsed.elements("meta", **{"http-equiv": "Content-Security-Policy"})[0]["content"]
    assert policy is not None
    digest = base64.b64encode(hashlib.sha256(parsed.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy


def test_a_hostile_node_answer_is_shown_as_text() -> None:
    target = clauses()[0].id
    report = make_report(
        verdicts={target: Verdict.FAIL},
        evidence={target: [exchange(HOSTILE), {"note": HOSTILE}]},
    )
    page = render_html(report)
    assert HOSTILE not in page
    assert "&lt;script&gt;document.title=" in page
    parsed = Page(page)
    assert len(parsed.scripts) == 1
    assert not [tag for tag, _ in parsed.tags if tag == "img"]
    handlers = [name for _, attrs in parsed.tags for name in attrs if name.startswith("on")]
    assert handlers == []


def test_a_hostile_clause_title_and_reason_are_escaped() -> None:
    report = make_report()
    first = report.clauses[0]
    hostile = type(first)(
        id=first.id,
        level=first.level,
        chapter=first.chapter,
        title={"zh": HOSTILE, "en": HOSTILE},
        verdict=Verdict.FAIL,
        reason=HOSTILE,
    )
    page = render_html(RunReport(**{**report.__dict__, "clauses": (hostile,)}))
    assert HOSTILE not in page
    assert len(Page(page).scripts) == 1


def test_every_clause_title_is_there_in_both_languages() -> None:
    page = render_html(make_report())
    for clause in clauses():
        assert f'id="{clause.id}"' in page
        assert f'<span class="l-zh" lang="zh-CN">{escape(clause.title.zh)}</span>' in page
        assert f'<span class="l-en" lang="en">{escape(clause.title.en)}</span>' in page


def test_the_filters_offer_every_verdict_and_chapter() -> None:
    report = make_report()
    parsed = Page(render_html(report))
    assert "hidden" in parsed.elements("div", id="filters")[0]
    assert parsed.elements("select", id="filter-verdict")
    values = [a.get("value") for t, a in parsed.tags if t == "option"]
    for verdict in Verdict:
        assert verdict.value in values
    for chapter in {c.chapter for c in clauses()}:
        assert chapter in values
    rows = parsed.elements("tr")
    marked = [r for r in rows if "data-verdict" in r and "data-chapter" in r]
    assert len(marked) == len(report.clauses)


def test_counts_are_shown_by_chapter_and_by_level() -> None:
    failing = _failing("MUST")
    report = make_report(verdicts={failing: Verdict.FAIL})
    page = render_html(report)
    summary = report.summary()
    assert labels()["text"]["by_chapter"]["zh"] in page
    assert labels()["text"]["by_level"]["en"] in page
    for chapter in summary["by_chapter"]:
        assert f"<code>{chapter}</code>" in page
    assert labels()["levels"]["SHOULD"]["zh"] in page


def test_evidence_bodies_are_pretty_printed_json() -> None:
    target = clauses()[0].id
    body = json.dumps({"code": "UNAUTHENTICATED", "items": [1, 2]})
    page = render_html(make_report(evidence={target: [exchange(body, status=401)]}))
    assert "{\n  &#34;code&#34;: &#34;UNAUTHENTICATED&#34;," in page


def test_signature_values_are_removed_even_when_unmasked() -> None:
    target = clauses()[0].id
    leaked = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    entries = [exchange("{}", signature=leaked), {"note": f"sent X-Signature: {leaked}"}]
    page = render_html(make_report(evidence={target: entries}))
    assert leaked not in page
    assert scrub_text(f'{{"secret": "{leaked}"}}') == '{"secret": "***"}'


def test_a_lab_run_says_transport_security_was_not_assessed() -> None:
    note = labels()["text"]["lab_note"]
    assert "transport security not assessed" in note["en"]
    assert note["zh"] in render_html(make_report(lab=True))
    assert note["zh"] not in render_html(make_report())


@pytest.mark.parametrize(("lab", "answer"), [(True, "answer_yes"), (False, "answer_no")])
def test_the_target_says_whether_the_run_is_a_lab_run_in_both_languages(
    lab: bool, answer: str
) -> None:
    text = labels()["text"]
    page = render_html(make_report(lab=lab))
    rows = (tr.split("</tr>")[0] for tr in page.split("<tr><th>")[1:])
    row = next(tr for tr in rows if text["lab"]["zh"] in tr)
    assert text[answer]["zh"] in row
    assert text[answer]["en"] in row
    assert "True" not in row
    assert "False" not in row


def test_the_load_section_has_figures_and_inline_charts() -> None:
    page = render_html(make_report(load=load_results()))
    parsed = Page(page)
    assert len(parsed.elements("svg")) >= 5
    assert parsed.elements("polyline")
    assert "share-query" in page
    assert "catalog-page" in page
    assert "step-150" in page
    assert labels()["text"]["steps_chart"]["zh"] in page
    assert labels()["text"]["no_load"]["en"] not in page
    assert labels()["text"]["no_load"]["en"] in render_html(make_report())


def test_the_run_metadata_is_shown() -> None:
    report = make_report()
    page = render_html(report)
    for value in (report.started_at, report.finished_at, report.suite_version, "provincial"):
        assert value in page
    assert "http://127.0.0.1:8301" in page


def test_the_run_writers_write_report_html(tmp_path: Path) -> None:
    paths = write_reports(make_report(), tmp_path)
    assert paths["report.html"] == tmp_path / "report.html"
    assert "<!DOCTYPE html>" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_the_html_command_renders_a_report_json_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_reports(make_report(lab=True), tmp_path)["report.json"]
    out = tmp_path / "again.html"
    assert main(["report", "html", str(source), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8") == (tmp_path / "report.html").read_text("utf-8")
    assert main(["report", "html", str(tmp_path / "summary.md")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_subscriptions_the_run_created_are_listed_with_their_final_status() -> None:
    created = {
        "subscriptions": [
            {"subscription_id": "s-1", "resource_code": "105001/330003", "app_id": "consumer-a",
             "status": "REVOKED"},
            {"subscription_id": "s-2", "unknown": "node unreachable"},
        ]
    }  # fmt: skip
    page = render_html(replace(make_report(), created=created))
    section = page.split('<section id="created">')[1].split("</section>")[0]
    for text in ("s-1", "105001/330003", "consumer-a", "REVOKED", "s-2", "node unreachable"):
        assert text in section
    assert '<section id="created">' not in render_html(make_report())


def test_the_profile_digest_is_shown() -> None:
    report = replace(make_report(), profile_digest="ab" * 32)
    assert f"sha256:{'ab' * 8}" in render_html(report)


def test_a_stopped_run_says_where_and_lists_its_preflight() -> None:
    # Issue 16: an INCOMPLETE run names the stage and the item it stopped at.
    report = make_report(
        stopped={"stage": "preflight", "at": "connect", "reason": "nothing answers"},
        preflight=({"item": "connect", "status": "stop", "detail": "nothing answers at x:1"},),
    )
    page = Page(render_html(report))
    assert page.elements("p", id="stopped-note")
    assert page.elements("section", id="preflight")
    assert "nothing answers at x:1" in render_html(report)


@pytest.mark.parametrize(
    ("status", "before_findings"), [("ok", False), ("warn", True), ("stop", True)]
)
def test_the_preflight_comes_before_the_findings_only_when_it_has_something_to_say(
    status: str, before_findings: bool
) -> None:
    # Issue 19, item 1: verdict and findings first; a clean preflight is context.
    stopped = {"stage": "preflight", "at": "connect", "reason": "x"} if status == "stop" else {}
    report = make_report(
        stopped=stopped,
        preflight=({"item": "connect", "status": status, "detail": "127.0.0.1:1"},),
    )
    html = render_html(report)
    assert html.count('<section id="preflight">') == 1
    assert (html.index('id="preflight"') < html.index('id="findings"')) is before_findings
