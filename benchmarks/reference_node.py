"""Share queries per second and p95 latency of one reference node on one core.

The benchmark starts one reference node (provincial ``330000`` of the reference topology, seeded
with its packaged catalog, one uvicorn worker) pinned to one CPU core, and drives it with wrk
pinned to another core. wrk replays requests pre-signed here (ATS chapter 3: a fresh nonce and
timestamp each), so neither signing nor Python sits in the measured loop: the generator is not the
bottleneck, the node is. Each wrk thread replays its own slice of the pool, so no nonce repeats
(ATS-AUTH-05 would answer a repeated one 401).

Two measured runs follow a warm-up:

- closed-loop: every connection sends its next request as soon as the previous answer arrived, so
  the rate is the node's saturation throughput (the queries/s target);
- paced at a fixed rate (default 500/s, the throughput target): wrk's ``delay()`` hook holds each
  thread to a schedule, so the latency is the node's at that rate (the p95 target). Latency runs
  from each request's actual send: a node that falls behind shows it as a rate below the schedule.

    python benchmarks/reference_node.py [--duration 15] [--connections 16] [--rate 500]

Exit status: 0 the targets are met, 1 they are not, 2 the benchmark could not run (one line).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil
import yaml

from conformance.data import data_dir
from conformance.reference.launcher import LaunchError, RunningNode, load_plan, start_node
from conformance.signing import sign_headers
from conformance.topology import free_ports, new_secret

# The targets of the reference node: share queries on one core, one uvicorn worker.
_TARGET_QPS = 500.0
_TARGET_P95_MS = 50.0

_NODE_ID = "330000"
_APP_ID = "bench"
# A rate limit far above any rate one worker reaches, so ATS-SEC-03 never answers 429 here.
_APP_RATE_LIMIT = 1_000_000
# The closed-loop pool is sized for this rate: a one-worker uvicorn answers a trivial endpoint
# at about 4900 req/s on a current core, so no share query outruns it.
_POOL_RATE = 6000
# A paced run holds its schedule within this share of the rate, or the node could not keep up.
_RATE_TOLERANCE = 0.05
# Pre-signed timestamps must stay inside the ATS-AUTH-04 window (270 s accepted) until replayed.
_MAX_RUN_S = 60
_WRK_TIMEOUT_S = 5
_WRK_GRACE_S = 30
# Above this share of the node's core taken by other processes, the figures are flagged.
_BUSY_MACHINE = 0.10

# wrk's per-thread script: each thread loads its own slice of pre-signed raw requests (separated
# by NUL bytes), replays it once, counts statuses, and done() prints the figures as `@bench` lines.
_REPLAY_LUA = r"""
local threads = {}
local counter = 0

