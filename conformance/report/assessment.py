"""The monthly assessment report (考核指标, ATS chapter 10) of one or more nodes.

Each node's figures are read from its ``GET /api/v1/stats`` with the target file's ``admin``
app (role provider-admin), through ``NodeClient``, the one HTTP client of the harness. The
period is the one the nodes answer. A node that cannot be read (unreadable target file, node
unreachable, refused or malformed answer) is a row carrying the error, never a crash. The
report is written as Markdown, a self-contained HTML page and CSV in UTF-8 with a byte order
mark, so that spreadsheet programs show the Chinese labels correctly.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conformance import ats
from conformance.client import NodeClient
from conformance.report.html import environment, labels
from conformance.report.model import Inconclusive
from conformance.target import TargetError, load_target

FIGURES = (
    "systems_integrated",
    "resources_shared",
    "resources_total",
    "collaborative_apps",
    "connectivity_rate",
    "calls_total",
    "calls_failed",
)
_NODE_COLUMNS = ("node_id", "name", "level", "base_url", "period")
_CHINA = dt.timezone(dt.timedelta(hours=8))
# A page with no script: the policy forbids every fetch and every script.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class NodeFigures:
    """One node's assessment figures for a period, or the error that kept them unread."""

    source: str
    node_id: str = ""
    name: str = ""
    level: str = ""
    base_url: str = ""
    period: str = ""
    figures: Mapping[str, int | float] = field(default_factory=dict)
    error: str = ""


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


def periods(rows: Sequence[NodeFigures]) -> str:
    """The period(s) the nodes answered, as one text (``2026-11`` or ``2026-10, 2026-11``)."""
    return ", ".join(sorted({r.period for r in rows if r.period})) or "—"


def shown(name: str, value: int | float | None) -> str:
    """A figure as people read it: connectivity as a percentage, counts as integers."""
    if value is None:
        return "—"
    if name == "connectivity_rate":
        return f"{value * 100:.1f} %"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def render_markdown(rows: Sequence[NodeFigures], generated_at: str) -> str:
    """The assessment as a Markdown table, one row per node."""
    text = labels()["assessment"]
    names = text["figures"]
    lines = [
        f"# {text['title']['zh']} {text['title']['en']}",
        "",
        f"- {text['period']['zh']} {text['period']['en']}: {periods(rows)}",
        f"- {text['generated_at']['zh']} {text['generated_at']['en']}: {generated_at}",
        "",
        "| 节点 node | "
        + " | ".join(f"{names[f]['zh']} {f}" for f in FIGURES)
        + f" | {text['error']['zh']} error |",
        "|---" * (len(FIGURES) + 2) + "|",
    ]
    for row in rows:
        node = " ".join(p for p in (row.node_id, row.name) if p) or row.source
        cells = [shown(f, row.figures.get(f)) for f in FIGURES]
        lines.append(f"| {_cell(node)} | " + " | ".join(cells) + f" | {_cell(row.error)} |")
    return "\n".join(lines) + "\n"


def render_html(rows: Sequence[NodeFigures], generated_at: str) -> str:
    """The assessment as one self-contained bilingual HTML page."""
    return (
        environment()
        .get_template("assessment.html.j2")
        .render(
            rows=rows,
            figures=FIGURES,
            period=periods(rows),
            generated_at=generated_at,
            shown=shown,
            policy=_POLICY,
        )
    )


def csv_header() -> list[str]:
    """The CSV header; a figure is its Chinese label and key (``整合系统数 systems_integrated``)."""
    names = labels()["assessment"]["figures"]
    return [*_NODE_COLUMNS, *(f"{names[f]['zh']} {f}" for f in FIGURES), "source", "error"]


def write_csv(rows: Sequence[NodeFigures], path: Path) -> Path:
    """Writes the assessment as CSV, UTF-8 with a byte order mark."""
    with path.open("w", encoding="utf-8-sig", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(csv_header())
        for row in rows:
            node: list[Any] = [getattr(row, column) for column in _NODE_COLUMNS]
            writer.writerow(
                [*node, *(row.figures.get(f, "") for f in FIGURES), row.source, row.error]
            )
    return path


def write_assessment(
    rows: Sequence[NodeFigures], folder: Path, generated_at: str | None = None
) -> dict[str, Path]:
    """Writes assessment.md, assessment.html and assessment.csv into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = generated_at or dt.datetime.now(_CHINA).isoformat(timespec="seconds")
    paths = {
        "assessment.md": folder / "assessment.md",
        "assessment.html": folder / "assessment.html",
        "assessment.csv": folder / "assessment.csv",
    }
    paths["assessment.md"].write_text(render_markdown(rows, stamp), encoding="utf-8")
    paths["assessment.html"].write_text(render_html(rows, stamp), encoding="utf-8")
    write_csv(rows, paths["assessment.csv"])
    return paths
