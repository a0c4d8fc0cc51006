"""The result model of a run and its verdict rules; every report writer renders this model.

A clause is PASS, FAIL (the node violates it), ERROR (the check could not decide) or SKIP (not
assessed, always with a reason). The run's verdict follows from the clauses:

- NOT_CERTIFIED: a MUST clause fails or errs, or a MUST clause was not assessed because its
  check is not implemented (a MUST not assessed is not certified);
- otherwise, for a lab run (ATS §11), a partial run (``--only``, or a load stage other than
  ``full``) or a run that could not assess an applicable MUST clause (the target file names no
  neighbour the clause needs): LAB_CONFORMANT — conformant where assessed, never a certification;
- otherwise CERTIFIED_WITH_FINDINGS when a SHOULD clause fails or errs, or a FAIL was waived
  by the certifying authority (a waived FAIL reads WAIVED and blocks nothing), else CERTIFIED.

A run that stopped before judging every clause (its preflight stopped it, or it was
interrupted) is INCOMPLETE whatever its clauses say: ``stopped`` says which and where.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.outcomes import RunVerdict, SkipCause, Verdict


def printable(text: str) -> str:
    """``text`` with control characters (line breaks and tabs kept) and code points XML cannot
    carry written as ``\\xNN`` / ``\\uNNNN``: a node's garbage must not break a report file."""
    return "".join(
        ch
        if ch in "\n\t"
        or not (
            ord(ch) < 0x20
            or 0x7F <= ord(ch) < 0xA0
            or 0xD800 <= ord(ch) < 0xE000
            or ord(ch) in (0xFFFE, 0xFFFF)
        )
        else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        for ch in text
    )


# report.json keeps at most this many exchanges of each kind, and notes, of a passing or
# skipped clause.
EVIDENCE_SAMPLE = 5
EVIDENCE_NOTES = 50


def _kind(entry: Mapping[str, Any]) -> str:
    if set(entry) <= {"note"}:
        return "note"
    return "received" if "received_by" in entry else "exchange"


