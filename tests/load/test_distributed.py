"""Distributed load (issue 8): a master waits for workers on "other hosts" and the results are
judged into PERF clauses as usual (ATS-PERF-01..04).

The "remote" workers are separate ``conformance load-worker`` processes that connect to a master
bound to 127.0.0.1, as workers on other hosts would connect to the tester's address.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from loadnode import running_node, short_profile
from support.nodes import free_port

from conformance.load import RemoteWorkers, load_load_profile
from conformance.load.stage import run_stage, run_stepped
from conformance.target import Target

PERF = ("ATS-PERF-01", "ATS-PERF-02", "ATS-PERF-03", "ATS-PERF-04")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "conformance.cli", *args]


@contextmanager
def remote_workers(target: Target, port: int, count: int = 2) -> Iterator[list[subprocess.Popen]]:
    """``count`` load-worker processes serving the master at 127.0.0.1:``port``, for the block."""
    # The secret comes from the target file, as on a worker host with the suite installed.
    environ = {k: v for k, v in os.environ.items() if k != "ATS_LOAD_SECRET"}
    workers = [
        subprocess.Popen(
            _cli("load-worker", "--master", f"127.0.0.1:{port}", "--target", str(target.source)),
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


@pytest.mark.timeout(150)
def test_two_remote_workers_serve_the_stage_and_the_stepped_load(tmp_path: Path) -> None:
    profile = short_profile()
    params = {c.id: c.params for c in profile.clauses}
    port = free_port()
    remote = RemoteWorkers(2, "127.0.0.1", port)
    with running_node(tmp_path) as target, remote_workers(target, port) as workers:
        stage = run_stage(
            target,
            "smoke",
            {c: params[c] for c in ("ATS-PERF-01", "ATS-PERF-02")},
            load_load_profile(),
            workers=1,
            remote=remote,
        )
        # A load stage is several locust runs: the same remote workers serve the next one.
        stepped = run_stepped(target, "smoke", params["ATS-PERF-04"], load_load_profile(),
                              workers=1, remote=remote)  # fmt: skip
        assert all(worker.poll() is None for worker in workers)
    assert stage.error is None, stage.error
    assert stage.problems == ()
    assert stage.workers == 3
    share = stage.phases["share-query"]
    assert abs(share.rate_per_s - 50) <= 2.5
    assert share.failures == 0
    assert stage.phases["catalog-page"].failures == 0
    assert stepped.error is None, stepped.error
    assert stepped.problems == ()
    assert stepped.found is not None
    assert stepped.found.rate_per_s >= 100


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_conformance_load_with_remote_workers_judges_the_perf_clauses(tmp_path: Path) -> None:
    port = free_port()
    reports = tmp_path / "reports"
    with running_node(tmp_path) as target, remote_workers(target, port):
        done = subprocess.run(
            _cli(
                "load",
                "--target",
                str(target.source),
                "--mode",
                "smoke",
                "--workers",
                "1",
                "--remote-workers",
                "2",
                "--master-bind",
                f"127.0.0.1:{port}",
                "--report-dir",
                str(reports),
                "--quiet",
            ),
            capture_output=True,
            text=True,
            timeout=200,
        )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads((reports / "report.json").read_text("utf-8"))
    verdicts = {c["id"]: c["verdict"] for c in report["clauses"] if c["id"] in PERF}
    assert verdicts == dict.fromkeys(PERF, "PASS"), verdicts
    assert report["load"]["workers"] == 3
    assert report["load"]["problems"] == []
