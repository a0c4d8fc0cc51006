"""A reference node with emulated neighbours, and a runner of data-chapter checks against it.

The node is a real process (``python -m conformance.reference``) on a loopback port, provincial
``330000``, its parent and child emulated by the suite (``conformance.neighbours``) on ports of
their own, so that routing ends in a 404 at the parent and a child can stop answering. A check
runs exactly as the plugin runs it: a ``CheckContext`` with its own evidence log, the verdict
taken from the outcome it raises.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from conformance.checks import (
    CheckContext,
    Finding,
    Inconclusive,
    NotApplicable,
    NotAssessed,
    RunState,
    registry,
)
from conformance.client import EvidenceLog, NodeClient
from conformance.data import data_dir
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.profile import load_profile
from conformance.reference.launcher import start_node
from conformance.target import load_target

NODE_ID = "330000"
# High enough that the suite's pacing (half the limit) does not slow the self-tests down.
RATE_LIMIT = 2000
DATA_CHAPTERS = ("CAT", "SHR", "SUB", "PRIV", "STAT")
# The reference node probes its children every 2 s: a short wait proves the drop (ATS-STAT-02).
PARAM_OVERRIDES = {"ATS-STAT-02": {"probe_max_age_s": 3, "probe_timeout_s": 2}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cred(app_id: str) -> dict[str, str]:
    return {"app_id": app_id, "secret": secrets.token_urlsafe(48)}


def _files(
    folder: Path, catalog: str, *, children: bool = True, emulate_child: bool = True
) -> tuple[Path, Path]:
    """A node file and a target file naming the same apps, resources and neighbours: without
    ``children`` the node has none; without ``emulate_child`` the target file names no child
    although the node has one (which then never answers)."""
    apps = {
        "consumer": _cred("consumer-a"),
        "consumer_b": _cred("consumer-b"),
        "admin": _cred("admin"),
        "load": _cred("load"),
    }
    parent_port, child_port = _free_port(), _free_port()
    as_parent, as_child = _cred("node-100000"), _cred("node-330100")
    up, down = _cred("node-330000"), _cred("node-330000")
    seed = (
        data_dir("fixtures") / "catalogs" / f"{catalog}.json"
        if "/" not in catalog
        else Path(catalog)
    )
    resources = json.loads(seed.read_text("utf-8"))["roles"]
    node = {
        "node": {
            "node_id": NODE_ID,
            "name": "浙江省政务数据共享交换平台",
            "level": "provincial",
            "listen": "127.0.0.1:0",
            "database": "node.sqlite3",
            "rate_limit_per_app": RATE_LIMIT,
            "cascade_timeout_s": 2,
            "systems_integrated": 12,
            "parent": {"node_id": "100000", "url": f"http://127.0.0.1:{parent_port}", **up},
            "children": [
                {
                    "node_id": "330100",
                    "name": "杭州市政务数据共享交换平台",
                    "level": "municipal",
                    "url": f"http://127.0.0.1:{child_port}",
                    **down,
                }
            ] if children else [],
        },
        "apps": [
            *({**cred, "role": "provider-admin" if name == "admin" else "consumer"}
              for name, cred in apps.items()),
            {**as_parent, "role": "node", "bound_node": "100000"},
            *([{**as_child, "role": "node", "bound_node": "330100"}] if children else []),
        ],
        "seed": {"catalog": str(seed)},
        "faults": [],
    }  # fmt: skip
    target = {
        "node": {
            "base_url": "http://127.0.0.1:1",
            "level": "provincial",
            "node_id": NODE_ID,
            "parent_id": "100000",
        },
        "apps": apps,
        "resources": resources,
        "lab": True,
        "timeouts": {"connect_s": 3, "read_s": 10},
        "neighbours": {
            "parent": {
                "listen": f"127.0.0.1:{parent_port}",
                "node_id": "100000",
                "as_parent": as_parent,
                "candidate": up,
            },
            **(
                {
                    "child": {
                        "listen": f"127.0.0.1:{child_port}",
                        "node_id": "330100",
                        "as_child": as_child,
                        "candidate": down,
                    }
                }
                if children and emulate_child
                else {}
            ),
        },
    }
    node_path, target_path = folder / "node.yaml", folder / "target.yaml"
    node_path.write_text(yaml.safe_dump(node, allow_unicode=True), "utf-8")
    target_path.write_text(yaml.safe_dump(target, allow_unicode=True), "utf-8")
    return node_path, target_path


@dataclass
class DataNode:
    """A running reference node, its target file, neighbours, one run state and one client."""

    target_path: Path
    neighbours: NeighbourSet
    client: NodeClient
    run: RunState = field(default_factory=RunState)

    def check(self, clause_id: str) -> tuple[str, str, CheckContext]:
        """Run the check of ``clause_id``: verdict (PASS/FAIL/ERROR/SKIP), reason, context."""
        clause = load_profile("provincial").clause(clause_id)
        if clause_id in PARAM_OVERRIDES:
            clause = replace(clause, params={**clause.params, **PARAM_OVERRIDES[clause_id]})
        target = self.client.target
        evidence = EvidenceLog(target.secrets())
        ctx = CheckContext(
            clause=clause,
            target=target,
            client=self.client.for_clause(evidence),
            run=self.run,
            evidence=evidence,
            neighbours=self.neighbours,
        )
        function = registry()[clause_id].function
        try:
            function(ctx)
        except Finding as exc:
            return "FAIL", exc.reason, ctx
        except Inconclusive as exc:
            return "ERROR", exc.reason, ctx
        except NotAssessed as exc:
            return "NOT_ASSESSED", exc.reason, ctx
        except NotApplicable as exc:
            return "SKIP", exc.reason, ctx
        return "PASS", "", ctx

    def verdicts(self, clause_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The verdict and reason of each clause, in turn."""
        return {cid: self.check(cid)[:2] for cid in clause_ids}


