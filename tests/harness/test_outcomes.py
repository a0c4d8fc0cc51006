"""The outcomes: one step turns a check's return or exception into a verdict, one rule turns a
run verdict into the exit status."""

from __future__ import annotations

import pytest

from conformance.client import NodeUnreachable
from conformance.outcomes import (
    Decision,
    Finding,
    Inconclusive,
    NotApplicable,
    NotAssessed,
    RunVerdict,
    SkipCause,
    Verdict,
    decide,
    decision_of,
    exit_status,
)


def _raising(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (Finding("answered 200"), Decision(Verdict.FAIL, "answered 200")),
        (Inconclusive("no JSON"), Decision(Verdict.ERROR, "no JSON")),
        (NodeUnreachable("refused"), Decision(Verdict.ERROR, "refused")),
        (
            NotAssessed("names no child"),
            Decision(Verdict.SKIP, "names no child", SkipCause.NOT_ASSESSED),
        ),
        (
            NotApplicable("lab run"),
            Decision(Verdict.SKIP, "lab run", SkipCause.NOT_APPLICABLE),
        ),
    ],
)
def test_each_outcome_is_its_verdict(exc: Exception, expected: Decision) -> None:
    assert decision_of(exc) == expected
    assert decide(lambda: _raising(exc), passed="unused") == expected


def test_a_check_that_returns_passes_with_the_given_reason() -> None:
    assert decide(lambda: None, passed="a nonce is refused twice") == Decision(
        Verdict.PASS, "a nonce is refused twice"
    )


def test_an_unexpected_exception_is_a_tester_side_error_naming_it() -> None:
    decision = decide(lambda: _raising(KeyError("status")))
    assert decision.verdict is Verdict.ERROR
    assert decision.skip_cause is None
    assert decision.reason == "the check failed on the tester side: KeyError: 'status'"


def test_an_interrupt_is_not_a_verdict() -> None:
    # Ctrl-C stops the run; it never becomes an ERROR of the clause being checked.
    with pytest.raises(KeyboardInterrupt):
        decide(lambda: _raising(KeyboardInterrupt()))


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        (RunVerdict.CERTIFIED, 0),
        (RunVerdict.CERTIFIED_WITH_FINDINGS, 0),
        (RunVerdict.LAB_CONFORMANT, 0),
        (RunVerdict.NOT_CERTIFIED, 1),
        (RunVerdict.INCOMPLETE, 2),
    ],
)
def test_only_not_certified_exits_1(verdict: RunVerdict, status: int) -> None:
    assert exit_status(verdict) == status


def test_every_run_verdict_has_an_exit_status() -> None:
    assert {exit_status(v) for v in RunVerdict} == {0, 1, 2}
