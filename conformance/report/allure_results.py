"""The allure results of a run, finished once the run's verdict is known.

allure-pytest writes one result file per clause as the clause ends; what it cannot know then is
written here at the end: ``environment.properties`` (node, verdict, profile and its digest, suite
version) and ``executor.json`` (who ran it, the report id), and each result is tidied — no
exception-class prefix before the clause's message (``conformance.plugin.ClauseOutcome: ``),
no tag twice (the level comes both as a tag and as a pytest marker).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conformance.report.integrity import report_identity
from conformance.report.model import RunReport

# A Python exception's class as traceback prints it before the message: module path and name.
_CLASS_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Outcome|Failed|Skipped|Exception): ")
_XFAIL = "XFAIL "


def environment(report: RunReport) -> dict[str, str]:
    """The run's facts allure shows in its Environment widget."""
    report_id, digest = report_identity(report)
    target = report.target
    return {
        "standard": report.standard,
        "node_id": str(target.get("node_id", "")),
        "node_level": str(target.get("level", "")),
        "base_url": str(target.get("base_url", "")),
        "verdict": report.verdict.value,
        "profile": report.profile,
        "profile_digest": report.profile_digest,
        "suite_version": report.suite_version,
        "report_id": report_id,
        "report_sm3": digest,
    }


def clean_message(message: str) -> str:
    """``message`` without exception-class prefixes and without a repeated part."""
    parts: list[str] = []
    for part in message.split("\n\n"):
        part = part.removeprefix(_XFAIL)
        part = _CLASS_PREFIX.sub("", part, count=1)
        if part and part not in parts:
            parts.append(part)
    return "\n\n".join(parts)


def _tidy(result: dict[str, Any]) -> dict[str, Any]:
    details = result.get("statusDetails")
    if isinstance(details, dict) and isinstance(details.get("message"), str):
        details["message"] = clean_message(details["message"])
    seen: set[tuple[str, str]] = set()
    labels = []
    for label in result.get("labels") or ():
        key = (str(label.get("name")), str(label.get("value")).lower())
        if label.get("name") == "tag" and key in seen:
            continue
        seen.add(key)
        labels.append(label)
    result["labels"] = labels
    return result


def finish_allure_results(folder: Path, report: RunReport) -> None:
    """Writes the run's environment and executor into ``folder`` and tidies every result."""
    if not folder.is_dir():
        return
    facts = environment(report)
    (folder / "environment.properties").write_text(
        "".join(f"{key}={value}\n" for key, value in facts.items()), encoding="utf-8"
    )
    executor = {
        "name": "ATS conformance suite",
        "type": "ats-conformance",
        "buildName": facts["report_id"],
        "reportName": f"{report.standard} {facts['node_id']} {facts['verdict']}",
    }
    (folder / "executor.json").write_text(json.dumps(executor, ensure_ascii=False), "utf-8")
    for path in folder.glob("*-result.json"):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(result, dict):
            path.write_text(json.dumps(_tidy(result), ensure_ascii=False), encoding="utf-8")
