"""junit.xml: one testcase per clause, classname the chapter, the reason as failure message.

The reason stays on every testcase (CI dashboards show it); a clause's evidence goes to an
attachment file, ``junit-attachments/<clause>.json`` beside junit.xml, named in the case's
``system-out`` as ``[[ATTACHMENT|path]]`` (the convention Jenkins, GitLab and others read), so
junit.xml itself stays small enough for CI to carry.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.report.model import RunReport, Verdict, printable

ATTACHMENTS = "junit-attachments"


def attachment_name(clause_id: str) -> str:
    """The path, relative to junit.xml, of a clause's evidence attachment."""
    return f"{ATTACHMENTS}/{clause_id}.json"


def junit_tree(report: RunReport) -> ET.ElementTree:
    """The JUnit XML document of ``report``."""
    counts = report.counts
    waived = sum(r.waived for r in report.clauses)
    suite = ET.Element(
        "testsuite",
        {
            "name": f"{report.standard} {report.profile}",
            "tests": str(len(report.clauses)),
            "failures": str(counts[Verdict.FAIL] - waived),
            "errors": str(counts[Verdict.ERROR]),
            "skipped": str(counts[Verdict.SKIP] + waived),
            "time": f"{sum(r.duration_s for r in report.clauses):.3f}",
            "timestamp": report.started_at,
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", report.verdict.value),
        ("node_id", str(report.target.get("node_id", ""))),
        ("base_url", str(report.target.get("base_url", ""))),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for result in report.clauses:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": result.chapter,
                "name": f"{result.id} {result.title.get('en', '')}".strip(),
                "time": f"{result.duration_s:.3f}",
            },
        )
        detail = printable(
            "\n".join(str(e.get("summary") or e.get("note") or "") for e in result.evidence)
        ).strip()
        # The clause id leads the message: CI dashboards show the message without the case name.
        message = printable(f"{result.id}: {result.reason}")
        if result.waived and result.waiver is not None:
            # A waived FAIL blocks nothing: CI sees it skipped, with the waiver in its message.
            waiver = result.waiver
            text = f"WAIVED by {waiver['approver']} ({waiver['ticket']}) until {waiver['expires']}"
            ET.SubElement(case, "skipped", {"message": printable(f"{message} — {text}")})
        elif result.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", {"message": message, "type": result.level}).text = (
                detail or None
            )
        elif result.verdict is Verdict.ERROR:
            ET.SubElement(case, "error", {"message": message, "type": result.level}).text = (
                detail or None
            )
        elif result.verdict is Verdict.SKIP:
            ET.SubElement(case, "skipped", {"message": message})
        out = [message]
        if result.evidence and result.verdict is not Verdict.SKIP:
            out.append(f"[[ATTACHMENT|{attachment_name(result.id)}]]")
        ET.SubElement(case, "system-out").text = "\n".join(out)
    root = ET.Element("testsuites", {"name": "conformance"})
    root.append(suite)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: RunReport, path: Path) -> Path:
    """Writes ``report`` as JUnit XML to ``path``."""
    tree = junit_tree(report)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    folder = path.parent / ATTACHMENTS
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.json"):
        stale.unlink()
    for result in report.clauses:
        if result.evidence and result.verdict is not Verdict.SKIP:
            (path.parent / attachment_name(result.id)).write_text(
                json.dumps(list(result.evidence), ensure_ascii=False, indent=1), encoding="utf-8"
            )
    return path
