"""Reference nodes for the tests, written and started from a plan of ``conformance.topology``.

The plan ``embedded`` (provincial 330000 between the slots 100000 and 330100 the suite
emulates) is the node of every helper; a helper changes only what its tests need (rate limit,
cascade timeout, seed, which neighbours its target file names, TLS) and starts the node as a
separate process with the one readiness protocol (``ready <node_id> <url>``) and the one way to
stop. Every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conformance.topology import (
    Plan,
    RunningNode,
    free_ports,
    load_plan,
    new_secret,
    node_files,
    plan_ports,
    start_node,
    target_document,
    write_file,
)

__all__ = [
    "PlannedNode",
    "free_port",
    "new_secret",
    "plan_node",
    "running",
    "start",
    "wait_until",
]

NODE_ID = "330000"
PARENT_ID = "100000"
CHILD_ID = "330100"


def free_port() -> int:
    """A loopback port free now; nobody binds it afterwards unless a test does (a closed port)."""
    return free_ports(1)[0]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Returns once ``condition()`` holds; raises TimeoutError naming ``what`` after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:g} s")
        time.sleep(0.01)


@dataclass
class PlannedNode:
    """The candidate of a plan on paper: its node file and target file, as documents and
    written; ``write()`` writes the documents again after a helper changed them."""

    plan: Plan
    node: dict[str, Any]
    target: dict[str, Any]
    node_file: Path
    target_file: Path

    def write(self) -> None:
        """Both files hold the documents."""
        write_file(self.node_file, self.node)
        write_file(self.target_file, self.target)

    def app(self, app_id: str) -> dict[str, Any]:
        """The entry of an app in the node file."""
        return next(a for a in self.node["apps"] if a["app_id"] == app_id)


def plan_node(
    folder: Path,
    *,
    rate_limit: int = 50,
    cascade_timeout_s: float = 2,
    children: bool = True,
    seed: str = NODE_ID,
    database: str = "node.sqlite3",
    omit: Iterable[str] = (),
) -> PlannedNode:
    """Node 330000 of the plan ``embedded`` with these changes, written into ``folder``: without
    ``children`` it has no child; ``omit`` names neighbours the target file leaves out (wired,
    but nothing answers there). The node listens on a port of its choosing; ``running`` points
    the target file at it."""
    plan = replace(
        load_plan("embedded"), rate_limit_per_app=rate_limit, cascade_timeout_s=cascade_timeout_s
    )
    if not children:
        plan = plan.without(CHILD_ID)
    files = node_files(plan, "127.0.0.1", plan_ports(plan), seeds={NODE_ID: seed})
    # Until ``running`` points it at the node, the target file names a port nobody listens on.
    target = target_document(plan, files, NODE_ID, folder=folder, omit=omit)
    node = files[NODE_ID]
    node["node"]["listen"] = "127.0.0.1:0"
    node["node"]["database"] = database
    folder.mkdir(parents=True, exist_ok=True)
    planned = PlannedNode(plan, node, target, folder / "node.yaml", folder / "target.yaml")
    planned.write()
    return planned


def start(
    planned: PlannedNode, faults: Sequence[str] = (), variants: Sequence[str] = ()
) -> RunningNode:
    """The planned node started with these faults and variants, listening, its target file
    pointed at it; the caller stops it (``RunningNode.stop``)."""
    node = start_node(planned.node_file, faults, variants=variants)
    planned.target["node"]["base_url"] = node.url
    write_file(planned.target_file, planned.target)
    return node


@contextmanager
def running(
    planned: PlannedNode, faults: Sequence[str] = (), variants: Sequence[str] = ()
) -> Iterator[RunningNode]:
    """The planned node started (see ``start``) for the block, stopped after."""
    node = start(planned, faults, variants)
    try:
        yield node
    finally:
        node.stop()
