"""The faults only the long probes of ``--thorough`` catch, against the reference node.

``nonce-memory-300s`` forgets a nonce 300 s after its first use: ATS-AUTH-05 requires 600 s. A
default run replays nonces seconds after their first use, so it passes the fault (the fault
matrix, tests/test_fault_matrix.py, proves it passes every other clause too) and says the window
was assessed only for its start; a thorough run replays one later than 300 s and fails it. The
profile replays after 590 s; the slow test replays after 310 s to stay near five minutes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from data_node import data_node

from conformance.reference.faults import FAULTS

FAULT = "nonce-memory-300s"
# A little past the fault's memory, well within the 600 s the standard requires.
LATE_REPLAY_S = 310


def test_the_fault_is_marked_as_caught_only_by_the_thorough_probe() -> None:
    assert FAULTS[FAULT].thorough
    assert FAULTS[FAULT].clauses == ("ATS-AUTH-05",)
    assert [name for name, fault in FAULTS.items() if fault.thorough] == [FAULT]


@pytest.mark.timeout(120)
def test_a_default_run_passes_it_and_says_it_assessed_only_the_window_start(
    tmp_path: Path,
) -> None:
    with data_node(tmp_path, [FAULT], children=False) as node:
        verdict, reason, ctx = node.check("ATS-AUTH-05")
    assert (verdict, reason) == ("PASS", "")
    notes = [str(e) for e in ctx.evidence.entries]
    assert any("assessed only for its start" in n and "--thorough" in n for n in notes), notes


@pytest.mark.slow
@pytest.mark.timeout(LATE_REPLAY_S + 180)
def test_a_thorough_run_replaying_after_300_s_fails_it(tmp_path: Path) -> None:
    started = time.monotonic()
    with data_node(tmp_path, [FAULT], children=False) as node:
        verdict, reason, _ = node.check(
            "ATS-AUTH-05", thorough=True, params={"late_replay_after_s": LATE_REPLAY_S}
        )
    assert time.monotonic() - started >= LATE_REPLAY_S
    assert verdict == "FAIL"
    assert reason.startswith(
        f"a newly signed request reusing a nonce {LATE_REPLAY_S} s after its first use"
    ), reason
