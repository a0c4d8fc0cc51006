"""What the emulated neighbours receive reaches the clause's evidence in report.json: the push
of a sync (ATS-CAS-01) and the query routed down (ATS-CAS-04), scrubbed of every secret."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cascade_node import CHILD_ID, candidate_target

from conformance.target import load_target


def _received(clause: dict[str, Any], by: str, method: str, path: str) -> list[dict[str, Any]]:
    return [
        e
        for e in clause["evidence"]
        if by in str(e.get("received_by")) and e["method"] == method and e["target"] == path
    ]


@pytest.mark.timeout(180)
def test_report_json_holds_what_the_neighbours_received(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    with candidate_target(tmp_path) as target_path:
        secrets = load_target(target_path).secrets()
        done = subprocess.run(
            [sys.executable, "-m", "conformance.cli", "run", "--target", str(target_path),
             "--report-dir", str(reports), "--only", "ATS-CAS-01", "--only", "ATS-CAS-04",
             "--load", "off", "-q"],
            capture_output=True,
            text=True,
            timeout=150,
        )  # fmt: skip
    text = (reports / "report.json").read_text("utf-8")
    clauses = {c["id"]: c for c in json.loads(text)["clauses"]}
    assert clauses["ATS-CAS-01"]["verdict"] == "PASS", done.stdout
    assert clauses["ATS-CAS-04"]["verdict"] == "PASS", done.stdout
    pushes = _received(clauses["ATS-CAS-01"], "parent 100000", "POST", "/api/v1/cascade/catalog")
    assert pushes, clauses["ATS-CAS-01"]["evidence"]
    # The push is cut at the client's evidence bound, its size kept.
    shown = pushes[-1]["request_body"].replace(" ", "")
    assert shown.startswith('{"source_node_id":"330000"')
    assert '"full":true' in shown
    assert pushes[-1]["request_body_size"] >= len(shown.encode("utf-8"))
    assert pushes[-1]["verified"] is True
    forwarded = [
        e
        for e in clauses["ATS-CAS-04"]["evidence"]
        if f"child {CHILD_ID}" in str(e.get("received_by")) and "/api/v1/share/" in e["target"]
    ]
    assert forwarded, clauses["ATS-CAS-04"]["evidence"]
    headers = forwarded[0]["request_headers"]
    assert headers["X-Signature"] == "***"
    assert headers["X-Route"] == "330000"
    assert json.loads(forwarded[0]["request_body"]) == {"page": 1, "size": 5}
    # ATS chapter 3: no credential of the target file reaches the report.
    assert secrets
    assert not [s for s in secrets if s in text]
