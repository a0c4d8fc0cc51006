"""The load generator's own ceiling: signed requests per second per core, beside wrk.

Both tools send share queries to the same trivial endpoint: nginx from the distribution's
packages answering a small static JSON on loopback, faster than either generator, so that the
figures measure the generators, not the server. The load generator runs one locust worker (one
core) with HMAC-SM3 signing of every request at a fixed arrival rate; wrk runs one thread. The
target is at least 1000 req/s per core.

    python benchmarks/load_generator.py [--rate 2000] [--seconds 5]

Needs ``nginx`` and ``wrk`` (Debian/Ubuntu: ``apt-get install -y nginx wrk``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance.load import load_load_profile, make_phase, run_plan
from conformance.load.plan import LoadPlan
from conformance.load.stats import phase_stats

_NGINX_CONF = """
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tools() -> tuple[str, str]:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    wrk = shutil.which("wrk")
    if nginx is None or wrk is None:
        missing = " and ".join(n for n, p in (("nginx", nginx), ("wrk", wrk)) if p is None)
        sys.exit(f"{missing} not found; install with: apt-get install -y nginx wrk")
    return nginx, wrk


def _wrk(wrk: str, url: str, seconds: int) -> float:
    output = subprocess.run(
        [wrk, "-t1", "-c50", f"-d{seconds}s", "-s", "/dev/stdin", url],
        input='wrk.method = "POST"\nwrk.body = "{}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n',
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    if match is None:
        sys.exit(f"wrk printed no rate: {output}")
    return float(match.group(1))


def _generator(origin: str, rate: float, seconds: int) -> tuple[float, float, float | None]:
    profile = load_load_profile()
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
        caps=profile.caps,
    )
    plan = LoadPlan(origin, "benchmark", "HMAC-SM3", 5.0, 1, (phase,))
    records = run_plan(plan, _SECRET, local_workers=1)
    stats = phase_stats(phase, records.phases["share-query"])
    answered = sum(1 for r in records.phases["share-query"].records if r[4] == 200)
    return stats.rate_per_s, answered / seconds, stats.p99_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000, help="arrival rate asked (req/s)")
    parser.add_argument("--seconds", type=int, default=5, help="measured window of each tool")
    args = parser.parse_args()
    nginx, wrk = _tools()
    with tempfile.TemporaryDirectory(prefix="ats-bench-") as folder:
        port = _free_port()
        conf = Path(folder) / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(folder=folder, port=port), "utf-8")
        server = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", folder, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            origin = f"http://127.0.0.1:{port}"
            url = f"{origin}/api/v1/share/101001/000001/query"
            wrk_rate = _wrk(wrk, url, args.seconds)
            sent, answered, p99 = _generator(origin, args.rate, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"wrk (1 thread, 50 connections, no signing): {wrk_rate:10.0f} req/s")
    print(
        f"load generator (1 worker, HMAC-SM3 signing, {args.rate:g} req/s asked): "
        f"{sent:10.0f} req/s sent, {answered:.0f} req/s answered, p99 {p99} ms"
    )
    print(f"ratio load generator / wrk: {answered / wrk_rate:.2f}")
    print(f"target ≥ 1000 req/s per core: {'met' if answered >= 1000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
