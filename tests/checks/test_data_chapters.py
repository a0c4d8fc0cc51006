"""The checks of the data chapters (CAT, SHR, SUB, PRIV, STAT) all pass on the clean reference
node; each fault fails exactly its clauses in the fault matrix (tests/test_fault_matrix.py, bench
"data")."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_node import DATA_CHAPTERS, data_clauses, data_node


@pytest.mark.parametrize("chapter", DATA_CHAPTERS)
def test_every_check_of_the_chapter_passes_on_the_clean_node(tmp_path: Path, chapter: str) -> None:
    with data_node(tmp_path) as node:
        verdicts = node.verdicts([c for c in data_clauses() if c.split("-")[1] == chapter])
    assert verdicts
    assert {c: v for c, (v, _) in verdicts.items()} == dict.fromkeys(verdicts, "PASS"), verdicts
