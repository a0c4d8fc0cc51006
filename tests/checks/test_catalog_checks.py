"""The ATS-CAT checks against the reference node: all pass on the clean node, and each fault
switch made for a clause of chapter CAT fails exactly the data-chapter clauses it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_node import data_clauses, data_node, faults_first_breaking, judge_fault

CHAPTER = "CAT"


def test_every_cat_check_passes_on_the_clean_node(tmp_path: Path) -> None:
    with data_node(tmp_path) as node:
        verdicts = node.verdicts([c for c in data_clauses() if c.split("-")[1] == CHAPTER])
    assert {c: v for c, (v, _) in verdicts.items()} == dict.fromkeys(verdicts, "PASS"), verdicts


@pytest.mark.parametrize("fault", faults_first_breaking(CHAPTER))
def test_fault_fails_exactly_its_data_clauses(tmp_path: Path, fault: str) -> None:
    assert judge_fault(tmp_path, fault) == []
