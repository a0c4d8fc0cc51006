"""The monthly assessment figures (考核指标, ATS chapter 10) of nodes, read from the nodes.

Each node's figures are read from its ``GET /api/v1/stats`` with the target file's ``admin``
app (role provider-admin), through ``NodeClient``, the one HTTP client of the harness. The
period is the one the nodes answer. A node that cannot be read (unreadable target file, node
unreachable, refused or malformed answer) is a row carrying the error, never a crash;
``conformance.report.assessment`` writes the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from conformance import ats
from conformance.client import NodeClient
from conformance.outcomes import Inconclusive
from conformance.report.assessment import FIGURES, NodeFigures
from conformance.target import TargetError, load_target


def _stats(client: NodeClient) -> tuple[str, dict[str, int | float]]:
    ex = client.get(ats.STATS, app="admin")
    if ex.status != 200:
        raise Inconclusive(f"{ex.summary()}; expected 200 with the statistics")
    data = ex.json()
    if not isinstance(data, dict):
        raise Inconclusive(f"{ex.summary()}: the answer is not a JSON object")
    figures: dict[str, int | float] = {}
    for name in FIGURES:
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Inconclusive(f"{ex.summary()}: {name} is {value!r}, expected a number")
        figures[name] = value
    period = data.get("period")
    return (period if isinstance(period, str) else ""), figures


def _name(client: NodeClient) -> str:
    # The node's name is a courtesy for readers; a node that does not give it keeps its id.
    try:
        ex = client.get(ats.NODE, app="admin")
        data = ex.json() if ex.status == 200 else {}
    except Inconclusive:
        return ""
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else ""


def read_node(target_path: Path) -> NodeFigures:
    """The assessment figures of the node a target file names (or the error that stopped it)."""
    try:
        target = load_target(target_path)
    except TargetError as exc:
        return NodeFigures(source=str(target_path), error=str(exc))
    node = target.node
    known = NodeFigures(
        source=str(target_path), node_id=node.node_id, level=node.level, base_url=node.base_url
    )
    client = NodeClient(target)
    try:
        period, figures = _stats(client)
        name = _name(client)
    except Inconclusive as exc:
        return replace(known, error=client.evidence.scrub(exc.reason))
    finally:
        client.close()
    return replace(known, name=name, period=period, figures=figures)


def collect(target_paths: Sequence[Path]) -> list[NodeFigures]:
    """The figures of every target's node, in the order given."""
    return [read_node(path) for path in target_paths]
