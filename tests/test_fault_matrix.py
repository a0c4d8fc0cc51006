"""The both-ways matrix: every switch of a registry, on the bench of each chapter it touches.

A registry names switches of the reference node and, for each, the clauses the switch breaks.
For a fault (``conformance/reference/faults.py``) exactly those clauses of the bench's chapters
FAIL and every other clause of them passes as on the clean node (STYLE §10). A variant registry
(conformant choices, each breaking nothing) is a second parameter set of the same matrix: add it
to ``REGISTRIES``.

A bench is a reference node shaped for some chapters (HTTPS for SEC, a live topology for CAS, a
load window for PERF); each judges only its own chapters, and checks too costly to run for every
switch (the ATS-SEC-03 burst, the ATS-PERF-04 stepped load) only when the switch targets them.
The matrix is the proof that every fault is caught: ``test_every_switch_has_its_cells`` fails for
a fault no bench judges. A fault caught only by the long probes of ``--thorough``
(``Fault.thorough``) goes on the benches of its clauses like any other, but there every clause
passes: the proof that a default run cannot see it; tests/checks/test_thorough_faults.py proves
the thorough run FAILs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cascade_node import CAS, emulated_candidate
from data_node import CHILDLESS, DATA_CHAPTERS, PROVOCATIONS, data_node
from loadnode import assess, context, running_node, short_profile
from secenv import SEC_AUD, pki, start_env

from conformance.checks import RunState
from conformance.profile import get_clause, load_profile
from conformance.reference.faults import FAULTS

__all__ = ["pki"]  # the security bench's certificates, a session fixture

Verdicts = dict[str, tuple[str, str]]
Judge = Callable[[pytest.FixtureRequest, Path, Sequence[str], Sequence[str]], Verdicts]

PROFILE = load_profile("provincial")


def _chapters(*names: str) -> tuple[str, ...]:
    return tuple(c.id for c in PROFILE.clauses if c.chapter in names)


@dataclass(frozen=True)
class Bench:
    """A bench is a node shaped for some chapters and the way to judge their clauses on it.

    ``costly`` clauses run only when the switch targets them; ``undecidable`` names, per
    switch, the clauses that may be ERROR under it because what their check reads is broken.
    ``lenient`` benches only forbid a FAIL of an untargeted clause (the data chapters: a check
    may SKIP or ERROR on a node whose data a switch has changed)."""

    clauses: tuple[str, ...]
    judge: Judge
    costly: frozenset[str] = frozenset()
    undecidable: Mapping[str, frozenset[str]] = field(default_factory=dict)
    lenient: bool = False


def _protocol(
    request: pytest.FixtureRequest, folder: Path, switches: Sequence[str], clauses: Sequence[str]
) -> Verdicts:
    with data_node(folder, switches) as node:
        return node.verdicts(clauses)


def _data(
    request: pytest.FixtureRequest, folder: Path, switches: Sequence[str], clauses: Sequence[str]
) -> Verdicts:
    with data_node(folder, switches, children=not set(switches) & CHILDLESS) as node:
        for switch in switches:
            if switch in PROVOCATIONS:
                PROVOCATIONS[switch](node.client)
        return node.verdicts(clauses)


def _security(
    request: pytest.FixtureRequest, folder: Path, switches: Sequence[str], clauses: Sequence[str]
) -> Verdicts:
    env = start_env(folder, request.getfixturevalue("pki"), switches)
    try:
        # The plugin runs the clauses marked run_last (ATS-AUD-03) after the others.
        ordered = sorted(clauses, key=lambda c: bool(get_clause(c).params.get("run_last")))
        verdicts: Verdicts = {}
        for clause_id in ordered:
            verdict, reason, evidence = env.assess(clause_id)
            text = repr(evidence) + reason
            assert not [s for s in env.target.secrets() if s in text], clause_id
            verdicts[clause_id] = (verdict, reason)
        return verdicts
    finally:
        env.stop()


def _cascade(
    request: pytest.FixtureRequest, folder: Path, switches: Sequence[str], clauses: Sequence[str]
) -> Verdicts:
    with emulated_candidate(folder, switches) as node:
        return node.verdicts(clauses)


def _perf(
    request: pytest.FixtureRequest, folder: Path, switches: Sequence[str], clauses: Sequence[str]
) -> Verdicts:
    profile, run = short_profile(), RunState()
    with running_node(folder, switches) as target:
        return {c: assess(context(target, c, run, profile)) for c in clauses}


PROTOCOL = _chapters("API", "NODE", "AUTH")
BENCHES: dict[str, Bench] = {
    "protocol": Bench(
        PROTOCOL,
        _protocol,
        undecidable={
            # ATS-NODE-05 reads the node clock from a health time that has no offset.
            "timestamp-without-offset": frozenset({"ATS-NODE-05"}),
            # The tester signs with HMAC-SM3 unless a clause is about HMAC-SHA256.
            "no-sm3": frozenset(PROTOCOL) - {"ATS-NODE-02", "ATS-AUTH-06", "ATS-AUTH-07"},
        },
    ),
    "data": Bench(_chapters(*DATA_CHAPTERS), _data, lenient=True),
    "security": Bench(SEC_AUD, _security, costly=frozenset({"ATS-SEC-03"})),
    "cascade": Bench(CAS, _cascade),
    "perf": Bench(_chapters("PERF"), _perf, costly=frozenset({"ATS-PERF-04"})),
}

# The registries of switches: name → the clauses the switch breaks.
REGISTRIES: dict[str, Mapping[str, tuple[str, ...]]] = {
    "fault": {name: fault.clauses for name, fault in FAULTS.items()},
}


# Faults whose clauses a default run judges PASS, as on the clean node: only --thorough sees them.
THOROUGH = frozenset(name for name, fault in FAULTS.items() if fault.thorough)


def expected_failures(registry: str, switch: str, bench: Bench) -> list[str]:
    """The clauses of ``bench`` a default run must FAIL under ``switch``."""
    if registry == "fault" and switch in THOROUGH:
        return []
    return [c for c in REGISTRIES[registry][switch] if c in bench.clauses]


def cells() -> Iterator[tuple[str, str, str]]:
    """``(registry, switch, bench)`` for every bench judging a clause the switch breaks; a
    switch breaking nothing (a variant) goes on every bench."""
    for registry, switches in REGISTRIES.items():
        for switch, broken in sorted(switches.items()):
            for name, bench in BENCHES.items():
                if not broken or set(broken) & set(bench.clauses):
                    yield registry, switch, name


def misjudged(bench: Bench, switch: str, broken: Sequence[str], verdicts: Verdicts) -> list[str]:
    """What is wrong with ``verdicts``: a broken clause that does not FAIL, or another that
    does not pass as on the clean node."""
    problems = []
    for clause_id, (verdict, reason) in verdicts.items():
        if clause_id in broken:
            if verdict != "FAIL":
                problems.append(f"{clause_id} is {verdict} under {switch}, expected FAIL: {reason}")
        elif verdict == "FAIL" or not (
            bench.lenient
            or verdict == "PASS"
            or (verdict == "ERROR" and clause_id in bench.undecidable.get(switch, ()))
        ):
            problems.append(f"{clause_id} is {verdict} under {switch}, expected PASS: {reason}")
    return problems


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("registry", "switch", "bench"), list(cells()), ids=[f"{r}:{s}@{b}" for r, s, b in cells()]
)
def test_a_switch_fails_exactly_its_clauses(
    request: pytest.FixtureRequest, tmp_path: Path, registry: str, switch: str, bench: str
) -> None:
    judged = BENCHES[bench]
    broken = expected_failures(registry, switch, judged)
    clauses = [c for c in judged.clauses if c not in judged.costly or c in broken]
    verdicts = judged.judge(request, tmp_path, [switch], clauses)
    assert sorted(verdicts) == sorted(clauses)
    assert misjudged(judged, switch, broken, verdicts) == []


def test_every_switch_has_its_cells() -> None:
    """Every clause a switch breaks is judged on some bench under that switch."""
    judged: dict[tuple[str, str], set[str]] = {}
    for registry, switch, bench in cells():
        judged.setdefault((registry, switch), set()).update(BENCHES[bench].clauses)
    unjudged = {
        (registry, switch): sorted(set(broken) - judged.get((registry, switch), set()))
        for registry, switches in REGISTRIES.items()
        for switch, broken in switches.items()
        if not set(broken) <= judged.get((registry, switch), set())
    }
    assert unjudged == {}
    assert len(judged) == sum(len(switches) for switches in REGISTRIES.values())


def test_every_clause_with_a_check_is_on_a_bench() -> None:
    on_benches = [c for bench in BENCHES.values() for c in bench.clauses]
    assert len(on_benches) == len(set(on_benches)), "a clause on two benches"
    assert sorted(on_benches) == sorted(c.id for c in PROFILE.clauses)


def test_every_clause_has_a_fault() -> None:
    broken = {c for fault in FAULTS.values() for c in fault.clauses}
    assert {c.id for c in PROFILE.clauses} - broken == set()