@contextmanager
def data_node(
    folder: Path,
    faults: Sequence[str] = (),
    catalog: str = NODE_ID,
    *,
    children: bool = True,
    emulate_child: bool = True,
) -> Iterator[DataNode]:
    """A reference node with these faults, its emulated neighbours listening (see ``_files``
    for ``children`` and ``emulate_child``)."""
    node_path, target_path = _files(folder, catalog, children=children, emulate_child=emulate_child)
    with ExitStack() as stack:
        target = load_target(target_path)
        assert target.neighbours is not None
        neighbours = start_neighbours(target.neighbours)
        stack.callback(neighbours.stop)
        running = start_node(node_path, faults)
        stack.callback(running.stop)
        document: dict[str, Any] = yaml.safe_load(target_path.read_text("utf-8"))
        document["node"]["base_url"] = running.url
        target_path.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
        client = NodeClient(load_target(target_path))
        stack.callback(client.close)
        if target.neighbours.child is not None:
            _push_child_catalog(client)
        yield DataNode(target_path, neighbours, client)


def _push_child_catalog(client: NodeClient) -> None:
    """The child's first full push (ATS §8), as the real child 330100 would send it."""
    child = json.loads((data_dir("fixtures") / "catalogs" / "330100.json").read_text("utf-8"))
    push = {
        "source_node_id": "330100",
        "seq": 1,
        "full": True,
        "entries": child["entries"],
        "deleted": [],
    }
    ex = client.post("/api/v1/cascade/catalog", app="as_child", json=push)
    if ex.status == 401:
        # A node under the no-sm3 fault takes only HMAC-SHA256 (ATS-AUTH-07).
        ex = client.post(
            "/api/v1/cascade/catalog", app="as_child", json=push, signature_method="HMAC-SHA256"
        )
    assert ex.status == 200, ex.summary()


def data_clauses() -> tuple[str, ...]:
    """The clause ids of the data chapters, in the standard's order."""
    profile = load_profile("provincial")
    return tuple(c.id for c in profile.clauses if c.chapter in DATA_CHAPTERS)


def _push_invalid_entry(client: NodeClient) -> None:
    """The child pushes an entry without ``update_cycle``: only a node that skips validation
    stores it (the defect of ``accept-invalid-entry``)."""
    child = json.loads((data_dir("fixtures") / "catalogs" / "330100.json").read_text("utf-8"))
    entry = {k: v for k, v in child["entries"][0].items() if k != "update_cycle"}
    push = {"source_node_id": "330100", "seq": 2, "full": False, "entries": [entry], "deleted": []}
    client.post("/api/v1/cascade/catalog", app="as_child", json=push)


# Faults whose defect shows only after something the tests provoke (a child's push).
PROVOCATIONS = {"accept-invalid-entry": _push_invalid_entry}
# Faults whose defect shows only on a node without children (ATS §10: connectivity_rate 1).
CHILDLESS = frozenset({"childless-connectivity-zero"})
