"""Benchmark: wall time of a functional run on the embedded topology (every non-load clause).

Runs `conformance run --load off` (the embedded default without its load stage: the reference
provincial node and the suite's emulated neighbours on loopback, topology start included) a few
times, each into a fresh report folder, and prints the wall time of each run, the median, and the
clauses that took longest in the last run. Target: ≤ 30 s on 2 cores.

    python benchmarks/functional_run.py [--runs 3] [--target-s 30]

Exit status: 0 the median meets the target, 1 it does not, 2 a run could not be made (its
exit status was 2, or it wrote no report.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A run that takes this long has hung: the benchmark stops it rather than wait forever.
_RUN_TIMEOUT_S = 300
_SLOWEST = 5


def _one_run(report_dir: Path) -> tuple[float, dict[str, object]]:
    command = [
        sys.executable,
        "-m",
        "conformance.cli",
        "run",
        "--load",
        "off",
        "--quiet",
        "--report-dir",
        str(report_dir),
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=_RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - started
    report = report_dir / "report.json"
    if done.returncode == 2 or not report.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"functional_run: the run could not be made: {last}")
    return wall, json.loads(report.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="how many runs (default 3)")
    parser.add_argument("--target-s", type=float, default=30.0, help="target median wall time")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ats-bench-") as tmp:
        for number in range(1, args.runs + 1):
            try:
                wall, report = _one_run(Path(tmp) / f"run-{number}")
            except SystemExit as exc:
                print(exc, file=sys.stderr)
                return 2
            walls.append(wall)
            counts = report["counts"]
            print(f"run {number}: {wall:6.1f} s  {report['verdict']}  {counts}")

    median = statistics.median(walls)
    spread = f"min {min(walls):.1f}, max {max(walls):.1f}"
    print(f"median {median:.1f} s over {len(walls)} runs ({spread})")
    slowest = sorted(report["clauses"], key=lambda c: c["duration_s"], reverse=True)[:_SLOWEST]
    print("slowest clauses of the last run:")
    for clause in slowest:
        print(f"  {clause['id']:<12} {clause['duration_s']:6.2f} s  {clause['verdict']}")
    if median <= args.target_s:
        print(f"verdict PASS: median {median:.1f} s ≤ {args.target_s:g} s")
        return 0
    print(f"verdict FAIL: median {median:.1f} s > {args.target_s:g} s")
    return 1


if __name__ == "__main__":
    sys.exit(main())
