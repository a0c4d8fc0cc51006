"""The plugin: inert without --target; with it, one item per clause and reports as pytest runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from harness_servers import closed_port, serve

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


@contextmanager
def not_http() -> Iterator[str]:
    """A server that answers, but not HTTP: past preflight, every clause is ERROR (an address
    where nothing answers would stop the run at preflight instead)."""
    with serve(lambda _: b"\x00\xffnot http at all\r\n\r\n") as (url, _):
        yield url


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
    # The standard's order, but a clause that compares the run's start with its end last.
    last = [c for c in profile.clauses if c.params.get("run_last")]
    assert [c.id for c in last] == ["ATS-AUD-03"]
    first = [c for c in profile.clauses if c not in last]
    assert collected == [f"{c.chapter}::{c.id}" for c in (*first, *last)]
    # The CI owner's own tests come after the clauses; collecting writes no report.
    assert "test_plain.py::test_one" in done.stdout.splitlines()
    assert not (tmp_path / "reports").exists()


def test_the_short_option_names_and_the_fixtures_serve_a_ci_owners_own_tests(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    (tmp_path / "test_own.py").write_text(
        "import pytest\n"
        "from conformance.client import NodeUnreachable\n\n"
        "def test_fixtures(ats_target, ats_apps, ats_client):\n"
        "    assert ats_target.node.node_id == '330000'\n"
        "    assert set(ats_apps) >= {'consumer', 'admin'}\n"
        "    assert ats_apps['admin'].secret not in repr(ats_apps)\n"
        "    with pytest.raises(NodeUnreachable):\n"
        "        ats_client.get('/api/v1/node', app='consumer')\n\n"
        "def test_own_failure():\n"
        "    assert False\n"
    )
    reports = tmp_path / "out"
    with not_http() as url:
        done = pytest_in(
            tmp_path,
            "-p", "conformance.plugin", "--target", str(write_target(url)), "--only", "NODE-01",
            "--load", "off", "--report-dir", str(reports), "-rA",
        )  # fmt: skip
    assert "PASSED test_own.py::test_fixtures" in done.stdout, done.stdout
    assert "FAILED test_own.py::test_own_failure" in done.stdout
    # 71 clauses outside --only are deselected, and said so.
    assert f"{len(load_profile('provincial').clauses) - 1} deselected" in done.stdout
    document = json.loads((reports / "report.json").read_text())
    assert document["selection"] == ["--only ATS-NODE-01", "--load off"]
    assert done.returncode == 1


def test_without_target_the_fixtures_skip_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "test_own.py").write_text("def test_it(ats_client):\n    assert False\n")
    done = pytest_in(tmp_path, "-p", "conformance.plugin", "-rs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no conformance run: pass --target FILE" in done.stdout


def test_plain_pytest_run_writes_reports_and_exit_follows_verdict(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    reports = tmp_path / "out"
    with not_http() as url:
        done = pytest_in(
            tmp_path,
            "-p", "conformance.plugin", "--target", str(write_target(url)), "--ats-only", "NODE",
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
    reports = tmp_path / "out"
    with not_http() as url:
        pytest_in(
            tmp_path,
            "--target", str(write_target(url)), "--ats-only", "NODE", "--ats-load", "off",
            "--ats-report-dir", str(reports), "-k", "not ATS-NODE-02",
        )  # fmt: skip
    clauses = {c["id"]: c for c in json.loads((reports / "report.json").read_text())["clauses"]}
    assert clauses["ATS-NODE-02"]["verdict"] == "SKIP"
    assert "deselected" in clauses["ATS-NODE-02"]["reason"]
    assert clauses["ATS-NODE-01"]["verdict"] == "ERROR"


def test_plain_pytest_counts_the_clauses_and_ends_with_the_verdict(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    reports = tmp_path / "out"
    with not_http() as url:
        done = pytest_in(
            tmp_path,
            "--target", str(write_target(url)), "--ats-only", "NODE,API-01",
            "--ats-load", "off", "--ats-report-dir", str(reports),
        )  # fmt: skip
    total = len(load_profile("provincial").clauses)
    nodes = [c for c in load_profile("provincial").clauses if c.chapter == "NODE"]
    selected = len(nodes) + 1
    # The header counts the clause items as collected (not "collected 0 items / -64 selected").
    assert f"collected {total} items / {total - selected} deselected / {selected} selected" in (
        done.stdout
    ), done.stdout
    tail = done.stdout.strip().splitlines()[-14:]
    assert any(line.startswith("NOT_CERTIFIED:") for line in tail), tail
    assert any(line.strip() == str(reports / "report.json") for line in tail), tail
    assert done.returncode == 1


def test_plain_pytest_configuration_errors_exit_2_in_one_line(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    target = write_target(closed_port())
    document = yaml.safe_load(target.read_text(encoding="utf-8"))
    document["apps"]["consumer"]["secret"] = "${ATS_UNSET_SECRET_FOR_TEST}"
    target.write_text(yaml.safe_dump(document), encoding="utf-8")
    done = pytest_in(tmp_path, "--target", str(target), "-n", "0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ATS_UNSET_SECRET_FOR_TEST" in done.stdout + done.stderr
    assert "usage:" not in done.stderr


def test_plain_pytest_refuses_xdist_in_one_line(
    tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    done = pytest_in(tmp_path, "--target", str(write_target(closed_port())), "-n", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pytest-xdist" in done.stdout + done.stderr
    assert not (tmp_path / "reports").exists()
