"""ATS-STAT-02's connectivity part is assessed on every node: without children the rate is 1
(ATS §10); with children and no emulated child in the target file the clause is not assessed,
naming neighbours.child, once its other parts have passed."""

from __future__ import annotations

from pathlib import Path

from data_node import data_node


def test_a_node_without_children_passes_with_rate_one(tmp_path: Path) -> None:
    with data_node(tmp_path, children=False) as node:
        verdict, reason, ctx = node.check("ATS-STAT-02")
    assert verdict == "PASS", reason
    notes = [e["note"] for e in ctx.evidence.entries if "note" in e]
    assert "connectivity_rate is 1 for a node without children" in notes


def test_a_node_without_children_answering_rate_zero_fails(tmp_path: Path) -> None:
    with data_node(tmp_path, ["childless-connectivity-zero"], children=False) as node:
        verdict, reason, _ = node.check("ATS-STAT-02")
    assert verdict == "FAIL", reason
    assert "expected 1 for a node without children" in reason


def test_children_without_an_emulated_child_are_not_assessed(tmp_path: Path) -> None:
    with data_node(tmp_path, emulate_child=False) as node:
        verdict, reason, _ = node.check("ATS-STAT-02")
    assert (verdict, node.skip_causes) == ("SKIP", {"ATS-STAT-02": "not_assessed"}), reason
    assert "neighbours.child" in reason
    assert "330100" in reason


def test_other_parts_still_fail_without_an_emulated_child(tmp_path: Path) -> None:
    with data_node(tmp_path, ["no-call-counting"], emulate_child=False) as node:
        verdict, reason, _ = node.check("ATS-STAT-02")
    assert verdict == "FAIL", reason
    assert "calls_total" in reason
