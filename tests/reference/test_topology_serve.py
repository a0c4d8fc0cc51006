"""`conformance serve`: the packaged topology for vendors, started and stopped as a command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conformance.target import load_target

pytestmark = pytest.mark.timeout(90)

START_WITHIN_S = 40.0


def _wait_for_line(log: Path, process: subprocess.Popen[bytes], prefix: str) -> list[str]:
    deadline = time.monotonic() + START_WITHIN_S
    while time.monotonic() < deadline:
        lines = log.read_text(encoding="utf-8").splitlines()
        if any(line.startswith(prefix) for line in lines):
            return lines
        assert process.poll() is None, log.read_text(encoding="utf-8")
        time.sleep(0.1)
    raise AssertionError(f"no line starting with {prefix!r} within {START_WITHIN_S} s")


@pytest.mark.parametrize(
    "stop_signal",
    [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")],
)
def test_serve_starts_the_wired_topology_and_stops_every_node(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    log = tmp_path / "serve.log"
    target_path = tmp_path / "target.yaml"
    command = [sys.executable, "-m", "conformance.cli", "serve", "--base-port", "0"]
    command += ["--workdir", str(tmp_path / "nodes"), "--target-out", str(target_path)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        lines = _wait_for_line(log, process, "node files and logs:")
        urls = [line.split()[-1] for line in lines if line.split()[-1].startswith("http://")]
        assert len(urls) == 4
        target = load_target(target_path)
        assert (target.node.node_id, target.node.level, target.node.parent_id) == (
            "330000",
            "provincial",
            "100000",
        )
        assert target.neighbours is not None
        assert target.neighbours.live
        # The child slot the suite emulates in a live run is printed and named, not started.
        spare = target.neighbours.emulated_child
        assert spare is not None
        assert spare.node_id == "330200"
        assert any(f"{spare.listen} (emulated by the suite" in line for line in lines)
        # ATS §0, §11: the topology is plain HTTP on loopback, so a run against it is a lab run.
        assert target.lab
        for url in urls:
            assert httpx.get(f"{url}/api/v1/health", timeout=5.0).json()["status"] == "UP"
        # Secrets stay in the node files and the target file, never on the console.
        assert target.apps["admin"].secret not in log.read_text(encoding="utf-8")
        process.send_signal(stop_signal)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/api/v1/health", timeout=2.0)


def _node_processes(workdir: Path) -> list[int]:
    """The ids of running processes whose command line names a node file of `workdir`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and str(workdir).encode() in command and b"--config" in command:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="the test reads the process table")
def test_serve_interrupted_during_start_stops_every_node_and_exits_0(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    workdir = tmp_path / "nodes"
    command = [sys.executable, "-m", "conformance.cli", "serve", "--base-port", "0"]
    command += ["--workdir", str(workdir), "--target-out", str(tmp_path / "target.yaml")]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_WITHIN_S
        # Interrupted once every node process is spawned, before the topology is up.
        while len(list(workdir.glob("*.log"))) < 4 or len(_node_processes(workdir)) < 4:
            assert process.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "the node processes were not spawned"
            time.sleep(0.02)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, log.read_text(encoding="utf-8")
        assert time.monotonic() - interrupted < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = log.read_text(encoding="utf-8")
    assert "interrupted during start" in output
    assert "Traceback" not in output
    assert not (tmp_path / "target.yaml").exists()
    assert _node_processes(workdir) == []


def test_serve_with_a_bad_node_file_exits_2_with_one_line(tmp_path: Path) -> None:
    node_file = tmp_path / "node.yaml"
    node_file.write_text("node: {node_id: '330000'}\n", encoding="utf-8")
    finished = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "serve", "--node", str(node_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert len(finished.stderr.strip().splitlines()) == 1
    assert str(node_file) in finished.stderr
