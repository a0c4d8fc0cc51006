"""The both-ways matrix: every switch of both registries, on the bench of each chapter it concerns.

Two registries name switches of the reference node (STYLE §10: one matrix over both):

- a fault (``conformance/reference/faults.py``) names the clauses it breaks; on each bench judging
  one of them, exactly those clauses FAIL and every other clause of the bench passes;
- a variant (``conformance/reference/variants.py``) is a choice ATS leaves open and breaks
  nothing; on each bench judging a chapter it touches, every clause of those chapters PASSes.

A bench is a reference node shaped for some chapters (HTTPS for SEC, emulated neighbours for CAS,
a load window for PERF) and judges only its own. The checks too costly to run for every fault
(the ATS-SEC-03 burst, the ATS-PERF-04 stepped load) run only under a fault that targets them;
under a variant every clause of a touched chapter runs, as ``conformance run --only`` would.
``ALLOWANCES`` names, per switch, each verdict other than PASS an untouched clause may take and
why; nothing else is tolerated. ``test_every_switch_has_its_cells`` fails for a switch no bench
judges; the whole suite per variant (``conformance run``) is the ``--run-slow`` test below.
A fault caught only by the long probes of ``--thorough`` (``Fault.thorough``) goes on the
benches of its clauses like any other, but there every clause passes: the proof that a default
run cannot see it; tests/checks/test_thorough_faults.py proves the thorough run FAILs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from cascade_node import CAS, emulated_candidate
from data_node import CHILDLESS, DATA_CHAPTERS, PROVOCATIONS, data_node
from loadnode import context, running_node, short_profile
from secenv import SEC_AUD, pki, start_env

from conformance.checks import CheckContext, RunState, registry
from conformance.outcomes import decide
from conformance.profile import get_clause, load_profile
from conformance.reference.faults import FAULTS
from conformance.reference.variants import VARIANTS
from conformance.runner import embedded_files
from conformance.topology import start_node

__all__ = ["pki"]  # the security bench's certificates, a session fixture

PROFILE = load_profile("provincial")


class Judged(NamedTuple):
    """A clause's verdict, its reason and, for a SKIP, the cause report.json names."""

    verdict: str
    reason: str
    skip_cause: str | None = None


@dataclass(frozen=True)
class Switch:
    """A switch is one entry of a registry: a fault or a variant of the reference node."""

    registry: str
    name: str

    @property
    def faults(self) -> tuple[str, ...]:
        return (self.name,) if self.registry == "fault" else ()

    @property
    def variants(self) -> tuple[str, ...]:
        return (self.name,) if self.registry == "variant" else ()

    @property
    def breaks(self) -> tuple[str, ...]:
        """The clauses a default run FAILs under the switch: none for a variant, nor for a fault
        only the long probes of ``--thorough`` see (``Fault.thorough``)."""
        if self.registry != "fault" or FAULTS[self.name].thorough:
            return ()
        return FAULTS[self.name].clauses

    @property
    def concerns(self) -> frozenset[str]:
        """The clauses some bench must judge under the switch: those a fault is about, every
        clause of the chapters a variant touches."""
        if self.registry == "fault":
            return frozenset(FAULTS[self.name].clauses)
        touches = VARIANTS[self.name].touches
        return frozenset(c.id for c in PROFILE.clauses if c.chapter in touches)

    def __str__(self) -> str:
        return f"{self.registry}:{self.name}"


Verdicts = dict[str, Judged]
Judge = Callable[[pytest.FixtureRequest, Path, Switch, Sequence[str]], Verdicts]


def _chapters(*names: str) -> tuple[str, ...]:
    return tuple(c.id for c in PROFILE.clauses if c.chapter in names)


@dataclass(frozen=True)
class Bench:
    """A bench is a node shaped for some chapters and the way to judge their clauses on it;
    ``costly`` clauses run under a fault only when it targets them."""

    clauses: tuple[str, ...]
    judge: Judge
    costly: frozenset[str] = frozenset()


def _protocol(
    request: pytest.FixtureRequest, folder: Path, switch: Switch, clauses: Sequence[str]
) -> Verdicts:
    with data_node(folder, switch.faults, variants=switch.variants) as node:
        return _verdicts(node.verdicts(clauses), node.skip_causes)


def _data(
    request: pytest.FixtureRequest, folder: Path, switch: Switch, clauses: Sequence[str]
) -> Verdicts:
    children = not set(switch.faults) & CHILDLESS
    with data_node(folder, switch.faults, children=children, variants=switch.variants) as node:
        for fault in switch.faults:
            if fault in PROVOCATIONS:
                PROVOCATIONS[fault](node.client)
        return _verdicts(node.verdicts(clauses), node.skip_causes)