def _sample(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first entries of each kind of ``evidence`` (notes, exchanges the candidate sent to
    an emulated neighbour, the suite's own exchanges) within their bounds, in order."""
    bounds = {"note": EVIDENCE_NOTES, "received": EVIDENCE_SAMPLE, "exchange": EVIDENCE_SAMPLE}
    kept: list[dict[str, Any]] = []
    for entry in evidence:
        kind = _kind(entry)
        if bounds[kind] > 0:
            kept.append(entry)
            bounds[kind] -= 1
    return kept


@dataclass(frozen=True)
class ClauseResult:
    """The outcome of one clause with the exchanges that decided it (secrets already removed)."""

    id: str
    level: str
    chapter: str
    title: Mapping[str, str]
    verdict: Verdict
    reason: str
    duration_s: float = 0.0
    evidence: Sequence[Mapping[str, Any]] = ()
    skip_cause: SkipCause | None = None
    # A FAIL the certifying authority accepted (a signed waiver): clause, approver, ticket,
    # reason, expires. It reads WAIVED in every report and no longer blocks certification.
    waiver: Mapping[str, Any] | None = None
    # How many evidence entries the check recorded, when report.json keeps only a sample.
    evidence_total: int | None = None

    @property
    def shown(self) -> str:
        """The verdict as the reports show it: WAIVED for a waived FAIL."""
        return "WAIVED" if self.waived else self.verdict.value

    @property
    def waived(self) -> bool:
        """Whether this is a FAIL the authority waived."""
        return self.waiver is not None and self.verdict is Verdict.FAIL

    def to_dict(self) -> dict[str, Any]:
        """The clause as report.json holds it."""
        data: dict[str, Any] = {
            "id": self.id,
            "level": self.level,
            "chapter": self.chapter,
            "title": dict(self.title),
            "verdict": self.verdict.value,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
            "evidence": [dict(e) for e in self.evidence],
        }
        # A failing clause keeps every exchange; a passing or skipped one its notes (one line
        # each: what the check established) and a bounded sample of its exchanges, with the
        # count of what the check recorded, so a clean run's report stays small.
        total = max(len(self.evidence), self.evidence_total or 0)
        if self.verdict in (Verdict.PASS, Verdict.SKIP) and total > EVIDENCE_SAMPLE:
            data["evidence"] = _sample(data["evidence"])
        if len(data["evidence"]) < total:
            data["evidence_total"] = total
        if self.skip_cause is not None:
            data["skip_cause"] = self.skip_cause.value
        if self.waiver is not None:
            data["waiver"] = dict(self.waiver)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClauseResult:
        """The clause read back from report.json."""
        cause = data.get("skip_cause")
        return cls(
            id=data["id"],
            level=data["level"],
            chapter=data["chapter"],
            title=dict(data["title"]),
            verdict=Verdict(data["verdict"]),
            reason=data.get("reason", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            evidence=tuple(data.get("evidence", ())),
            skip_cause=SkipCause(cause) if cause else None,
            waiver=dict(data["waiver"]) if data.get("waiver") else None,
            evidence_total=data.get("evidence_total"),
        )


def _blocking(result: ClauseResult) -> bool:
    # A waived FAIL is still a finding (CERTIFIED_WITH_FINDINGS at best), never a block.
    return (
        result.level == "MUST"
        and not result.waived
        and (
            result.verdict in (Verdict.FAIL, Verdict.ERROR)
            or result.skip_cause is SkipCause.NOT_IMPLEMENTED
        )
    )


def _unassessed_must(result: ClauseResult) -> bool:
    return result.level == "MUST" and result.skip_cause is SkipCause.NOT_ASSESSED


def decide_verdict(clauses: Iterable[ClauseResult], *, lab: bool, partial: bool) -> RunVerdict:
    """The run verdict of these clause results (rules in the module docstring)."""
    results = list(clauses)
    if any(_blocking(r) for r in results):
        return RunVerdict.NOT_CERTIFIED
    if lab or partial or any(_unassessed_must(r) for r in results):
        return RunVerdict.LAB_CONFORMANT
    if any(r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in results):
        return RunVerdict.CERTIFIED_WITH_FINDINGS
    return RunVerdict.CERTIFIED


@dataclass(frozen=True)
class RunReport:
    """One run: what was certified, against which profile, and every clause's result."""

    profile: str
    suite_version: str
    started_at: str
    finished_at: str
    target: Mapping[str, Any]
    clauses: Sequence[ClauseResult]
    lab: bool = False
    partial: bool = False
    selection: Sequence[str] = ()
    load_mode: str = "off"
    load: Mapping[str, Any] = field(default_factory=dict)
    standard: str = "ATS-1.0"
    profile_digest: str = ""
    # What the run left at the node: the subscriptions it created, with their final status.
    created: Mapping[str, Any] = field(default_factory=dict)
    # The waivers file given to the run: its source, signer, and each waiver ignored with why.
    waivers: Mapping[str, Any] = field(default_factory=dict)
    # The preflight items, in order: {"item", "status", "detail"} (see conformance.preflight).
    preflight: Sequence[Mapping[str, str]] = ()
    # Why the run stopped before judging every clause: {"stage": "preflight" | "interrupted",
    # "at": the item or the clause it stopped at, "reason"}; empty for a run that finished.
    stopped: Mapping[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> RunVerdict:
        """The run verdict (see ``decide_verdict``); INCOMPLETE for a run that stopped."""
        if self.stopped:
            return RunVerdict.INCOMPLETE
        return decide_verdict(self.clauses, lab=self.lab, partial=self.partial)

    def stop_text(self) -> str:
        """Where the run stopped: "stopped at preflight (connect)", "interrupted before
        ATS-CAT-02"; empty for a run that finished."""
        if not self.stopped:
            return ""
        at = self.stopped.get("at", "")
        if self.stopped.get("stage") == "interrupted":
            return f"interrupted before {at}"
        return f"stopped at {self.stopped.get('stage', '')} ({at})"

    def to_certify(self) -> list[str]:
        """What a certification of this node would need that this run did not have: empty for
        a run that could certify."""
        needs = []
        if self.lab:
            needs.append("HTTPS: a base_url with https:// (and lab: false)")
        if self.load_mode != "full":
            needs.append("--load full (the load stage takes about 20 minutes)")
        if any(s.startswith("--only") for s in self.selection):
            needs.append("every chapter: no --only")
        if self.stopped:
            needs.append("a run that finishes: fix what stopped it and run again")
        return needs

    @property
    def counts(self) -> dict[str, int]:
        """How many clauses have each verdict (every verdict present, zero included)."""
        seen = Counter(r.verdict for r in self.clauses)
        return {v.value: seen.get(v, 0) for v in Verdict}

    def unimplemented_must(self) -> list[ClauseResult]:
        """MUST clauses not assessed because their check does not exist."""
        return [
            r
            for r in self.clauses
            if r.level == "MUST" and r.skip_cause is SkipCause.NOT_IMPLEMENTED
        ]

    def unassessed_must(self) -> list[ClauseResult]:
        """Applicable MUST clauses this run could not assess."""
        return [r for r in self.clauses if _unassessed_must(r)]

    def summary(self) -> dict[str, Any]:
        """Counts per chapter and per level, and the MUST clauses not implemented or assessed."""
        by_chapter: dict[str, dict[str, int]] = {}
        by_level: dict[str, dict[str, int]] = {}
        for r in self.clauses:
            for table, key in ((by_chapter, r.chapter), (by_level, r.level)):
                row = table.setdefault(key, {v.value: 0 for v in Verdict})
                row[r.verdict.value] += 1
        return {
            "by_chapter": by_chapter,
            "by_level": by_level,
            "must_not_implemented": len(self.unimplemented_must()),
            "must_not_assessed": len(self.unassessed_must()),
        }

    def headline(self) -> str:
        """One line: the verdict and why, as the terminal and summary.md show it."""
        verdict = self.verdict
        counts = self.counts
        if self.stopped:
            return (
                f"{verdict.value}: {self.stop_text()}: {self.stopped.get('reason', '')}"
                f"; {counts['PASS']} passed, {counts['FAIL']} failed, {counts['ERROR']} errors "
                "before it; no verdict on the node"
            )
        text = (
            f"{verdict.value}: {counts['PASS']} passed, {counts['FAIL']} failed, "
            f"{counts['ERROR']} errors, {counts['SKIP']} skipped"
        )
        missing = len(self.unimplemented_must())
        if missing:
            text += f"; {missing} MUST clauses not implemented"
        unassessed = self.unassessed_must()
        if unassessed:
            ids = ", ".join(r.id for r in unassessed)
            text += f"; MUST clauses not assessed ({ids}): never a certification"
        waived = sum(r.waived for r in self.clauses)
        if waived:
            text += f"; {waived} FAIL waived by the authority (WAIVED)"
        if self.lab:
            text += "; lab run (plain HTTP): never a certification"
        if self.partial:
            scope = ", ".join(self.selection) or "selected clauses"
            text += f"; partial run ({scope}): never a certification"
        return text

    def to_dict(self) -> dict[str, Any]:
        """report.json."""
        return {
            "standard": self.standard,
            "profile": self.profile,
            "profile_digest": self.profile_digest,
            "suite_version": self.suite_version,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "target": dict(self.target),
            "verdict": self.verdict.value,
            "headline": self.headline(),
            "lab": self.lab,
            "partial": self.partial,
            "selection": list(self.selection),
            "load_mode": self.load_mode,
            "counts": self.counts,
            "summary": self.summary(),
            "clauses": [r.to_dict() for r in self.clauses],
            "load": dict(self.load),
            "created": dict(self.created),
            **({"waivers": dict(self.waivers)} if self.waivers else {}),
            "preflight": [dict(i) for i in self.preflight],
            "stopped": dict(self.stopped) or None,
            "to_certify": self.to_certify(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        """The run read back from report.json (the verdict is recomputed, and must agree)."""
        return cls(
            profile=data["profile"],
            suite_version=data["suite_version"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            target=dict(data["target"]),
            clauses=tuple(ClauseResult.from_dict(c) for c in data["clauses"]),
            lab=bool(data.get("lab", False)),
            partial=bool(data.get("partial", False)),
            selection=tuple(data.get("selection", ())),
            load_mode=data.get("load_mode", "off"),
            load=dict(data.get("load", {})),
            standard=data.get("standard", "ATS-1.0"),
            profile_digest=data.get("profile_digest", ""),
            created=dict(data.get("created", {})),
            waivers=dict(data.get("waivers", {})),
            preflight=tuple(dict(i) for i in data.get("preflight") or ()),
            stopped=dict(data.get("stopped") or {}),
        )
