"""``conformance report diff``: new failures first (MUST before SHOULD), then fixed, then others."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from report_builders import clauses, make_report

from conformance.cli import main
from conformance.report.diff import compare, render_diff
from conformance.report.json_writer import write_json
from conformance.report.model import Verdict


def _ids(level: str, count: int) -> list[str]:
    return [c.id for c in clauses() if c.level == level][:count]


def test_new_failures_come_first_must_before_should() -> None:
    must_a, must_b, must_c = _ids("MUST", 3)
    (should,) = _ids("SHOULD", 1)
    old = make_report(verdicts={must_c: Verdict.FAIL, should: Verdict.PASS})
    new = make_report(verdicts={should: Verdict.FAIL, must_b: Verdict.ERROR, must_a: Verdict.SKIP})
    diff = compare(old, new)
    assert [c.id for c in diff.new_failures] == [must_b, should]
    assert [c.id for c in diff.fixed] == [must_c]
    assert [(c.id, c.old, c.new) for c in diff.no_longer_assessed] == [
        (must_a, Verdict.PASS, Verdict.SKIP)
    ]
    assert diff.other == ()
    assert diff.must_regression
    assert diff.exit_status == 1
    text = render_diff(diff)
    assert text.index("New failures") < text.index("No longer assessed") < text.index("Fixed")
    assert text.index(must_b) < text.index(should) < text.index(must_a) < text.index(must_c)


@pytest.mark.parametrize(
    ("old", "new"),
    [(Verdict.PASS, Verdict.SKIP), (Verdict.FAIL, Verdict.SKIP), (Verdict.PASS, None)],
    ids=["passing, now skipped", "failing, now skipped", "passing, now absent"],
)
def test_a_must_clause_dropping_out_of_the_run_blocks_like_a_new_failure(
    old: Verdict, new: Verdict | None
) -> None:
    (must,) = _ids("MUST", 1)
    after = make_report(drop=[must]) if new is None else make_report(verdicts={must: new})
    diff = compare(make_report(verdicts={must: old}), after)
    assert [c.id for c in diff.no_longer_assessed] == [must]
    assert diff.exit_status == 1
    assert "a MUST clause newly fails or is no longer assessed" in render_diff(diff)


def test_a_should_clause_dropping_out_does_not_block() -> None:
    (should,) = _ids("SHOULD", 1)
    diff = compare(make_report(), make_report(verdicts={should: Verdict.SKIP}))
    assert [c.id for c in diff.no_longer_assessed] == [should]
    assert diff.exit_status == 0


def test_a_should_regression_alone_exits_0() -> None:
    (should,) = _ids("SHOULD", 1)
    diff = compare(make_report(), make_report(verdicts={should: Verdict.FAIL}))
    assert [c.id for c in diff.new_failures] == [should]
    assert diff.exit_status == 0
    assert (diff.old_verdict, diff.new_verdict) == ("CERTIFIED", "CERTIFIED_WITH_FINDINGS")


def test_fail_to_error_is_another_change_not_a_new_failure() -> None:
    (must,) = _ids("MUST", 1)
    diff = compare(
        make_report(verdicts={must: Verdict.FAIL}), make_report(verdicts={must: Verdict.ERROR})
    )
    assert diff.new_failures == ()
    assert [c.id for c in diff.other] == [must]
    assert diff.exit_status == 0


def test_added_and_removed_clauses_are_listed() -> None:
    first, second = _ids("MUST", 2)
    old = make_report(drop=[first])
    new = make_report(verdicts={first: Verdict.FAIL}, drop=[second])
    diff = compare(old, new)
    assert [c.id for c in diff.added] == [first]
    assert [c.id for c in diff.removed] == [second]
    # A MUST clause failing where it was absent is a new failure; a passing one gone is lost.
    assert [c.id for c in diff.new_failures] == [first]
    assert [c.id for c in diff.no_longer_assessed] == [second]
    assert diff.exit_status == 1


def test_the_run_verdict_change_is_reported() -> None:
    (must,) = _ids("MUST", 1)
    diff = compare(make_report(verdicts={must: Verdict.FAIL}), make_report())
    assert "run verdict: NOT_CERTIFIED → CERTIFIED (changed)" in render_diff(diff)


def _write(tmp_path: Path, name: str, **options: Any) -> Path:
    return write_json(make_report(**options), tmp_path / name)


def test_the_command_prints_text_and_exits_1_on_a_must_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (must,) = _ids("MUST", 1)
    old = _write(tmp_path, "old.json")
    new = _write(tmp_path, "new.json", verdicts={must: Verdict.FAIL})
    assert main(["report", "diff", str(old), str(new)]) == 1
    assert f"- {must} MUST PASS → FAIL" in capsys.readouterr().out
    assert main(["report", "diff", str(new), str(old)]) == 0


def test_runs_of_different_nodes_are_pointed_out() -> None:
    old = make_report()
    new = make_report()
    moved = replace(new, target={**new.target, "node_id": "330100"})
    assert "the runs assess different nodes: 330000 → 330100" in render_diff(compare(old, moved))
    assert "different nodes" not in render_diff(compare(old, new))


def test_the_command_speaks_json_for_machines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (must,) = _ids("MUST", 1)
    old = _write(tmp_path, "old.json", verdicts={must: Verdict.FAIL})
    new = _write(tmp_path, "new.json")
    assert main(["report", "diff", "--json", str(old), str(new)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verdict"] == {"old": "NOT_CERTIFIED", "new": "CERTIFIED", "changed": True}
    assert [c["id"] for c in document["fixed"]] == [must]
    assert document["must_regression"] is False


@pytest.mark.parametrize("content", ["{broken", '["a list"]', '{"profile": "provincial"}'], ids=str)
def test_unreadable_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    good = _write(tmp_path, "good.json")
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    assert main(["report", "diff", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "bad.json" in err[0]
