"""A reference node on loopback for the load tests, its target file, and PERF check contexts.

The node runs as its own process (``python -m conformance.reference``), as a vendor's node
would; its parent and child point at closed loopback ports. Every wait is bounded.
"""

from __future__ import annotations

import json
import queue
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from conformance.checks import CheckContext, RunState, registry
from conformance.client import EvidenceLog, NodeClient
from conformance.data import data_dir
from conformance.outcomes import decide
from conformance.profile import Profile, load_profile
from conformance.target import Target, load_target

NODE_ID = "330000"
START_TIMEOUT_S = 30.0
ROLES: Mapping[str, str] = json.loads(
    (data_dir("fixtures") / "catalogs" / f"{NODE_ID}.json").read_text("utf-8")
)["roles"]
# Short smoke windows keep the suite's own CI cost small; the clause thresholds are unchanged.
SHORT = {"smoke_warmup_s": 1, "smoke_window_s": 4}


def _secret() -> str:
    return secrets.token_urlsafe(48)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_files(folder: Path, faults: Sequence[str] = ()) -> tuple[Path, Path]:
    """A provincial node file and the target file that certifies it; answers both paths."""
    creds = {name: _secret() for name in ("a", "b", "admin", "load", "up", "down", "p", "c")}
    node = {
        "node": {
            "node_id": NODE_ID,
            "name": "浙江省政务数据共享交换平台",
            "level": "provincial",
            "listen": "127.0.0.1:0",
            "database": str(folder / "node.sqlite3"),
            "rate_limit_per_app": 50,
            "cascade_timeout_s": 2,
            "systems_integrated": 12,
            "parent": {
                "node_id": "100000",
                "url": f"http://127.0.0.1:{_closed_port()}",
                "app_id": "node-330000",
                "secret": creds["up"],
            },
            "children": [
                {
                    "node_id": "330100",
                    "name": "杭州市政务数据共享交换平台",
                    "level": "municipal",
                    "url": f"http://127.0.0.1:{_closed_port()}",
                    "app_id": "node-330000",
                    "secret": creds["down"],
                }
            ],
        },
        "apps": [
            {"app_id": "consumer-a", "secret": creds["a"], "role": "consumer"},
            {"app_id": "consumer-b", "secret": creds["b"], "role": "consumer"},
            {"app_id": "admin", "secret": creds["admin"], "role": "provider-admin"},
            {"app_id": "load", "secret": creds["load"], "role": "consumer", "rate_limit": 400},
        ],
        "seed": {"catalog": NODE_ID},
        "faults": list(faults),
    }
    target = {
        "node": {
            "base_url": "http://127.0.0.1:1",
            "level": "provincial",
            "node_id": NODE_ID,
            "parent_id": "100000",
        },
        "apps": {
            "consumer": {"app_id": "consumer-a", "secret": creds["a"]},
            "consumer_b": {"app_id": "consumer-b", "secret": creds["b"]},
            "admin": {"app_id": "admin", "secret": creds["admin"]},
            "load": {"app_id": "load", "secret": creds["load"]},
        },
        "resources": dict(ROLES),
        "lab": True,
    }
    node_file, target_file = folder / "node.yaml", folder / "target.yaml"
    node_file.write_text(yaml.safe_dump(node, allow_unicode=True), "utf-8")
    target_file.write_text(yaml.safe_dump(target, allow_unicode=True), "utf-8")
    return node_file, target_file


def _ready_url(process: subprocess.Popen[str]) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=START_TIMEOUT_S)
    except queue.Empty:
        process.kill()
        raise RuntimeError("the node did not announce itself") from None
    kind, *_, url = line.split()
    assert kind == "ready", line
    return url


@contextmanager
def running_node(folder: Path, faults: Sequence[str] = ()) -> Iterator[Target]:
    """A reference node with these faults, and the target file pointing at it, for the block."""
    node_file, target_file = write_files(folder, faults)
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.reference", "--config", str(node_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = _ready_url(process)
        document = yaml.safe_load(target_file.read_text("utf-8"))
        document["node"]["base_url"] = url
        target_file.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
        yield load_target(target_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def short_profile(changes: Mapping[str, Any] = SHORT) -> Profile:
    """The provincial profile with ``changes`` applied to the parameters of ATS-PERF-01/-02."""
    profile = load_profile("provincial")
    clauses = tuple(
        replace(c, params={**c.params, **changes}) if c.id in ("ATS-PERF-01", "ATS-PERF-02") else c
        for c in profile.clauses
    )
    return replace(profile, clauses=clauses)


def context(
    target: Target, clause_id: str, run: RunState, profile: Profile, mode: str = "smoke"
) -> CheckContext:
    """The context of one PERF check of ``profile``, as the plugin builds it."""
    clause = next(c for c in profile.clauses if c.id == clause_id)
    evidence = EvidenceLog(target.secrets())
    return CheckContext(
        clause=clause,
        target=target,
        client=NodeClient(target).for_clause(evidence),
        run=run,
        evidence=evidence,
        profile=profile,
        load_mode=mode,
    )


def assess(ctx: CheckContext) -> tuple[str, str]:
    """The verdict and reason of the clause's check in this context."""
    function = registry()[ctx.clause.id].function
    decision = decide(lambda: function(ctx))
    return decision.verdict.value, decision.reason