def _security(
    request: pytest.FixtureRequest, folder: Path, switch: Switch, clauses: Sequence[str]
) -> Verdicts:
    env = start_env(folder, request.getfixturevalue("pki"), switch.faults, variants=switch.variants)
    try:
        # The plugin runs the clauses marked run_last (ATS-AUD-03) after the others.
        ordered = sorted(clauses, key=lambda c: bool(get_clause(c).params.get("run_last")))
        verdicts: dict[str, tuple[str, str]] = {}
        for clause_id in ordered:
            verdict, reason, evidence = env.assess(clause_id)
            text = repr(evidence) + reason
            assert not [s for s in env.target.secrets() if s in text], clause_id
            verdicts[clause_id] = (verdict, reason)
        return _verdicts(verdicts, env.skip_causes)
    finally:
        env.stop()


def _cascade(
    request: pytest.FixtureRequest, folder: Path, switch: Switch, clauses: Sequence[str]
) -> Verdicts:
    with emulated_candidate(folder, switch.faults, switch.variants) as node:
        return _verdicts(node.verdicts(clauses), node.skip_causes)


def _perf(
    request: pytest.FixtureRequest, folder: Path, switch: Switch, clauses: Sequence[str]
) -> Verdicts:
    profile, run = short_profile(), RunState()
    with running_node(folder, switch.faults, switch.variants) as target:
        return {c: _assess(context(target, c, run, profile)) for c in clauses}


def _assess(ctx: CheckContext) -> Judged:
    decision = decide(lambda: registry()[ctx.clause.id].function(ctx))
    cause = decision.skip_cause.value if decision.skip_cause is not None else None
    return Judged(decision.verdict.value, decision.reason, cause)


def _verdicts(verdicts: Mapping[str, tuple[str, str]], skip_causes: Mapping[str, str]) -> Verdicts:
    return {c: Judged(v, reason, skip_causes.get(c)) for c, (v, reason) in verdicts.items()}


BENCHES: dict[str, Bench] = {
    "protocol": Bench(_chapters("API", "NODE", "AUTH"), _protocol),
    "data": Bench(_chapters(*DATA_CHAPTERS), _data),
    "security": Bench(SEC_AUD, _security, costly=frozenset({"ATS-SEC-03"})),
    "cascade": Bench(CAS, _cascade),
    "perf": Bench(_chapters("PERF"), _perf, costly=frozenset({"ATS-PERF-04"})),
}

# The registries of switches, each name to the switch.
REGISTRIES: dict[str, dict[str, Switch]] = {
    "fault": {name: Switch("fault", name) for name in sorted(FAULTS)},
    "variant": {name: Switch("variant", name) for name in sorted(VARIANTS)},
}


@dataclass(frozen=True)
class Allowance:
    """An allowance is a verdict other than PASS (and, for a SKIP, its cause) that some clauses
    may take under one switch, and why: what the check reads is broken, or the switch puts the
    clause beyond what a run can assess (never a FAIL)."""

    clauses: frozenset[str]
    verdict: str
    why: str
    skip_cause: str | None = None

    def covers(self, clause_id: str, judged: Judged) -> bool:
        """``judged`` is this allowance's verdict for one of its clauses."""
        return (
            clause_id in self.clauses
            and judged.verdict == self.verdict
            and (self.skip_cause is None or judged.skip_cause == self.skip_cause)
        )


