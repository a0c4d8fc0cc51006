"""Reports of a run: the result model and its writers (json, html, junit, markdown).

Writers only render the model; nothing is recomputed. ``write_reports`` writes every report
of a run into one folder and answers their paths.
"""

from __future__ import annotations

from pathlib import Path

from conformance.report.html import write_html
from conformance.report.json_writer import write_json
from conformance.report.junit import write_junit
from conformance.report.markdown import write_summary
from conformance.report.model import RunReport

REPORT_FILES = {
    "report.json": write_json,
    "report.html": write_html,
    "junit.xml": write_junit,
    "summary.md": write_summary,
}


def write_reports(report: RunReport, folder: Path) -> dict[str, Path]:
    """Writes every report file of ``report`` into ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: writer(report, folder / name) for name, writer in REPORT_FILES.items()}
