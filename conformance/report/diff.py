"""Comparison of two runs: what a vendor fixed, what broke, and whether the run verdict moved.

Clauses whose verdict changed are listed new failures first (a clause FAIL or ERROR that was
PASS, SKIP or absent), then clauses no longer assessed (assessed before, now SKIP or absent: a
gate that lets a clause drop out of the run would let its failure through), then fixed clauses
(FAIL or ERROR that now PASS), then every other change; within each list MUST before SHOULD
before MAY, in the new run's clause order. Clauses present in one run only are listed as added
or removed too. The comparison's exit status is 1 when a MUST clause newly fails or is no longer
assessed, else 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from conformance.report.integrity import read_report
from conformance.report.model import ClauseResult, RunReport, Verdict

_FAILING = frozenset({Verdict.FAIL, Verdict.ERROR})
_LEVEL_RANK = {"MUST": 0, "SHOULD": 1, "MAY": 2}


class ChangeKind(StrEnum):
    """How a clause's verdict moved between two runs."""

    NEW_FAILURE = "new_failure"
    NO_LONGER_ASSESSED = "no_longer_assessed"
    FIXED = "fixed"
    OTHER = "other"


@dataclass(frozen=True)
class ClauseChange:
    """One clause whose verdict differs between the runs (``None``: absent from that run)."""

    id: str
    level: str
    chapter: str
    title: Mapping[str, str]
    old: Verdict | None
    new: Verdict | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The change as ``--json`` shows it."""
        return {
            "id": self.id,
            "level": self.level,
            "chapter": self.chapter,
            "title": dict(self.title),
            "old": self.old.value if self.old else None,
            "new": self.new.value if self.new else None,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RunDiff:
    """The differences between an old and a new run of the same suite."""

    old_verdict: str
    new_verdict: str
    new_failures: Sequence[ClauseChange]
    no_longer_assessed: Sequence[ClauseChange]
    fixed: Sequence[ClauseChange]
    other: Sequence[ClauseChange]
    added: Sequence[ClauseChange]
    removed: Sequence[ClauseChange]
    old_node: str = ""
    new_node: str = ""

    @property
    def must_regression(self) -> bool:
        """A MUST clause newly fails or is no longer assessed."""
        return any(c.level == "MUST" for c in (*self.new_failures, *self.no_longer_assessed))

    @property
    def exit_status(self) -> int:
        """1 when a MUST clause newly fails or is no longer assessed, else 0."""
        return 1 if self.must_regression else 0

    def to_dict(self) -> dict[str, Any]:
        """The comparison as ``--json`` shows it."""
        return {
            "verdict": {
                "old": self.old_verdict,
                "new": self.new_verdict,
                "changed": self.old_verdict != self.new_verdict,
            },
            "node": {"old": self.old_node, "new": self.new_node},
            "must_regression": self.must_regression,
            **{
                name: [c.to_dict() for c in changes]
                for name, changes in (
                    ("new_failures", self.new_failures),
                    ("no_longer_assessed", self.no_longer_assessed),
                    ("fixed", self.fixed),
                    ("other", self.other),
                    ("added", self.added),
                    ("removed", self.removed),
                )
            },
        }


def _kind(old: Verdict | None, new: Verdict | None) -> ChangeKind:
    if new in _FAILING and old not in _FAILING:
        return ChangeKind.NEW_FAILURE
    if old not in (None, Verdict.SKIP) and new in (None, Verdict.SKIP):
        return ChangeKind.NO_LONGER_ASSESSED
    if old in _FAILING and new is Verdict.PASS:
        return ChangeKind.FIXED
    return ChangeKind.OTHER


def _present(*results: ClauseResult | None) -> ClauseResult:
    # A clause id comes from one of the runs, so one of its results exists.
    return next(r for r in results if r is not None)


def compare(old: RunReport, new: RunReport) -> RunDiff:
    """The differences from run ``old`` to run ``new``."""
    before = {r.id: r for r in old.clauses}
    after = {r.id: r for r in new.clauses}
    ids = [*after, *(cid for cid in before if cid not in after)]
    order = {cid: index for index, cid in enumerate(ids)}
    lists: dict[ChangeKind, list[ClauseChange]] = {kind: [] for kind in ChangeKind}
    added, removed = [], []
    for cid in ids:
        was, now = before.get(cid), after.get(cid)
        old_v = was.verdict if was else None
        new_v = now.verdict if now else None
        shown = _present(now, was)
        change = ClauseChange(
            id=cid,
            level=shown.level,
            chapter=shown.chapter,
            title=shown.title,
            old=old_v,
            new=new_v,
            reason=shown.reason,
        )
        if was is None:
            added.append(change)
        if now is None:
            removed.append(change)
        if old_v != new_v and (was is not None or new_v in _FAILING):
            lists[_kind(old_v, new_v)].append(change)

    def ranked(changes: list[ClauseChange]) -> tuple[ClauseChange, ...]:
        return tuple(sorted(changes, key=lambda c: (_LEVEL_RANK.get(c.level, 3), order[c.id])))

    return RunDiff(
        old_verdict=old.verdict.value,
        new_verdict=new.verdict.value,
        new_failures=ranked(lists[ChangeKind.NEW_FAILURE]),
        no_longer_assessed=ranked(lists[ChangeKind.NO_LONGER_ASSESSED]),
        fixed=ranked(lists[ChangeKind.FIXED]),
        other=ranked(lists[ChangeKind.OTHER]),
        added=tuple(added),
        removed=tuple(removed),
        old_node=str(old.target.get("node_id", "")),
        new_node=str(new.target.get("node_id", "")),
    )


def _line(change: ClauseChange) -> str:
    old = change.old.value if change.old else "absent"
    new = change.new.value if change.new else "absent"
    title = change.title.get("en") or change.title.get("zh") or ""
    text = f"- {change.id} {change.level} {old} → {new}  {title}"
    if change.new in _FAILING and change.reason:
        text += f"\n  reason: {' '.join(change.reason.split())}"
    return text


def render_diff(diff: RunDiff, old_name: str = "old", new_name: str = "new") -> str:
    """The comparison as Markdown text for people."""
    moved = "changed" if diff.old_verdict != diff.new_verdict else "unchanged"
    lines = [
        f"# Run comparison: {old_name} → {new_name}",
        "",
        f"run verdict: {diff.old_verdict} → {diff.new_verdict} ({moved})",
    ]
    if diff.old_node != diff.new_node:
        lines.append(f"note: the runs assess different nodes: {diff.old_node} → {diff.new_node}")
    for heading, changes in (
        ("New failures", diff.new_failures),
        ("No longer assessed", diff.no_longer_assessed),
        ("Fixed", diff.fixed),
        ("Other changes", diff.other),
        ("Added clauses", diff.added),
        ("Removed clauses", diff.removed),
    ):
        if changes:
            lines += ["", f"## {heading} ({len(changes)})", ""]
            lines += [_line(c) for c in changes]
    if not (diff.new_failures or diff.fixed or diff.other or diff.added or diff.removed):
        lines += ["", "no clause changed its verdict"]
    lines += [
        "",
        "a MUST clause newly fails or is no longer assessed"
        if diff.must_regression
        else "no MUST clause newly fails or dropped out of the run",
    ]
    return "\n".join(lines)


def diff_files(old: Path, new: Path, *, as_json: bool = False) -> tuple[str, int]:
    """The comparison of two report.json files as text (or JSON) and its exit status.

    Raises ``ReportFileError`` (one line) when either file is not a readable report.
    """
    diff = compare(read_report(old), read_report(new))
    if as_json:
        document = {"old": str(old), "new": str(new), **diff.to_dict()}
        return json.dumps(document, ensure_ascii=False, indent=2), diff.exit_status
    return render_diff(diff, str(old), str(new)), diff.exit_status
