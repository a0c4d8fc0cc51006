"""The plugin: inert without --target; with it, one item per clause and reports as pytest runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness_servers import closed_port

from conformance.profile import load_profile


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:locust", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_target_the_plugin_is_inert(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert True\n")
    done = pytest_in(tmp_path, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert not (tmp_path / "reports").exists()


def test_plain_pytest_collects_one_item_per_clause(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert True\n")
    target = write_target(closed_port())
    done = pytest_in(
        tmp_path, "-p", "conformance.plugin", "--target", str(target), "--collect-only", "-q"
    )
    collected = [line for line in done.stdout.splitlines() if "::ATS-" in line]
    profile = load_profile("provincial")
    assert collected == [f"{c.chapter}::{c.id}" for c in profile.clauses]
    assert "test_plain" not in done.stdout


def test_plain_pytest_run_writes_reports_and_exit_follows_verdict(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    target = write_target(closed_port())
    reports = tmp_path / "out"
    done = pytest_in(
        tmp_path,
        "-p", "conformance.plugin", "--target", str(target), "--ats-only", "NODE",
        "--ats-load", "off", "--ats-report-dir", str(reports), "-v",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NODE::ATS-NODE-01 ERROR  MUST  " in done.stdout
    document = json.loads((reports / "report.json").read_text())
    skipped = [c for c in document["clauses"] if c["chapter"] != "NODE"]
    assert skipped
    assert all(c["reason"].startswith("not selected (--only NODE)") for c in skipped)
    assert document["partial"] is True


def test_a_clause_deselected_by_pytest_options_is_reported_skipped(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    target = write_target(closed_port())
    reports = tmp_path / "out"
    pytest_in(
        tmp_path,
        "--target", str(target), "--ats-only", "NODE", "--ats-load", "off",
        "--ats-report-dir", str(reports), "-k", "not ATS-NODE-02",
    )  # fmt: skip
    clauses = {c["id"]: c for c in json.loads((reports / "report.json").read_text())["clauses"]}
    assert clauses["ATS-NODE-02"]["verdict"] == "SKIP"
    assert "deselected" in clauses["ATS-NODE-02"]["reason"]
    assert clauses["ATS-NODE-01"]["verdict"] == "ERROR"