ALLOWANCES: dict[Switch, tuple[Allowance, ...]] = {
    REGISTRIES["fault"]["timestamp-without-offset"]: (
        Allowance(
            frozenset({"ATS-NODE-05"}),
            "ERROR",
            "ATS-NODE-05 reads the node clock from a health time that has no offset",
        ),
    ),
    REGISTRIES["fault"]["no-sm3"]: (
        Allowance(
            frozenset(
                {
                    *("ATS-API-01", "ATS-API-05", "ATS-API-06", "ATS-API-08", "ATS-API-09"),
                    *("ATS-AUTH-02", "ATS-AUTH-04", "ATS-AUTH-05", "ATS-AUTH-08"),
                }
            ),
            "ERROR",
            "the tester signs with HMAC-SM3 unless a clause is about HMAC-SHA256: these checks "
            "need a signed request the node refuses (ATS-AUTH-06's finding)",
        ),
    ),
    REGISTRIES["fault"]["hide-not-shared"]: (
        Allowance(
            frozenset({"ATS-STAT-02"}),
            "ERROR",
            "resources_total is compared with the local catalog list, which lacks the NOT_SHARED "
            "entries (ATS-CAT-03's finding)",
        ),
    ),
    REGISTRIES["fault"]["catalog-get-unknown-200"]: (
        Allowance(
            frozenset({"ATS-SHR-07"}),
            "ERROR",
            "the unheld code to query is found through the catalog, which answers every code "
            "as held (ATS-CAT-03's finding)",
        ),
    ),
    REGISTRIES["fault"]["mask-unmasked-grant"]: (
        Allowance(
            frozenset({"ATS-PRIV-03", "ATS-PRIV-04"}),
            "ERROR",
            "the real values they judge by are read under an unmasked grant, which this fault "
            "masks (ATS-PRIV-02's finding, issue 15 item 4)",
        ),
    ),
    REGISTRIES["fault"]["wrong-stats-types"]: (
        Allowance(
            frozenset({"ATS-STAT-02"}),
            "ERROR",
            "the counters cannot be compared when connectivity_rate is not a number "
            "(ATS-STAT-01's finding)",
        ),
    ),
    REGISTRIES["variant"]["high-rate-limit"]: (
        Allowance(
            frozenset({"ATS-SEC-03"}),
            "SKIP",
            "1 200 requests/s is more than one burst delivers: the SKIP says what would assess "
            "the limit (the load stage; ATS-SEC-03, issue 15 item 4)",
            skip_cause="not_assessed",
        ),
    ),
}


def clauses_of(switch: Switch, bench: Bench) -> list[str]:
    """The clauses of ``bench`` judged under ``switch``: under a fault breaking one of them,
    the bench's clauses (the costly ones only if targeted); under a variant, those of the
    chapters it touches. Empty: the switch has no cell on the bench."""
    if switch.registry == "variant":
        return [c for c in bench.clauses if c in switch.concerns]
    if not switch.concerns & set(bench.clauses):
        return []
    return [c for c in bench.clauses if c not in bench.costly or c in switch.concerns]


def cells() -> Iterator[tuple[Switch, str]]:
    """``(switch, bench)`` for every bench that judges some clause under the switch."""
    for switches in REGISTRIES.values():
        for switch in switches.values():
            for name, bench in BENCHES.items():
                if clauses_of(switch, bench):
                    yield switch, name


def misjudged(switch: Switch, verdicts: Verdicts, accepted: Sequence[str] = ()) -> list[str]:
    """What is wrong with ``verdicts`` under ``switch``: a clause it breaks that does not FAIL,
    or another that does not PASS (its allowances and a SKIP of an ``accepted`` cause aside)."""
    allowances = ALLOWANCES.get(switch, ())
    problems = []
    for clause_id, judged in verdicts.items():
        if clause_id in switch.breaks:
            if judged.verdict != "FAIL":
                expected = f"{clause_id} is {judged.verdict} under {switch}, expected FAIL"
                problems.append(f"{expected}: {judged.reason}")
        elif not (
            judged.verdict == "PASS"
            or (judged.verdict == "SKIP" and judged.skip_cause in accepted)
            or any(a.covers(clause_id, judged) for a in allowances)
        ):
            cause = f" ({judged.skip_cause})" if judged.skip_cause else ""
            problems.append(
                f"{clause_id} is {judged.verdict}{cause} under {switch}, expected PASS: "
                f"{judged.reason}"
            )
    # An allowance is exact: a clause it names that passes shows the allowance is not needed.
    problems.extend(
        f"{clause_id} is PASS under {switch}: the allowance {a.verdict} ({a.why}) is not needed"
        for a in allowances
        for clause_id in sorted(a.clauses)
        if clause_id in verdicts and verdicts[clause_id].verdict == "PASS"
    )
    return problems


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("switch", "bench"), list(cells()), ids=[f"{s}@{b}" for s, b in cells()])
def test_a_switch_fails_exactly_its_clauses(
    request: pytest.FixtureRequest, tmp_path: Path, switch: Switch, bench: str
) -> None:
    judged = BENCHES[bench]
    clauses = clauses_of(switch, judged)
    verdicts = judged.judge(request, tmp_path, switch, clauses)
    assert sorted(verdicts) == sorted(clauses)
    assert misjudged(switch, verdicts) == []


# The chapters of a whole run: PERF is the load stage's (``--load off``), judged on its bench.
RUN_CHAPTERS = ("API", "NODE", "AUTH", "CAT", "SHR", "SUB", "PRIV", "CAS", "AUD", "STAT", "SEC")
# A whole run is a lab run against the plain-HTTP embedded node: ATS §11 makes transport
# security not applicable there.
LAB_SKIPS = ("not_applicable",)


