"""The load generator's own ceiling: signed requests per second on one core, beside wrk.

Both tools send share queries to the same trivial endpoint: nginx from the distribution's
packages answering a small static JSON on loopback, on a core of its own, so that the figures
measure the generators, not the server. The load generator runs ONE locust worker pinned to one
core (the master, idle while the worker sends, shares it), with HMAC-SM3 signing and a fresh
nonce on every request, at constant arrival rates stepped up until it no longer holds the rate.
wrk then runs one thread, closed loop, pinned to the same core, on the same endpoint. Target: the
generator holds at least 1000 req/s per core.

A step is held when the rate sent within the window is within 5 % of the rate asked, at least
95 % of the requests asked were answered 2xx, and the generator's p99 lag behind its schedule
stays within the load profile's ``max_generator_lag_ms`` (above it the load stage would call its
own measurement inconclusive); a step not held is repeated once before it counts. The steps
grow by a quarter from ``--start``; once one is not held, ``--refine`` steps halve the gap
between the highest held and the lowest failed rate.

The load profile's ``caps.max_rate_per_s`` (2000 req/s, sized for certification runs) does not
bound the benchmark: it lifts that cap, and the in-flight cap, to the code's ceilings
(``conformance.load.plan.CEILINGS``), which no caps can exceed; a step at the ceiling is
reported as capped.

    python benchmarks/load_generator.py [--start 500] [--seconds 4] [--refine 2]

Needs ``nginx`` and ``wrk`` (Debian/Ubuntu: ``apt-get install -y nginx wrk``). Exit status: 0 the
target is met, 1 it is not, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from conformance.load import LoadRunError, load_load_profile, make_phase, run_plan
from conformance.load.plan import CEILINGS, LoadPlan
from conformance.load.stats import PhaseStats, phase_stats
from conformance.topology import free_ports

_NGINX_CONF = """
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"resource_code":"101001/000001","items":[],"total":0,"masked":[]}}';
        }}
    }}
}}
"""
_SECRET = "benchmark-secret-not-used-by-nginx-0000000000"
_TARGET_PER_CORE = 1000.0
_HELD_TOLERANCE = 0.05
_GROWTH = 1.25
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Step:
    """A step is one arrival rate asked of the generator and what it did."""

    asked: float
    stats: PhaseStats
    answered_per_s: float
    held: bool


def _tools() -> tuple[str, str]:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    wrk = shutil.which("wrk")
    if nginx is None or wrk is None:
        missing = " and ".join(n for n, p in (("nginx", nginx), ("wrk", wrk)) if p is None)
        sys.exit(f"{missing} not found; install with: apt-get install -y nginx wrk")
    return nginx, wrk


def _cores() -> tuple[int, int]:
    """The server's core and the generators' core (the same one on a single-core machine)."""
    cores = sorted(os.sched_getaffinity(0))
    return cores[0], cores[-1]


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nginx did not listen on 127.0.0.1:{port} within {_START_TIMEOUT_S:g} s")


def _wrk(wrk: str, url: str, seconds: int, core: int) -> float:
    output = subprocess.run(
        [wrk, "-t1", "-c50", f"-d{seconds}s", "-s", "/dev/stdin", url],
        input='wrk.method = "POST"\nwrk.body = "{}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n',
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    if match is None:
        sys.exit(f"wrk printed no rate: {output}")
    return float(match.group(1))


def _step(origin: str, rate: float, seconds: int) -> Step:
    profile = load_load_profile()
    # The profile's caps are for certification runs; the benchmark may go up to the ceilings.
    caps = replace(
        profile.caps,
        max_rate_per_s=CEILINGS.max_rate_per_s,
        max_in_flight_per_worker=CEILINGS.max_in_flight_per_worker,
    )
    phase = make_phase(
        "share-query",
        profile.scenarios["share-query"],
        prefix="",
        resources={"unconditional": "101001/000001"},
        rate_per_s=rate,
        warmup_s=1,
        window_s=seconds,
        workers=1,
        generator=profile.generator,
        caps=caps,
    )
    plan = LoadPlan(origin, "benchmark", "HMAC-SM3", 5.0, 1, (phase,))
    plan.check_caps(caps)
    records = run_plan(plan, _SECRET, local_workers=1)
    measured = records.phases["share-query"]
    stats = phase_stats(phase, measured)
    # 2xx answers to requests actually sent inside the window, as the stage counts the rate held.
    answered = sum(
        1
        for r in measured.records
        if 200 <= r[4] < 300 and 0 <= r[0] + (r[2] + r[3]) / 1000 < seconds
    )
    lag = stats.generator_lag_p99_ms
    held = (
        stats.rate_per_s >= rate * (1 - _HELD_TOLERANCE)
        and answered >= rate * seconds * (1 - _HELD_TOLERANCE)
        and lag is not None
        and lag <= profile.generator.max_generator_lag_ms
        and not records.problems
    )
    return Step(rate, stats, answered / seconds, held)


def _measure(origin: str, rate: float, seconds: int) -> Step:
    # Other processes on the machine can stall one short step: a step not held is repeated
    # once, and counts as not held only when the repeat fails too.
    step = _step(origin, rate, seconds)
    _print(step)
    if not step.held:
        step = _step(origin, rate, seconds)
        _print(step)
    return step


def _print(step: Step) -> None:
    s = step.stats
    print(
        f"  asked {step.asked:7.0f} req/s: sent {s.rate_per_s:7.0f}, answered "
        f"{step.answered_per_s:7.0f} req/s, p99 {s.p99_ms} ms, generator lag p99 "
        f"{s.generator_lag_p99_ms} ms: {'held' if step.held else 'NOT held'}",
        flush=True,
    )


def _ceiling(origin: str, start: float, seconds: int, refine: int) -> tuple[Step | None, bool]:
    """The highest held step, and whether the code's rate ceiling stopped the search."""
    best: Step | None = None
    rate = start
    failed: float | None = None
    while True:
        step = _measure(origin, rate, seconds)
        if not step.held:
            failed = rate
            break
        best = step
        if rate >= CEILINGS.max_rate_per_s:
            return best, True
        rate = min(round(rate * _GROWTH), CEILINGS.max_rate_per_s)
    low = best.asked if best else 0.0
    for _ in range(refine):
        rate = round((low + failed) / 2)
        if rate in (round(low), round(failed)):
            break
        step = _measure(origin, rate, seconds)
        if step.held:
            best, low = step, rate
        else:
            failed = rate
    return best, False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=float, default=500, help="first rate asked (req/s)")
    parser.add_argument("--seconds", type=int, default=4, help="measured window of each step")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after a failure")
    args = parser.parse_args()
    nginx, wrk = _tools()
    server_core, generator_core = _cores()
    with tempfile.TemporaryDirectory(prefix="ats-bench-") as folder:
        port = free_ports(1)[0]
        conf = Path(folder) / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(folder=folder, port=port), "utf-8")
        server = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", folder, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {server_core}),
        )
        # The locust master and worker inherit this process's core; nginx keeps its own.
        os.sched_setaffinity(0, {generator_core})
        try:
            _wait_listening(port)
            origin = f"http://127.0.0.1:{port}"
            print(
                f"nginx on core {server_core}; generators on core {generator_core}; "
                f"steps of {args.seconds} s after 1 s warm-up",
                flush=True,
            )
            best, capped = _ceiling(origin, args.start, args.seconds, args.refine)
            url = f"{origin}/api/v1/share/101001/000001/query"
            wrk_rate = _wrk(wrk, url, args.seconds, generator_core)
        except LoadRunError as exc:
            print(f"load_generator: {exc}", file=sys.stderr)
            return 2
        finally:
            server.terminate()
            server.wait(timeout=10)
    held = best.answered_per_s if best else 0.0
    print(f"wrk (1 thread, 50 connections, closed loop, no signing): {wrk_rate:8.0f} req/s")
    print(
        f"load generator (1 worker, 1 core, HMAC-SM3, open model): highest rate held "
        f"{best.asked if best else 0:.0f} req/s asked, {held:.0f} req/s answered"
        + (
            f" (stopped at the code's ceiling of {CEILINGS.max_rate_per_s:g} req/s)"
            if capped
            else ""
        )
    )
    print(f"ratio load generator / wrk: {held / wrk_rate:.3f}")
    met = held >= _TARGET_PER_CORE
    print(f"target ≥ {_TARGET_PER_CORE:g} req/s per core: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
