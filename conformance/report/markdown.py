"""summary.md: the verdict, the counts and every failing clause with its reason."""

from __future__ import annotations

from pathlib import Path

from conformance.report.model import ClauseResult, RunReport, Verdict, printable


def _cell(text: str) -> str:
    return printable(" ".join(text.replace("|", "\\|").split()))


def render_summary(report: RunReport) -> str:
    """The one-page Markdown summary of ``report``."""
    target = report.target
    lines = [
        f"# {report.standard} conformance run — {report.verdict.value}",
        "",
        report.headline(),
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
        "",
        "| chapter | PASS | FAIL | ERROR | SKIP |",
        "|---|---|---|---|---|",
    ]
    for chapter, row in report.summary()["by_chapter"].items():
        lines.append(f"| {chapter} | " + " | ".join(str(row[v]) for v in Verdict) + " |")
    failing = [r for r in report.clauses if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    if failing:
        lines += [
            "",
            "## Findings",
            "",
            "| clause | level | verdict | reason |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r.id} | {r.level} | {_shown(r)} | {_cell(r.reason)} |" for r in failing]
    lines += _waivers(report)
    created = report.created.get("subscriptions") or []
    if created:
        lines += ["", "## Subscriptions this run created", ""]
        lines += [
            f"- {s.get('subscription_id')}: {s.get('resource_code') or '?'} by "
            f"{s.get('app_id') or '?'}, {s.get('status') or s.get('unknown') or 'status unknown'}"
            for s in created
        ]
    missing = report.unimplemented_must()
    if missing:
        lines += ["", "## MUST clauses not implemented", ""]
        lines.append(", ".join(r.id for r in missing))
    unassessed = report.unassessed_must()
    if unassessed:
        lines += ["", "## MUST clauses not assessed (never a certification)", ""]
        lines += [f"- {r.id}: {_cell(r.reason)}" for r in unassessed]
    return "\n".join(lines) + "\n"


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
    lines = ["", "## Waivers", "", f"- file: {record.get('file')}; signer: {signer}"]
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
