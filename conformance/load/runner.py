"""The locust runner: one load plan as a locust master and its workers, each a subprocess.

Locust runs only in subprocesses: its gevent monkey-patching breaks ``requests`` imported
earlier and the pytest workers around it. The master binds to 127.0.0.1 unless told otherwise
(distributed mode: workers on other hosts connect to it; see ``docs/load.md``). The app secret
reaches the local workers through their environment, never a command line or a file, and
remote workers through theirs. The master writes the workers' raw records to a JSON file in a
private temporary folder; locust's own CSV statistics are not used (a stale snapshot).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.load.plan import LoadPlan, LoadProfileError
from conformance.masking import Masker
from conformance.topology import free_ports

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SECRET_ENV = "ATS_LOAD_SECRET"
_LOG_TAIL = 5
_STOP_TIMEOUT_S = 10.0
# Time the master waits for its expected workers before giving up.
_WORKER_WAIT_S = 30
# With workers on other hosts, as long as a locust worker keeps trying to reach its master
# (60 tries of 5 s): the operator may start them before or after the master.
REMOTE_WORKER_WAIT_S = 300
# A served run's master is still quitting when its worker ends: the next worker waits for it
# to be gone, so that it registers with the next run's master, not the last one's.
_RESTART_PAUSE_S = 2.0
# Locust runs a remote worker serves at most: a full stage is 1 + 7 stepped runs.
MAX_SERVED_RUNS = 32
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class LoadRunError(Exception):
    """The load stage could not be run; the message is one line, without secrets."""


@dataclass(frozen=True)
class PhaseRecords:
    """The raw records of one phase, merged from every worker.

    A record is ``(offset_s, latency_ms, generator_lag_ms, waited_ms, status, code)``:
    the scheduled instant's offset in the measured window, latency from the scheduled instant,
    how late the generator itself sent, how long the send waited for a free in-flight slot, the
    HTTP status (0 when no answer came) and the ATS error code (or ``TIMEOUT``,
    ``TRANSPORT_ERROR``).
    """

    name: str
    scheduled: int
    records: tuple[tuple[float, float, float, float, int, str | None], ...]


@dataclass(frozen=True)
class RunRecords:
    """The records of a plan by phase name, and the workers that reported."""

    phases: Mapping[str, PhaseRecords]
    workers_reported: int
    workers_expected: int
    problems: tuple[str, ...] = field(default=())


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a host and a port; raises ``ValueError``."""
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


@dataclass(frozen=True)
class RemoteWorkers:
    """Workers on other hosts: how many the master waits for, and the address it binds to."""

    count: int
    bind_host: str
    bind_port: int

    @classmethod
    def parse(cls, spec: str) -> RemoteWorkers:
        """``M@HOST:PORT`` (``--ats-load-remote``); raises ``ValueError`` naming the problem."""
        count, at, address = spec.partition("@")
        if not at or not count.isdigit() or int(count) < 1:
            raise ValueError(f"{spec!r} is not M@HOST:PORT with M at least 1")
        host, port = parse_address(address)
        return cls(int(count), host, port)

    def spec(self) -> str:
        """The ``M@HOST:PORT`` form ``parse`` reads."""
        return f"{self.count}@{self.bind_host}:{self.bind_port}"


def _tail(path: Path, secret: str) -> str:
    try:
        lines = path.read_text("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return Masker([secret]).text(" | ".join(lines[-_LOG_TAIL:]))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_STOP_TIMEOUT_S)
    except ProcessLookupError:
        process.wait(timeout=_STOP_TIMEOUT_S)


def master_command(
    plan: LoadPlan,
    out: Path,
    *,
    bind_host: str,
    bind_port: int,
    run_time_s: int,
    worker_wait_s: int = _WORKER_WAIT_S,
) -> list[str]:
    """The locust master's command line (headless; one user per worker)."""
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless", "--master",
        "--master-bind-host", bind_host,
        "--master-bind-port", str(bind_port),
        "--expect-workers", str(plan.workers),
        "--expect-workers-max-wait", str(worker_wait_s),
        "--users", str(plan.workers),
        "--spawn-rate", str(plan.workers),
        "--run-time", f"{run_time_s}s",
        "--host", plan.host,
        "--ats-plan", plan.to_json(),
        "--ats-out", str(out),
        "--only-summary",
        "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]  # fmt: skip


def worker_command(master_host: str, master_port: int) -> list[str]:
    """A locust worker's command line; the plan comes from the master."""
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--worker",
        "--master-host", master_host,
        "--master-port", str(master_port),
        "--loglevel", "WARNING",
    ]  # fmt: skip


