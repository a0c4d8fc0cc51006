"""`conformance serve --node FILE --target-out OUT` (issue 16, item 4): the target file matching
the node, and the faults named right after the ready line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conformance.preflight import Status, run_preflight
from conformance.runner import embedded_files
from conformance.target import load_target

_START_S = 30.0


def test_serve_node_writes_the_matching_target_and_names_its_faults(tmp_path: Path) -> None:
    node_file, _ = embedded_files(tmp_path)
    out = tmp_path / "node-target.yaml"
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "conformance.cli", "serve", "--node", str(node_file),
             "--target-out", str(out), "--fault", "no-request-id"],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + _START_S
        while "faults:" not in log.read_text("utf-8") and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text("utf-8")
            time.sleep(0.1)
        lines = log.read_text("utf-8").splitlines()
        ready = next(i for i, line in enumerate(lines) if line.startswith("ready 330000 http://"))
        assert lines[ready + 1].strip() == "node 330000 faults: no-request-id; variants: none"
        target = load_target(out)
        assert target.lab is True
        assert set(target.apps) == {"consumer", "consumer_b", "admin", "load"}
        assert target.neighbours is not None
        assert target.neighbours.parent is not None
        assert target.neighbours.child is not None
        assert (out.stat().st_mode & 0o777) == 0o600
        result = run_preflight(target)
        assert result.stop is None, [i.line() for i in result.items]
        assert {i.status for i in result.items if i.name.startswith("app ")} == {Status.OK}
        assert {i.status for i in result.items if i.name.startswith("resource ")} == {Status.OK}
    finally:
        process.terminate()
        process.wait(timeout=10)
