"""summary.md: the verdict, the counts and every failing clause with its reason."""

from __future__ import annotations

from pathlib import Path

from conformance.report.html import clause_texts, headline_zh, labels
from conformance.report.integrity import report_identity
from conformance.report.model import ClauseResult, RunReport, Verdict, printable


def _cell(text: str) -> str:
    return printable(" ".join(text.replace("|", "\\|").split()))


def render_summary(report: RunReport) -> str:
    """The one-page Markdown summary of ``report``: verdict and findings first, both languages."""
    target = report.target
    names = labels()["run_verdicts"][report.verdict.value]
    report_id, digest = report_identity(report)
    lines = [
        f"# {report.standard} 一致性测试 conformance run — {names['zh']} {report.verdict.value}",
        "",
        headline_zh(report),
        "",
        report.headline(),
        "",
        f"- 报告编号 report id: `{report_id}`",
        f"- report.json SM3: `{digest}`",
    ]
    failing = [r for r in report.clauses if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    texts = clause_texts()
    lines += ["", "## 发现项 Findings", ""]
    if not failing:
        lines.append("无发现项 — no findings: every assessed clause passes.")
    else:
        lines += ["| clause | level | verdict | reason |", "|---|---|---|---|"]
        lines += [f"| {r.id} | {r.level} | {_shown(r)} | {_cell(r.reason)} |" for r in failing]
        lines.append("")
        for r in failing:
            text = texts.get(r.id)
            if text:
                lines.append(f"- **{r.id}** {_cell(text['zh'])} / {_cell(text['en'])}")
    lines += _waivers(report)
    request = target.get("request") or {}
    lines += ["", "## 认证申请 Certification request", ""]
    lines += [
        f"- {label}: {_cell(str(request.get(key) or '—'))}" for key, label in _REQUEST.items()
    ]
    lines += [
        "",
        "## 运行信息 Run",
        "",
        f"- node: {target.get('node_id')} ({target.get('level')}) at {target.get('base_url')}",
        f"- profile: {report.profile} (sha256:{report.profile_digest[:16]}); "
        f"suite {report.suite_version}",
        f"- load stage: {report.load_mode}",
        f"- run: {report.started_at} → {report.finished_at}",
        *(
            ["- lab run (plain HTTP): transport security was not assessed; never a certification"]
            if report.lab
            else []
        ),
        *(
            [f"- {report.stop_text()}: {_cell(report.stopped.get('reason', ''))}"]
            if report.stopped
            else []
        ),
        *(
            ["- a certification would need: " + "; ".join(report.to_certify())]
            if report.to_certify()
            else []
        ),
        "",
    ]
    if report.preflight:
        lines += ["## 预检 Preflight", "", "| item | status | detail |", "|---|---|---|"]
        lines += [
            f"| {_cell(i.get('item', ''))} | {i.get('status')} | {_cell(i.get('detail', ''))} |"
            for i in report.preflight
        ]
        lines.append("")
    lines += [
        "| chapter | PASS | FAIL | ERROR | SKIP |",
        "|---|---|---|---|---|",
    ]
    for chapter, row in report.summary()["by_chapter"].items():
        lines.append(f"| {chapter} | " + " | ".join(str(row[v]) for v in Verdict) + " |")
    missing = report.unimplemented_must()
    if missing:
        lines += ["", "## 未实现检查的“必须”条款 MUST clauses not implemented", ""]
        lines.append(", ".join(r.id for r in missing))
    unassessed = report.unassessed_must()
    if unassessed:
        heading = "未评估的“必须”条款（不构成认证） MUST clauses not assessed"
        heading += " (never a certification)"
        lines += ["", f"## {heading}", ""]
        lines += [f"- {r.id}: {_cell(r.reason)}" for r in unassessed]
    lines += [
        "",
        "## 签字确认 Sign-off",
        "",
        f"- 测试人 Tester: {_cell(str(request.get('tester') or ''))} — {_SIGN}",
        f"- 审核人 Reviewer: {_cell(str(request.get('reviewer') or ''))} — {_SIGN}",
        f"- 认证官员 Certification officer: — {_SIGN}",
    ]
    created = report.created.get("subscriptions") or []
    if created:
        lines += ["", "## 附录 A Appendix A · Subscriptions this run created", ""]
        lines += [
            f"- {s.get('subscription_id')}: {s.get('resource_code') or '?'} by "
            f"{s.get('app_id') or '?'}, {s.get('status') or s.get('unknown') or 'status unknown'}"
            for s in created
        ]
    return "\n".join(lines) + "\n"


_SIGN = "签字与日期 signature and date:"
_REQUEST = {
    "node_name": "节点名称 node name",
    "operator": "运营单位 operator",
    "vendor": "开发厂商 vendor",
    "product": "产品 product",
    "version": "版本 version",
    "contact": "联系人 contact",
    "tester": "测试人 tester",
    "reviewer": "审核人 reviewer",
}


def _shown(result: ClauseResult) -> str:
    if result.waiver is None or not result.waived:
        return result.verdict.value
    waiver = result.waiver
    return f"WAIVED ({_cell(waiver['approver'])}, until {waiver['expires']})"


def _waivers(report: RunReport) -> list[str]:
    """The waivers section: the file, its signer, and every waiver ignored with why."""
    record = report.waivers
    if not record:
        return []
    signer = record.get("signer") or "NOT signed by the authority key"
    lines = ["", "## 豁免 Waivers", "", f"- file: {record.get('file')}; signer: {signer}"]
    lines += [
        f"- applied: {a['clause']} by {_cell(a['approver'])} ({_cell(a['ticket'])}), "
        f"until {a['expires']}"
        for a in record.get("applied", ())
    ]
    lines += [
        f"- ignored: {a['clause']} for node {a['node_id']}: {_cell(a['why'])}"
        for a in record.get("ignored", ())
    ]
    return lines


def write_summary(report: RunReport, path: Path) -> Path:
    """Writes the Markdown summary of ``report`` to ``path``."""
    path.write_text(render_summary(report), encoding="utf-8")
    return path
