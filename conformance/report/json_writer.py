"""report.json: the run as the public contract describes it."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.masking import ANY_RUN
from conformance.report.integrity import seal
from conformance.report.model import RunReport


def write_json(report: RunReport, path: Path) -> Path:
    """Writes ``report`` as UTF-8 JSON to ``path``, sealed with its integrity digest; the
    evidence masked once more, as every writer masks it (``conformance.masking``)."""
    document = report.to_dict()
    for result in document.get("clauses", []):
        result["evidence"] = ANY_RUN.value(result.get("evidence", []))
    path.write_text(
        json.dumps(seal(document), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return path
