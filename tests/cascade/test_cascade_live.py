"""The CAS checks in live mode: the provincial node of the `conformance serve` topology,
certified against its real national parent and municipal child, and the child slot 330200 the
suite emulates beside them for what real neighbours cannot show. Every check passes on the clean
topology, and each fault fails the clauses it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from cascade_node import CAS, live_candidate, misjudged

# What only a misbehaving or observed next hop shows: judged with the emulated child slot.
WITH_EMULATED_CHILD = ("ATS-CAS-08", "ATS-CAS-09")

# What each fault breaks that live mode reveals. Faults missing here are seen only with emulated
# neighbours all round: the forwarded request's X-Request-Id (new-request-id-on-forward), the
# push itself (seq-not-increasing, incremental-sync); no-repush and slow-sync keep the topology
# from its initial sync, so it does not start.
LIVE_FAILS = {
    "accept-foreign-push": ("ATS-CAS-03",),
    "accept-invalid-entry": ("ATS-CAS-03",),
    "accept-out-of-order-push": ("ATS-CAS-02",),
    "accept-out-of-subtree-entry": ("ATS-CAS-03",),
    "forward-caller-headers": ("ATS-CAS-04", "ATS-CAS-05", "ATS-CAS-09"),
    "ignore-deleted": ("ATS-CAS-02", "ATS-CAS-10", "ATS-CAS-11"),
    "ignore-hop-limit": ("ATS-CAS-06",),
    "invalid-sync-entries": ("ATS-CAS-01",),
    "no-loop-check": ("ATS-CAS-07",),
    "no-origin-headers": ("ATS-CAS-04", "ATS-CAS-05"),
    "no-forward-timeout": ("ATS-CAS-08",),
    "no-upward-routing": ("ATS-CAS-05",),
    "partial-push-on-error": ("ATS-CAS-03",),
    "relay-upstream-failure": ("ATS-CAS-08",),
    "route-back-to-parent": ("ATS-CAS-05",),
    "upstream-error-as-502": ("ATS-CAS-04", "ATS-CAS-05"),
}
# Faults that wait out ATS-CAS-10's bound for the parent (about 40 s each).
LIVE_SLOW_FAILS = {
    "drop-deletions": ("ATS-CAS-10", "ATS-CAS-11"),
    "full-push-keeps-missing": ("ATS-CAS-02", "ATS-CAS-10", "ATS-CAS-11"),
    "sync-local-only": ("ATS-CAS-01", "ATS-CAS-10", "ATS-CAS-11"),
}
# A node that forwards nothing leaves the hop-limit and loop clauses undecided, not failed.
INCONCLUSIVE = {"forward-caller-headers": ("ATS-CAS-06", "ATS-CAS-07")}


def _judge(tmp_path: Path, fault: str, broken: tuple[str, ...]) -> list[str]:
    with live_candidate(tmp_path, [fault]) as node:
        verdicts = node.verdicts()
    undecided = INCONCLUSIVE.get(fault, ())
    kept = {c: v for c, v in verdicts.items() if not (c in undecided and v[0] == "ERROR")}
    return misjudged(kept, broken)


def test_every_cas_check_passes_against_the_real_neighbours(tmp_path: Path) -> None:
    with live_candidate(tmp_path) as node:
        verdicts = node.verdicts()
        # ATS-CAS-08 and -09 sent their queries through the emulated slot, the only neighbour
        # emulated in live mode.
        emulated = node.neighbours
        received = emulated.child.recorded("/api/v1/share/") if emulated and emulated.child else []
    assert misjudged(verdicts, []) == []
    assert set(verdicts) == set(CAS)
    assert emulated is not None
    assert emulated.parent is None
    assert emulated.child is not None
    assert emulated.child.spec.node_id == "330200"
    assert any(r.verified for r in received), received


def test_without_an_emulated_child_live_mode_does_not_assess_what_it_cannot_see(
    tmp_path: Path,
) -> None:
    with live_candidate(tmp_path, emulated_child=False) as node:
        verdicts = node.verdicts(WITH_EMULATED_CHILD)
    assert {c: v for c, (v, _) in verdicts.items()} == dict.fromkeys(WITH_EMULATED_CHILD, "SKIP")
    assert all("neighbours.emulated_child" in reason for _, reason in verdicts.values())
    # The clauses apply to a provincial node: not assessed, so the run cannot certify.
    assert node.skip_causes == dict.fromkeys(WITH_EMULATED_CHILD, "not_assessed")


@pytest.mark.parametrize("fault", sorted(LIVE_FAILS))
def test_fault_fails_its_cas_clauses_in_live_mode(tmp_path: Path, fault: str) -> None:
    assert _judge(tmp_path, fault, LIVE_FAILS[fault]) == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(LIVE_SLOW_FAILS))
def test_slow_fault_fails_its_cas_clauses_in_live_mode(tmp_path: Path, fault: str) -> None:
    assert _judge(tmp_path, fault, LIVE_SLOW_FAILS[fault]) == []
