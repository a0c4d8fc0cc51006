"""`conformance run` without a target certifies reference node 330000, then stops it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests


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
         "--only", "NODE", "--only", "AUTH", "--load", "off"],
        capture_output=True,
        text=True,
        timeout=100,
    )  # fmt: skip
    document = json.loads((reports / "report.json").read_text())
    assert document["target"]["node_id"] == "330000"
    assert document["lab"] is True
    node = {c["id"]: c["verdict"] for c in document["clauses"] if c["chapter"] == "NODE"}
    assert node["ATS-NODE-01"] == "PASS", done.stdout
    assert done.returncode == (1 if document["verdict"] == "NOT_CERTIFIED" else 0)
    assert "ATS-NODE-01  PASS" in done.stdout
    assert "secret" not in (reports / "report.json").read_text().lower()
    # The node process is gone: its address refuses connections.
    url = re.search(r"reference node 330000 ready at (\S+)", done.stdout)
    assert url is not None
    assert _refused(url.group(1))
