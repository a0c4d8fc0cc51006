"""The outcomes of a run: what a check decides about its clause, and what a run's verdict means.

A check returns normally when the node satisfies its clause (PASS) or raises one of the outcome
exceptions: ``Finding`` (FAIL, the node violates the clause), ``Inconclusive`` (ERROR, the check
could not decide), ``NotApplicable`` (SKIP, the clause does not apply) or ``NotAssessed`` (SKIP,
the clause applies but this run cannot assess it, so the run cannot certify). ``decide`` is the
one step that turns a check's return or exception into a clause verdict; ``exit_status`` is the
one rule that turns a run verdict into the exit status of the command.

This module is on the ground floor: the client, the checks, the plugin and the report model all
import it, and it imports nothing of the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(Exception):
    """A check's decision about its clause, carried as an exception with a one-line reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Finding(Outcome):
    """The node violates the clause: FAIL."""


class Inconclusive(Outcome):
    """The check could not decide (unreachable node, unusable answer, tester setup): ERROR."""


class NotApplicable(Outcome):
    """The clause does not apply to this node or run: SKIP with the reason."""


class NotAssessed(NotApplicable):
    """The clause applies, but this run cannot assess it (what it needs is missing from the
    target file, or the mode cannot provoke it): SKIP with the reason, and never a certification."""


class Verdict(StrEnum):
    """The verdict of one clause."""

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"


class RunVerdict(StrEnum):
    """The verdict of a run."""

    CERTIFIED = "CERTIFIED"
    CERTIFIED_WITH_FINDINGS = "CERTIFIED_WITH_FINDINGS"
    LAB_CONFORMANT = "LAB_CONFORMANT"
    NOT_CERTIFIED = "NOT_CERTIFIED"
    # The run stopped before judging every clause (preflight, Ctrl-C, SIGTERM): no verdict on
    # the node at all, whatever the clauses judged so far.
    INCOMPLETE = "INCOMPLETE"


class SkipCause(StrEnum):
    """Why a clause was not assessed; only some causes keep a run from certifying."""

    NOT_APPLICABLE = "not_applicable"  # the profile or the check says the clause does not apply
    NOT_IMPLEMENTED = "not_implemented"  # no check exists for the clause
    NOT_SELECTED = "not_selected"  # outside --only, or deselected by pytest options
    NOT_ASSESSED = "not_assessed"  # applies, but this run lacks what assessing it needs
    NOT_RUN = "not_run"  # the run stopped before it (preflight, interruption): INCOMPLETE


@dataclass(frozen=True)
class Decision:
    """A clause's verdict, its one-line reason and, for a SKIP, why it was not assessed."""

    verdict: Verdict
    reason: str
    skip_cause: SkipCause | None = None


def decision_of(exc: Exception) -> Decision:
    """The decision a check's exception carries; any other exception is the tester's ERROR."""
    if isinstance(exc, Finding):
        return Decision(Verdict.FAIL, exc.reason)
    if isinstance(exc, Inconclusive):
        return Decision(Verdict.ERROR, exc.reason)
    if isinstance(exc, NotAssessed):
        return Decision(Verdict.SKIP, exc.reason, SkipCause.NOT_ASSESSED)
    if isinstance(exc, NotApplicable):
        return Decision(Verdict.SKIP, exc.reason, SkipCause.NOT_APPLICABLE)
    # A check that crashes is the tester's fault, never the node's FAIL, and the reason says so.
    return Decision(
        Verdict.ERROR, f"the check failed on the tester side: {type(exc).__name__}: {exc}"
    )


def decide(assess: Callable[[], object], *, passed: str = "") -> Decision:
    """Runs ``assess`` (a check applied to its context) and answers its decision: PASS with
    ``passed`` as the reason when it returns, else the decision its exception carries."""
    try:
        assess()
    except Exception as exc:
        return decision_of(exc)
    return Decision(Verdict.PASS, passed)


def exit_status(verdict: RunVerdict) -> int:
    """The exit status of a run: 1 for NOT_CERTIFIED (the node is broken); 2 for INCOMPLETE
    (the run could not judge it: stopped by preflight or interrupted); 0 for CERTIFIED,
    CERTIFIED_WITH_FINDINGS or LAB_CONFORMANT."""
    if verdict is RunVerdict.INCOMPLETE:
        return 2
    return 1 if verdict is RunVerdict.NOT_CERTIFIED else 0