function setup(thread)
  thread:set("slice", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local handle = assert(io.open(args[1] .. slice, "rb"))
  local data = handle:read("*a")
  handle:close()
  pool = {}
  local start = 1
  while true do
    local stop = string.find(data, "\0", start, true)
    if not stop then break end
    pool[#pool + 1] = string.sub(data, start, stop - 1)
    start = stop + 1
  end
  data = nil
  index = 0
  exhausted = 0
  statuses = {}
  interval_ms = tonumber(args[2])
end

function request()
  index = index + 1
  if index > #pool then
    exhausted = 1
    wrk.thread:stop()
    return pool[#pool]
  end
  return pool[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("@bench requests %d\n", summary.requests))
  io.write(string.format("@bench duration_us %d\n", summary.duration))
  io.write(string.format("@bench errors %d\n", e.connect + e.read + e.write + e.timeout))
  for _, p in ipairs({50, 95, 99}) do
    io.write(string.format("@bench p%d_us %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("@bench max_us %d\n", latency.max))
  for _, thread in ipairs(threads) do
    io.write(string.format("@bench exhausted %d\n", thread:get("exhausted") or 0))
    for status, count in pairs(thread:get("statuses") or {}) do
      io.write(string.format("@bench status %d %d\n", status, count))
    end
  end
end
"""

# Appended for a paced run only: wrk routes every request through a timer once delay() exists.
# Each thread keeps a schedule of one request per interval_ms on the monotonic clock; a request
# behind schedule leaves at once, so a node that cannot keep up shows as a lower rate.
_PACING_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

function delay()
  local now = now_ms()
  if scheduled == nil then scheduled = now end
  local wait = scheduled - now
  scheduled = scheduled + interval_ms
  if wait < 0 then return 0 end
  return wait
end
"""


class BenchmarkUnavailable(Exception):
    """The benchmark cannot run; the message is one line naming the cause."""


@dataclass(frozen=True)
class Settings:
    """One benchmark: what is queried, how hard, for how long, on which cores."""

    endpoint: str
    resource: str
    duration_s: int
    warmup_s: int
    connections: int
    threads: int
    rate: int
    node_core: int | None
    wrk_core: int | None
    signature_method: str


@dataclass(frozen=True)
class Result:
    """The figures of one measured wrk run; CPU shares are of one core over the run."""

    requests: int
    duration_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    transport_errors: int
    exhausted: bool
    node_cpu: float
    wrk_cpu: float
    others_cpu: float

    @property
    def qps(self) -> float:
        """Completed requests per second over the measured window."""
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def non_2xx(self) -> int:
        """Answers whose status is not 2xx."""
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


@dataclass(frozen=True)
class Outcome:
    """The measured runs of one benchmark: closed-loop, and paced when a rate was asked for."""

    closed: Result
    paced: Result | None


def _resource_code(role: str) -> str:
    path = data_dir("fixtures") / "catalogs" / f"{_NODE_ID}.json"
    return str(json.loads(path.read_text("utf-8"))["roles"][role])


def _node_file(folder: Path, secret: str) -> Path:
    plan = load_plan().node(_NODE_ID)
    # A provincial node needs a parent (ATS §0); it points at a closed loopback port, so the
    # node's first push is refused at once and retried only every 2 s: no load on the measurement.
    config = {
        "node": {
            "node_id": _NODE_ID,
            "name": plan.name,
            "level": plan.level,
            "listen": "127.0.0.1:0",
            "database": "node.sqlite3",
            "parent": {
                "node_id": plan.parent,
                "url": f"http://127.0.0.1:{free_ports(1)[0]}",
                "app_id": f"node-{_NODE_ID}",
                "secret": new_secret(),
            },
        },
        "apps": [
            {"app_id": _APP_ID, "secret": secret, "role": "consumer", "rate_limit": _APP_RATE_LIMIT}
        ],
        "seed": {"catalog": _NODE_ID},
    }
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _request_shape(settings: Settings) -> tuple[str, str, bytes]:
    if settings.endpoint == "share":
        # ATS-PERF-01's request: an empty query on a shared resource.
        return "POST", f"/api/v1/share/{_resource_code(settings.resource)}/query", b"{}"
    # ATS-PERF-02's request: one catalog page of 100 entries.
    return "GET", "/api/v1/catalog/resources?size=100", b""


def _write_pool(prefix: Path, count: int, settings: Settings, url: str, secret: str) -> None:
    """Files `<prefix><slice>` hold `count` raw signed requests, one slice per wrk thread."""
    method, target, body = _request_shape(settings)
    authority = url.split("://", 1)[1]
    per_slice = math.ceil(count / settings.threads)
    for slice_no in range(settings.threads):
        chunks = []
        for _ in range(per_slice):
            headers = sign_headers(
                method=method,
                target=target,
                body=body,
                app_id=_APP_ID,
                secret=secret,
                signature_method=settings.signature_method,
            )
            lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            if body:
                lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            chunks.append(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body + b"\0")
        Path(f"{prefix}{slice_no}").write_bytes(b"".join(chunks))


def _run_wrk(
    folder: Path,
    name: str,
    seconds: int,
    rate: int,
    settings: Settings,
    node: RunningNode,
    secret: str,
) -> Result:
    """The figures of one wrk run against the node, closed-loop (`rate` 0) or paced at `rate`."""
    prefix = folder / f"{name}-"
    script = folder / f"{name}.lua"
    if rate:
        count = math.ceil(rate * seconds * (1 + _RATE_TOLERANCE)) + settings.connections
        script.write_text(_REPLAY_LUA + _PACING_LUA, encoding="utf-8")
        interval_ms = 1000.0 * settings.threads / rate
    else:
        count = _POOL_RATE * seconds
        script.write_text(_REPLAY_LUA, encoding="utf-8")
        interval_ms = 0.0
    _write_pool(prefix, count, settings, node.url, secret)
    command = [
        "wrk",
        f"--threads={settings.threads}",
        f"--connections={settings.connections}",
        f"--duration={seconds}s",
        f"--timeout={_WRK_TIMEOUT_S}s",
        f"--script={script}",
        node.url,
        "--",
        str(prefix),
        f"{interval_ms:.6f}",
    ]
    # CPU seconds of the node, of wrk and of the node's core show which one was the bottleneck.
    node_process = psutil.Process(node.process.pid)
    node_before = sum(node_process.cpu_times()[:2])
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    core_before = _busy_s(settings.node_core)
    started = time.monotonic()
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + _WRK_GRACE_S,
        check=False,
        preexec_fn=_pin(settings.wrk_core),
    )
    elapsed_s = time.monotonic() - started
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    node_cpu_s = sum(node_process.cpu_times()[:2]) - node_before
    wrk_cpu_s = sum(wrk_after[:2]) - sum(wrk_before[:2])
    # Unpinned, the busy time is every core's, wrk's included.
    ours_s = node_cpu_s + (wrk_cpu_s if settings.node_core is None else 0.0)
    shares = (
        node_cpu_s / elapsed_s,
        wrk_cpu_s / elapsed_s,
        max(0.0, _busy_s(settings.node_core) - core_before - ours_s) / elapsed_s,
    )
    if completed.returncode != 0:
        reason = (completed.stderr.strip() or completed.stdout.strip()).splitlines()
        raise BenchmarkUnavailable(f"wrk failed: {reason[-1] if reason else completed.returncode}")
    result = _parse(completed.stdout, shares)
    if result.exhausted:
        # A thread that ran out stopped early: the figures would not cover the whole run.
        raise BenchmarkUnavailable(
            f"the {count} pre-signed requests of the {name} run ran out before it ended"
        )
    return result


def _busy_s(core: int | None) -> float:
    """CPU seconds the core (every core when unpinned) has been busy since boot."""
    times = psutil.cpu_times(percpu=True)
    chosen = times if core is None else [times[core]]
    return sum(sum(t) - t.idle - getattr(t, "iowait", 0.0) for t in chosen)


def _parse(output: str, shares: tuple[float, float, float]) -> Result:
    figures: dict[str, int] = {}
    statuses: dict[int, int] = {}
    exhausted = False
    for line in output.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "@bench":
            continue
        if words[1] == "status":
            statuses[int(words[2])] = statuses.get(int(words[2]), 0) + int(words[3])
        elif words[1] == "exhausted":
            exhausted = exhausted or words[2] != "0"
        else:
            figures[words[1]] = int(words[2])
    if "requests" not in figures:
        raise BenchmarkUnavailable("wrk printed no figures: its script did not run")
    return Result(
        requests=figures["requests"],
        duration_s=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1e3,
        p95_ms=figures["p95_us"] / 1e3,
        p99_ms=figures["p99_us"] / 1e3,
        max_ms=figures["max_us"] / 1e3,
        statuses=statuses,
        transport_errors=figures["errors"],
        exhausted=exhausted,
        node_cpu=shares[0],
        wrk_cpu=shares[1],
        others_cpu=shares[2],
    )


def _pin(core: int | None) -> Callable[[], None] | None:
    """A hook that moves the child process onto `core` before it runs wrk."""
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


@contextmanager
def _affinity(core: int | None) -> Iterator[None]:
    """This process runs on `core` inside the block, so the node it spawns inherits the core."""
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _cores(node_core: int | None, wrk_core: int | None) -> tuple[int | None, int | None]:
    if not hasattr(os, "sched_setaffinity"):
        # Pinning is a Linux facility; elsewhere both share the machine's cores.
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if node_core is None and wrk_core is None:
        if len(available) < 2:
            return None, None
        return available[0], available[1]
    for core in (node_core, wrk_core):
        if core is not None and core not in available:
            raise BenchmarkUnavailable(f"core {core} is not available; available: {available}")
    return node_core, wrk_core


def run(settings: Settings) -> Outcome:
    """The measured runs of one benchmark against a fresh reference node, stopped afterwards."""
    if shutil.which("wrk") is None:
        raise BenchmarkUnavailable(
            "wrk is not installed: install it with `apt-get install wrk` (Debian, Ubuntu)"
        )
    secret = new_secret()
    with tempfile.TemporaryDirectory(prefix="ats-bench-") as tmp:
        folder = Path(tmp)
        config_path = _node_file(folder, secret)
        node: RunningNode | None = None
        try:
            with _affinity(settings.node_core):
                try:
                    node = start_node(config_path)
                except LaunchError as exc:
                    raise BenchmarkUnavailable(f"the reference node did not start: {exc}") from exc
            _run_wrk(folder, "warmup", settings.warmup_s, 0, settings, node, secret)
            closed = _run_wrk(folder, "closed", settings.duration_s, 0, settings, node, secret)
            paced = (
                _run_wrk(
                    folder, "paced", settings.duration_s, settings.rate, settings, node, secret
                )
                if settings.rate
                else None
            )
        finally:
            if node is not None:
                node.stop()
    return Outcome(closed, paced)


def _print_run(title: str, result: Result, where: str) -> None:
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items()))
    print(title)
    print(f"  queries/s   {result.qps:.0f}  ({result.requests} in {result.duration_s:.1f} s)")
    print(
        f"  latency ms  p50 {result.p50_ms:.1f}  p95 {result.p95_ms:.1f}  "
        f"p99 {result.p99_ms:.1f}  max {result.max_ms:.1f}"
    )
    print(f"  non-2xx     {result.non_2xx}  (statuses {statuses or 'none'})")
    print(f"  errors      {result.transport_errors}  (connect, read, write, timeout)")
    print(
        f"  cpu         node {result.node_cpu:.0%} of a core, wrk {result.wrk_cpu:.0%}, "
        f"other processes {where} {result.others_cpu:.0%}"
    )


def _problems(settings: Settings, outcome: Outcome, min_qps: float, max_p95_ms: float) -> list[str]:
    """What misses the targets: closed-loop throughput, and p95 at the paced rate when paced."""
    problems = []
    if outcome.closed.qps < min_qps:
        problems.append(f"closed-loop {outcome.closed.qps:.0f} queries/s < {min_qps:g}")
    judged = outcome.paced or outcome.closed
    if judged.p95_ms > max_p95_ms:
        problems.append(f"p95 {judged.p95_ms:.1f} ms > {max_p95_ms:g} ms")
    if outcome.paced and outcome.paced.qps < settings.rate * (1 - _RATE_TOLERANCE):
        problems.append(f"paced run held {outcome.paced.qps:.0f}/s, not {settings.rate}/s")
    for result in filter(None, (outcome.closed, outcome.paced)):
        if result.non_2xx or result.transport_errors:
            problems.append(f"{result.non_2xx + result.transport_errors} failed requests")
    return problems


def _report(settings: Settings, outcome: Outcome, min_qps: float, max_p95_ms: float) -> bool:
    method, target, body = _request_shape(settings)
    pinning = ", ".join(
        f"{who} on core {core}" if core is not None else f"{who} unpinned"
        for who, core in (("node", settings.node_core), ("wrk", settings.wrk_core))
    )
    print(f"node        reference {_NODE_ID}, one uvicorn worker; {pinning}")
    shown = f"{method} {target} {body.decode()}".rstrip()
    print(f"request     {shown}  ({settings.signature_method}, a fresh nonce each)")
    print(
        f"load        {settings.connections} connections, {settings.threads} wrk thread(s), "
        f"{settings.warmup_s} s warm-up, {settings.duration_s} s per measured run"
    )
    # Unpinned, the node's CPU is the whole machine's (one core is 100 %).
    where = "on the node's core" if settings.node_core is not None else "on the machine"
    _print_run("closed-loop (saturation)", outcome.closed, where)
    if outcome.paced:
        title = f"paced at {settings.rate}/s (latency from each actual send)"
        _print_run(title, outcome.paced, where)
    runs = filter(None, (outcome.closed, outcome.paced))
    if any(r.others_cpu > _BUSY_MACHINE for r in runs):
        print(
            "note        other processes took CPU from the node's core: the figures understate "
            "the node; run again on an idle machine"
        )
    problems = _problems(settings, outcome, min_qps, max_p95_ms)
    p95_run = f"at {settings.rate}/s" if outcome.paced else "closed-loop"
    print(
        f"verdict     {'PASS' if not problems else 'FAIL: ' + '; '.join(problems)}  "
        f"(targets: >= {min_qps:g} queries/s closed-loop, p95 <= {max_p95_ms:g} ms {p95_run})"
    )
    return not problems


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/reference_node.py",
        description=(
            "Share queries per second and p95 latency of one reference node (one uvicorn worker) "
            "on one core, driven by wrk on another core with pre-signed requests: a closed-loop "
            "run for throughput, then a run paced at --rate for latency. "
            "Exit status: 0 targets met, 1 not met, 2 cannot run."
        ),
    )
    parser.add_argument(
        "--endpoint",
        choices=("share", "catalog"),
        default="share",
        help="share: POST /share/{code}/query {} (default); "
        "catalog: GET /catalog/resources?size=100",
    )
    parser.add_argument(
        "--resource",
        choices=("unconditional", "population"),
        default="unconditional",
        help="the seeded resource of catalog 330000 the share queries read (default "
        "unconditional; population has sensitive items, so its answers are masked)",
    )
    parser.add_argument(
        "--duration", type=int, default=15, help="seconds of each measured run (default 15)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds (default 3)")
    parser.add_argument(
        "--connections", type=int, default=16, help="open connections, 8..32 is usual (default 16)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--rate",
        type=int,
        default=int(_TARGET_QPS),
        help="requests/s of the paced run that the p95 target is judged on (default 500); "
        "0 skips it and judges p95 on the closed-loop run",
    )
    parser.add_argument("--node-core", type=int, default=None, help="CPU core of the node")
    parser.add_argument("--wrk-core", type=int, default=None, help="CPU core of wrk")
    parser.add_argument(
        "--signature-method", choices=("HMAC-SM3", "HMAC-SHA256"), default="HMAC-SM3"
    )
    parser.add_argument(
        "--min-qps", type=float, default=_TARGET_QPS, help="throughput target (default 500)"
    )
    parser.add_argument(
        "--max-p95-ms", type=float, default=_TARGET_P95_MS, help="latency target (default 50)"
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    if not 1 <= args.duration <= _MAX_RUN_S or not 1 <= args.warmup <= _MAX_RUN_S:
        raise BenchmarkUnavailable(
            f"--duration and --warmup must be 1..{_MAX_RUN_S} s: pre-signed timestamps must stay "
            "inside the node's clock window"
        )
    if not 1 <= args.threads <= args.connections <= 1000:
        raise BenchmarkUnavailable("need 1 <= --threads <= --connections <= 1000")
    if not 0 <= args.rate <= _POOL_RATE:
        raise BenchmarkUnavailable(f"--rate must be 0..{_POOL_RATE}")
    node_core, wrk_core = _cores(args.node_core, args.wrk_core)
    return Settings(
        endpoint=args.endpoint,
        resource=args.resource,
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        threads=args.threads,
        rate=args.rate,
        node_core=node_core,
        wrk_core=wrk_core,
        signature_method=args.signature_method,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so the node is stopped on the way out.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures; the exit status (0 met, 1 not met, 2 cannot run)."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings = _settings(args)
        outcome = run(settings)
    except BenchmarkUnavailable as exc:
        print(f"benchmark cannot run: {exc}", file=sys.stderr)
        return 2
    except subprocess.TimeoutExpired:
        print("benchmark cannot run: wrk did not finish in time", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("benchmark interrupted; the node was stopped", file=sys.stderr)
        return 2
    return 0 if _report(settings, outcome, args.min_qps, args.max_p95_ms) else 1


if __name__ == "__main__":
    sys.exit(main())
