"""`conformance run` without a target certifies reference node 330000, then stops it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conformance.allure_report import find_allure


def _refused(url: str) -> bool:
    try:
        requests.get(f"{url}/api/v1/health", timeout=2)
    except requests.ConnectionError:
        return True
    return False


@pytest.mark.timeout(120)
def test_embedded_default_run(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--report-dir", str(reports),
         "--only", "NODE", "AUTH", "SUB", "--load", "off"],
        capture_output=True,
        text=True,
        timeout=100,
    )  # fmt: skip
    document = json.loads((reports / "report.json").read_text())
    assert document["target"]["node_id"] == "330000"
    assert document["lab"] is True
    chosen = [c for c in document["clauses"] if c["chapter"] in ("NODE", "AUTH", "SUB")]
    assert {c["verdict"] for c in chosen} == {"PASS"}, done.stdout
    # The clean reference node passes what was assessed: conformant, and a partial lab run.
    assert document["verdict"] == "LAB_CONFORMANT"
    assert done.returncode == 0
    assert re.fullmatch(r"[0-9a-f]{64}", document["profile_digest"])
    # Every subscription the SUB checks created is listed with the status the node reports.
    created = document["created"]["subscriptions"]
    assert created
    assert {s["status"] for s in created} <= {"APPROVED", "REJECTED", "REVOKED", "PENDING"}
    assert all(s["resource_code"] and s["app_id"] for s in created)
    # Self-contained: the node's monthly assessment, read before it stopped, and the allure
    # HTML where the allure command line is installed (CI installs it).
    assessment = (reports / "assessment.csv").read_text(encoding="utf-8-sig")
    assert "330000" in assessment
    assert (reports / "assessment.html").is_file()
    assert (reports / "allure-report" / "index.html").is_file() is (find_allure() is not None)
    assert "ATS-NODE-01  PASS" in done.stdout
    assert "secret" not in (reports / "report.json").read_text().lower()
    # The node process is gone: its address refuses connections.
    url = re.search(r"reference node 330000 ready at (\S+)", done.stdout)
    assert url is not None
    assert _refused(url.group(1))
