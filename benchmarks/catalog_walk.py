"""Benchmark: walk and validate a large catalog served by the reference node (ATS-CAT-01/02).

A reference node is seeded with a synthetic catalog of 10 000 and then 100 000 entries (the
fixture entries with fresh sequence numbers); the suite's catalog walk streams it in pages of 100
and validates every entry against the table of ATS §4. Printed: entries per second (target
≥ 5 000) and the RSS growth of each walk. Memory is flat when the largest walk grows the RSS
by at most ``MEMORY_BOUND_MIB`` more than the smallest one did: ten times the entries may not
cost ten times the memory. The exit status is 1 when either target is missed.

    python benchmarks/catalog_walk.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from conformance.checks import CheckContext, RunState
from conformance.checks._catalog_walk import (
    CatalogWalk,
    EntryRules,
    node_date,
    parse_offset,
)
from conformance.client import EvidenceLog, NodeClient, Pacer
from conformance.data import data_dir
from conformance.profile import load_profile
from conformance.reference.launcher import start_node
from conformance.target import load_target
from conformance.topology import free_ports, new_secret

TARGET_RATE = 5000.0
# Allowed extra RSS growth of the largest walk over the smallest: allocator noise, not a page
# kept per 100 entries (a kept page of evidence costs about 8 KiB, 8 MiB over 100 000 entries).
MEMORY_BOUND_MIB = 4.0
NODE_ID = "330000"


def synthetic_catalog(size: int) -> dict[str, object]:
    """A valid catalog of ``size`` entries: the fixture's entries with new sequence numbers."""
    fixture = json.loads((data_dir("fixtures") / "catalogs" / f"{NODE_ID}.json").read_text("utf-8"))
    templates = fixture["entries"]
    entries = []
    for number in range(size):
        entry = dict(templates[number % len(templates)])
        prefix = entry["resource_code"].split("/")[0]
        entry["resource_code"] = f"{prefix}/{number // len(templates):06d}"
        entry["related_codes"] = []
        entries.append(entry)
    roles = {role: entries[i]["resource_code"] for i, role in enumerate(fixture["roles"])}
    return {"node_id": NODE_ID, "roles": roles, "entries": entries, "records": {}}


def _files(folder: Path, size: int) -> tuple[Path, Path]:
    seed = folder / f"catalog-{size}.json"
    catalog = synthetic_catalog(size)
    seed.write_text(json.dumps(catalog, ensure_ascii=False), "utf-8")
    apps = {
        name: {"app_id": name.replace("_", "-"), "secret": new_secret()}
        for name in ("consumer", "consumer_b", "admin")
    }
    node = {
        "node": {
            "node_id": NODE_ID,
            "name": "benchmark node",
            "level": "provincial",
            "listen": "127.0.0.1:0",
            "database": f"node-{size}.sqlite3",
            "rate_limit_per_app": 100000,
            "cascade_timeout_s": 2,
            "systems_integrated": 1,
            # Nothing listens there: the node's pushes upward fail, which the walk does not need.
            "parent": {
                "node_id": "100000",
                "url": f"http://127.0.0.1:{free_ports(1)[0]}",
                "app_id": "node-330000",
                "secret": new_secret(),
            },
            "children": [],
        },
        "apps": [
            {**cred, "role": "provider-admin" if name == "admin" else "consumer"}
            for name, cred in apps.items()
        ],
        "seed": {"catalog": str(seed)},
        "faults": [],
    }
    target = {
        "node": {"base_url": "http://127.0.0.1:1", "level": "provincial", "node_id": NODE_ID,
                 "parent_id": "100000"},
        "apps": apps,
        "resources": catalog["roles"],
        "lab": True,
    }  # fmt: skip
    node_path, target_path = folder / f"node-{size}.yaml", folder / f"target-{size}.yaml"
    node_path.write_text(yaml.safe_dump(node, allow_unicode=True), "utf-8")
    target_path.write_text(yaml.safe_dump(target, allow_unicode=True), "utf-8")
    return node_path, target_path


def _rss_mb() -> float:
    """The resident set size of this process now, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def walk_once(folder: Path, size: int) -> tuple[int, float, float]:
    """Entries walked, entries per second and RSS growth (MiB) for a catalog of ``size``."""
    node_path, target_path = _files(folder, size)
    running = start_node(node_path, timeout_s=600)
    try:
        document = yaml.safe_load(target_path.read_text("utf-8"))
        document["node"]["base_url"] = running.url
        target_path.write_text(yaml.safe_dump(document), "utf-8")
        target = load_target(target_path)
        evidence = EvidenceLog(target.secrets())
        client = NodeClient(target, evidence, pacer=Pacer(1_000_000))
        clause = load_profile("provincial").clause("ATS-CAT-02")
        ctx = CheckContext(clause, target, client, RunState(), evidence)
        zone = parse_offset(str(clause.params["local_offset"]))
        rules = EntryRules(today=node_date(ctx, zone), zone=zone, name_max_chars=100)
        # Compiling the validators is a one-time cost of the run, not of the walk.
        rules.problems({})
        before = peak = _rss_mb()
        started = time.perf_counter()
        problems = 0
        # The rules of ATS-CAT-02 include the shape of ATS-CAT-01 (the full entry schema).
        walk = CatalogWalk(ctx, scope="local", strict=True)
        for entry in walk:
            problems += len(rules.problems(entry))
            if walk.count % 1000 == 0:
                peak = max(peak, _rss_mb())
        elapsed = time.perf_counter() - started
        client.close()
        if problems:
            raise SystemExit(f"the synthetic catalog of {size} has {problems} problems")
        return walk.count, walk.count / elapsed, peak - before
    finally:
        running.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; exit 1 when the walk is slower than 5 000/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args(argv)
    slowest = float("inf")
    growths: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            count, rate, growth = walk_once(Path(folder), size)
            slowest = min(slowest, rate)
            growths[size] = growth
            print(f"{count:>7} entries: {rate:>8.0f} entries/s, RSS growth {growth:6.1f} MiB")
    print(f"slowest walk {slowest:.0f} entries/s (target ≥ {TARGET_RATE:.0f})")
    extra = growths[max(growths)] - growths[min(growths)]
    flat = extra <= MEMORY_BOUND_MIB
    print(
        f"RSS growth of the {max(growths)}-entry walk exceeds the {min(growths)}-entry walk's by "
        f"{extra:.1f} MiB (bound {MEMORY_BOUND_MIB:.1f} MiB): memory "
        + ("flat" if flat else "NOT flat")
    )
    return 0 if slowest >= TARGET_RATE and flat else 1


if __name__ == "__main__":
    sys.exit(main())
