"""A run given the authority's waivers (`--ats-waivers`, `--ats-authority-pubkey`): the waived
FAIL reads WAIVED in report.json, JUnit and allure, and no longer decides the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from harness_servers import json_answer, serve

from conformance.authority.keys import init_keys, load_signing_key
from conformance.authority.waivers import sign_waivers

PASSPHRASE = b"correct horse battery"


def _down(request: bytes) -> bytes:
    # ATS-NODE-01: health must answer status UP; this node says DOWN.
    return json_answer(200, {"status": "DOWN", "time": "2026-11-25T09:00:00+08:00"})


def test_a_waived_fail_reads_waived_in_every_report_of_a_run(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    init_keys(tmp_path / "authority", PASSPHRASE)
    waivers = tmp_path / "waivers.yaml"
    entry = {
        "clause": "ATS-NODE-01",
        "node_id": "330000",
        "reason": "health endpoint replaced in release 2.4",
        "approver": "王审核",
        "ticket": "CERT-2026-118",
        "expires": "2099-12-31",
    }
    waivers.write_text(yaml.safe_dump({"waivers": [entry]}, allow_unicode=True), "utf-8")
    sign_waivers(waivers, load_signing_key(tmp_path / "authority/authority.key.pem", PASSPHRASE))
    reports = tmp_path / "out"
    with serve(_down) as (url, _):
        target = write_target(url)
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        done = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:locust",
                "-p", "conformance.plugin", "--target", str(target),
                "--ats-only", "ATS-NODE-01", "--ats-load", "off",
                "--ats-report-dir", str(reports), "--alluredir", str(reports / "allure-results"),
                "--ats-waivers", str(waivers),
                "--ats-authority-pubkey", str(tmp_path / "authority/authority.pub.pem"),
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    (clause,) = [c for c in document["clauses"] if c["id"] == "ATS-NODE-01"]
    assert clause["verdict"] == "FAIL", clause["reason"]
    assert clause["waiver"]["approver"] == "王审核"
    # A partial lab run is LAB_CONFORMANT at best; the waived MUST FAIL no longer blocks it.
    assert document["verdict"] == "LAB_CONFORMANT"
    assert done.returncode == 0, done.stdout + done.stderr
    junit = (reports / "junit.xml").read_text(encoding="utf-8")
    assert "WAIVED by 王审核 (CERT-2026-118) until 2099-12-31" in junit
    results = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in (reports / "allure-results").glob("*-result.json")
    ]
    (allure,) = [r for r in results if "ATS-NODE-01" in r.get("name", "")]
    assert allure["status"] == "skipped"
    assert "WAIVED by 王审核" in allure["statusDetails"]["message"]
    assert allure["statusDetails"]["message"].startswith("ATS-NODE-01: WAIVED by 王审核")
    tags = [label["value"].lower() for label in allure["labels"] if label["name"] == "tag"]
    assert len(tags) == len(set(tags))
    environment = (reports / "allure-results/environment.properties").read_text(encoding="utf-8")
    assert "verdict=LAB_CONFORMANT\n" in environment
    assert "node_id=330000\n" in environment
    assert f"profile_digest={document['profile_digest']}\n" in environment
    executor = json.loads((reports / "allure-results/executor.json").read_text(encoding="utf-8"))
    assert executor["buildName"].startswith("ATS-330000-")
    # JUnit keeps the reason per case; the evidence is an attachment file beside it.
    assert "[[ATTACHMENT|junit-attachments/ATS-NODE-01.json]]" in junit
    attachment = json.loads((reports / "junit-attachments/ATS-NODE-01.json").read_text("utf-8"))
    assert attachment == clause["evidence"]
    assert '"status": "DOWN"' not in junit