def whole_run(folder: Path, switch: Switch) -> Verdicts:
    """The verdict of every clause of ``RUN_CHAPTERS`` in a ``conformance run --lab`` against
    the embedded reference node with the switch on; a missing report is one ERROR."""
    node_file, target_file = embedded_files(folder)
    reports = folder / "reports"
    running = start_node(node_file, switch.faults, variants=switch.variants)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "conformance.cli", "run", "--target", str(target_file),
             "--lab", "--load", "off", "--report-dir", str(reports), "-q",
             "--only", *RUN_CHAPTERS],
            capture_output=True, text=True, timeout=1500, cwd=folder,
        )  # fmt: skip
    finally:
        running.stop()
    report = reports / "report.json"
    if not report.is_file():
        return {"report.json": Judged("ERROR", done.stderr[-2000:] or done.stdout[-2000:])}
    return {
        clause["id"]: Judged(clause["verdict"], clause["reason"], clause.get("skip_cause"))
        for clause in json.loads(report.read_text("utf-8"))["clauses"]
        if clause["chapter"] in RUN_CHAPTERS
    }


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("switch", list(REGISTRIES["variant"].values()), ids=str)
def test_a_variant_passes_the_whole_suite(tmp_path: Path, switch: Switch) -> None:
    verdicts = whole_run(tmp_path, switch)
    assert sorted(verdicts) == sorted(_chapters(*RUN_CHAPTERS))
    assert misjudged(switch, verdicts, accepted=LAB_SKIPS) == []


def test_the_judging_rule_tolerates_only_what_it_names() -> None:
    """A variant's FAIL, ERROR or SKIP is a problem, its allowance and an accepted lab SKIP aside;
    a fault's clause that does not FAIL is one; an allowance a clause does not need is one."""
    variant, fault = REGISTRIES["variant"]["high-rate-limit"], REGISTRIES["fault"]["no-sm3"]
    passed, skipped = Judged("PASS", ""), Judged("SKIP", "", "not_assessed")
    lab = Judged("SKIP", "", "not_applicable")
    assert misjudged(variant, {"ATS-SEC-03": skipped, "ATS-SEC-01": passed}) == []
    assert misjudged(variant, {"ATS-SEC-01": lab}, accepted=LAB_SKIPS) == []
    for wrong in (Judged("FAIL", ""), Judged("ERROR", ""), skipped, lab):
        assert len(misjudged(variant, {"ATS-SEC-01": wrong})) == 1, wrong
    assert len(misjudged(variant, {"ATS-SEC-03": passed})) == 1
    assert (
        misjudged(fault, {"ATS-AUTH-06": Judged("FAIL", ""), "ATS-API-01": Judged("ERROR", "")})
        == []
    )
    assert len(misjudged(fault, {"ATS-AUTH-06": passed})) == 1
    assert len(misjudged(fault, {"ATS-AUTH-03": Judged("ERROR", "")})) == 1


def test_every_switch_has_its_cells() -> None:
    """Every switch has a cell; every clause a fault breaks, and every clause of a chapter a
    variant touches, is judged on some bench under that switch."""
    judged: dict[Switch, set[str]] = {}
    for switch, bench in cells():
        judged.setdefault(switch, set()).update(clauses_of(switch, BENCHES[bench]))
    switches = [s for registry in REGISTRIES.values() for s in registry.values()]
    assert len(switches) == len(FAULTS) + len(VARIANTS)
    assert [str(s) for s in switches if not s.concerns] == []
    unjudged = {
        str(s): sorted(s.concerns - judged.get(s, set()))
        for s in switches
        if not s.concerns <= judged.get(s, set())
    }
    assert unjudged == {}
    assert set(judged) == set(switches)


def test_every_allowance_is_needed_somewhere() -> None:
    """An allowance names clauses its switch is judged on and does not break."""
    for switch, allowances in ALLOWANCES.items():
        judged = {c for bench in BENCHES.values() for c in clauses_of(switch, bench)}
        for allowance in allowances:
            assert allowance.clauses, switch
            assert allowance.clauses <= judged - set(switch.breaks), (str(switch), allowance.why)
            assert allowance.verdict in ("ERROR", "SKIP"), allowance.why


def test_every_clause_with_a_check_is_on_a_bench() -> None:
    on_benches = [c for bench in BENCHES.values() for c in bench.clauses]
    assert len(on_benches) == len(set(on_benches)), "a clause on two benches"
    assert sorted(on_benches) == sorted(c.id for c in PROFILE.clauses)


def test_every_clause_has_a_fault() -> None:
    broken = {c for fault in FAULTS.values() for c in fault.clauses}
    assert {c.id for c in PROFILE.clauses} - broken == set()
