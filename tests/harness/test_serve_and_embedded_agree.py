"""`conformance run --target` against the topology of `conformance serve` gives the verdicts of
the embedded default: the same reference node, certified with real neighbours instead of
emulated ones, and with the child slot the suite emulates beside them for what real neighbours
cannot show (a failing or hanging next hop, the forwarded request, a child that stops)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)

# Judged with the emulated child slot in live mode: a next hop that refuses or hangs, the
# request a neighbour received, a child that can be made to stop answering.
WITH_EMULATED_CHILD = ("ATS-CAS-08", "ATS-CAS-09", "ATS-STAT-02")
_START_WITHIN_S = 60.0


def _run(report_dir: Path, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "conformance.cli", "run", "--load", "off", "--quiet"]
    done = subprocess.run(
        [*command, "--report-dir", str(report_dir), *extra],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return dict(json.loads((report_dir / "report.json").read_text(encoding="utf-8")))


def _served_target(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    target = tmp_path / "target.yaml"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "conformance.cli", "serve", "--base-port", "0"]
    command += ["--workdir", str(tmp_path / "nodes"), "--target-out", str(target)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + _START_WITHIN_S
    while "node files and logs:" not in log.read_text(encoding="utf-8"):
        assert process.poll() is None, log.read_text(encoding="utf-8")
        assert time.monotonic() < deadline, "the topology did not start"
        time.sleep(0.2)
    return process, target


def test_serve_and_the_embedded_default_give_the_same_verdicts(tmp_path: Path) -> None:
    embedded = _run(tmp_path / "embedded")
    process, target = _served_target(tmp_path)
    try:
        served = _run(tmp_path / "served", "--target", str(target))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert served["verdict"] == embedded["verdict"] == "LAB_CONFORMANT"
    before = {c["id"]: c for c in embedded["clauses"]}
    after = {c["id"]: c for c in served["clauses"]}
    assert set(before) == set(after)
    differ = {cid for cid in before if before[cid]["verdict"] != after[cid]["verdict"]}
    assert differ == set(), {c: (before[c]["reason"], after[c]["reason"]) for c in differ}
    assert {c["verdict"] for c in served["clauses"] if c["chapter"] == "CAS"} == {"PASS"}
    for cid in WITH_EMULATED_CHILD:
        notes = json.dumps(after[cid]["evidence"], ensure_ascii=False)
        assert "330200" in notes, (cid, after[cid]["evidence"])