def serve_worker(master_host: str, master_port: int, secret: str) -> int:
    """Serves the locust runs of a master on another host as one of its remote workers.

    One locust worker per run, started again once a run ends (a load stage is several runs);
    it ends when a worker found no master for about five minutes, after ``MAX_SERVED_RUNS``
    runs, or on Ctrl-C. Answers 0 when it served at least one run, else 1. The worker checks
    every plan it is sent before it sends anything (``LoadPlan.check_safety``, ``check_caps``).
    """
    environ = {**os.environ, SECRET_ENV: secret}
    served = 0
    for _ in range(MAX_SERVED_RUNS):
        status = subprocess.run(
            worker_command(master_host, master_port), env=environ, stdin=subprocess.DEVNULL
        ).returncode
        if status != 0:
            break
        served += 1
        time.sleep(_RESTART_PAUSE_S)
    return 0 if served else 1


def run_plan(
    plan: LoadPlan,
    secret: str,
    *,
    local_workers: int | None = None,
    bind_host: str = "127.0.0.1",
    bind_port: int | None = None,
    margin_s: float = 20.0,
    worker_wait_s: int = _WORKER_WAIT_S,
) -> RunRecords:
    """Runs the plan with a locust master and ``local_workers`` local worker processes.

    ``plan.workers`` is the number of workers expected in all; when it exceeds
    ``local_workers``, the others are remote workers started by the operator against
    ``bind_host:bind_port``. Raises ``LoadRunError`` when locust cannot run at all, or when the
    plan breaks a safety rule or the code's ceilings (checked here, whatever built the plan).
    """
    try:
        plan.check_safety()
        plan.check_caps()
    except LoadProfileError as exc:
        raise LoadRunError(f"the load plan is refused: {exc}") from None
    local = plan.workers if local_workers is None else local_workers
    # Local workers reach a master bound to every address through loopback.
    connect_host = _WILDCARDS.get(bind_host, bind_host)
    port = bind_port or free_ports(1, connect_host)[0]
    run_time = int(plan.duration_s + margin_s + worker_wait_s)
    with tempfile.TemporaryDirectory(prefix="ats-load-") as folder:
        work = Path(folder)
        work.chmod(0o700)
        out = work / "results.json"
        environ = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
        worker_env = {**environ, SECRET_ENV: secret}
        processes: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        try:
            processes.append(
                _spawn(
                    master_command(
                        plan,
                        out,
                        bind_host=bind_host,
                        bind_port=port,
                        run_time_s=run_time,
                        worker_wait_s=worker_wait_s,
                    ),
                    environ,
                    work / "master.log",
                )
            )
            logs.append(work / "master.log")
            for index in range(local):
                log = work / f"worker-{index}.log"
                processes.append(_spawn(worker_command(connect_host, port), worker_env, log))
                logs.append(log)
            # The run-time bound ends the master; this wait only guards against a hung one.
            with contextlib.suppress(subprocess.TimeoutExpired):
                processes[0].wait(timeout=run_time + _STOP_TIMEOUT_S)
        finally:
            for process in processes:
                _stop(process)
        if not out.is_file():
            detail = _tail(logs[0], secret) or "no output"
            raise LoadRunError(f"locust produced no results: {detail}")
        document = json.loads(out.read_text(encoding="utf-8"))
    return _merge(document, plan, secret)


def _spawn(
    command: Sequence[str], environ: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            list(command),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(environ),
            # Its own session: stopping it stops its children (locust's own processes).
            start_new_session=True,
        )


def _merge(document: Mapping[str, Any], plan: LoadPlan, secret: str) -> RunRecords:
    problems: list[str] = []
    merged: dict[str, list[tuple[float, float, float, float, int, str | None]]] = {
        p.name: [] for p in plan.phases
    }
    scheduled = dict.fromkeys(merged, 0)
    workers = document.get("workers", [])
    for report in workers:
        if report.get("error"):
            problems.append(Masker([secret]).text(str(report["error"])))
            continue
        for phase in report.get("phases", []):
            name = phase["name"]
            if name not in merged:
                continue
            scheduled[name] += int(phase["scheduled"])
            merged[name].extend(
                (float(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4]), r[5])
                for r in phase["records"]
            )
    if len(workers) < plan.workers:
        problems.append(f"{plan.workers - len(workers)} of {plan.workers} workers sent no results")
    phases = {
        name: PhaseRecords(name, scheduled[name], tuple(sorted(records)))
        for name, records in merged.items()
    }
    return RunRecords(phases, len(workers), plan.workers, tuple(problems))
