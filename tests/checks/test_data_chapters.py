"""The checks of the data chapters (CAT, SHR, SUB, PRIV, STAT) against the reference node: all
pass on the clean node, and each fault switch made for a clause of these chapters fails exactly
the data-chapter clauses it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_node import DATA_CHAPTERS, data_clauses, data_node, faults_first_breaking, judge_fault


@pytest.mark.parametrize("chapter", DATA_CHAPTERS)
def test_every_check_of_the_chapter_passes_on_the_clean_node(tmp_path: Path, chapter: str) -> None:
    with data_node(tmp_path) as node:
        verdicts = node.verdicts([c for c in data_clauses() if c.split("-")[1] == chapter])
    assert verdicts
    assert {c: v for c, (v, _) in verdicts.items()} == dict.fromkeys(verdicts, "PASS"), verdicts


@pytest.mark.parametrize(
    "fault", [fault for chapter in DATA_CHAPTERS for fault in faults_first_breaking(chapter)]
)
def test_fault_fails_exactly_its_data_clauses(tmp_path: Path, fault: str) -> None:
    assert judge_fault(tmp_path, fault) == []
