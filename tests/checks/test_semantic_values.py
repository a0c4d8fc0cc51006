"""ATS-SHR-06 checks real id numbers against GB 11643, not only masked shapes: every ID_NUMBER
item of the population is sensitive, so the unmasked values come from an unmasked grant."""

from __future__ import annotations

from pathlib import Path

from data_node import data_node


def test_a_wrong_check_character_in_unmasked_id_numbers_fails_shr_06(tmp_path: Path) -> None:
    with data_node(tmp_path, ["bad-check-character-in-records"]) as node:
        verdict, reason, _ = node.check("ATS-SHR-06")
    assert verdict == "FAIL", reason
    assert "unmasked record" in reason, reason
    assert "id_number" in reason, reason
    assert "check character" in reason, reason


def test_unmasked_values_pass_shr_06_on_the_clean_node(tmp_path: Path) -> None:
    with data_node(tmp_path) as node:
        verdict, reason, ctx = node.check("ATS-SHR-06")
    assert verdict == "PASS", reason
    notes = [e["note"] for e in ctx.evidence.entries if "note" in e]
    assert any("unmasked" in n for n in notes), notes
