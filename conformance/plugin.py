"""The pytest plugin of the conformance suite: one test item per clause of the profile.

It loads in every pytest run (entry point ``pytest11``) and stays inert unless ``--target`` is
given. Then it collects no files at all: the test plan is the profile, each clause one item whose
id is the clause id. Results become ``ClauseResult``s carried on the test reports (so they reach
the controlling process under pytest-xdist too); the controlling process assembles one
``RunReport``, writes the reports at session finish and makes the exit status follow the run
verdict (0 certified, with findings or lab conformant; 1 not certified).
"""

from __future__ import annotations

import difflib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import allure
import pytest

from conformance import STANDARD, __version__
from conformance.authority.keys import AuthorityKeyError, load_verifying_key
from conformance.authority.waivers import WaiverFileError, WaiverSet, load_waivers, run_date
from conformance.checks import (
    CheckContext,
    Finding,
    Inconclusive,
    NotApplicable,
    NotAssessed,
    RegisteredCheck,
    RunState,
    registry,
)
from conformance.client import EvidenceLog, NodeClient
from conformance.load.runner import RemoteWorkers
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.profile import (
    Clause,
    Profile,
    ProfileError,
    get_clause,
    load_clauses,
    load_profile,
)
from conformance.report import write_reports
from conformance.report.allure_results import finish_allure_results
from conformance.report.model import ClauseResult, RunReport, SkipCause, Verdict, printable
from conformance.target import AppCredential, Target, TargetError, load_target

LOAD_MODES = ("off", "smoke", "full")
_RESULT_PROPERTY = "ats_result"
_SEVERITY = {"MUST": "critical", "SHOULD": "normal", "MAY": "minor"}
_NOT_IMPLEMENTED = "check not implemented"
# The end-of-run listing of created subscriptions reads at most this many back from the node.
_CREATED_LISTED = 50


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "ATS-1.0 conformance run")
    group.addoption("--target", dest="ats_target", metavar="FILE", help="target file to certify")
    # Each option has a short name (the public contract) and an --ats- one that cannot collide
    # with another plugin's option in a CI owner's own pytest set-up.
    group.addoption(
        "--ats-profile", "--profile", dest="ats_profile", metavar="NAME",
        help="profile; default: node level",
    )  # fmt: skip
    group.addoption(
        "--ats-report-dir", "--report-dir", dest="ats_report_dir", default="reports", metavar="DIR",
        help="where report.json, junit.xml and summary.md are written (default: reports)",
    )  # fmt: skip
    group.addoption(
        "--ats-only", "--only", dest="ats_only", action="append", default=[],
        metavar="CHAPTER|CLAUSE",
        help="run only these chapters or clauses (repeatable); never a certification",
    )  # fmt: skip
    group.addoption(
        "--ats-load", "--load", dest="ats_load", choices=LOAD_MODES, default="full",
        help="load stage: off, smoke (never a certification) or full (default)",
    )  # fmt: skip
    group.addoption(
        "--ats-load-workers", dest="ats_load_workers", type=int, metavar="N",
        help="locust worker processes for the load stage (default: the load profile's)",
    )  # fmt: skip
    group.addoption(
        "--ats-load-remote", dest="ats_load_remote", metavar="M@HOST:PORT",
        help="also wait for M load workers on other hosts, the master bound to HOST:PORT",
    )  # fmt: skip
    group.addoption(
        "--ats-lab", dest="ats_lab", action="store_true",
        help="lab run (plain HTTP, ATS §11): LAB_CONFORMANT at best",
    )  # fmt: skip
    group.addoption(
        "--ats-waivers", dest="ats_waivers", metavar="FILE",
        help="waivers file signed by the authority (with --ats-authority-pubkey)",
    )  # fmt: skip
    group.addoption(
        "--ats-authority-pubkey", dest="ats_authority_pubkey", metavar="FILE",
        help="the authority's public key: only waivers it signed apply",
    )  # fmt: skip
    group.addoption(
        "--ats-progress", dest="ats_progress", action="store_true",
        help="print one line per clause (used by `conformance run`)",
    )  # fmt: skip
    group.addoption(
        "--ats-quiet", dest="ats_quiet", action="store_true",
        help="with --ats-progress: print only the summary",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(id): the ATS clause a test verifies")
    for level in ("must", "should", "may"):
        config.addinivalue_line("markers", f"{level}: a clause of level {level.upper()}")
    if not config.getoption("ats_target", None):
        return
    try:
        plan = build_plan(
            target_path=config.getoption("ats_target"),
            profile=config.getoption("ats_profile"),
            only=config.getoption("ats_only"),
            load_mode=config.getoption("ats_load"),
            lab=config.getoption("ats_lab"),
            load_workers=config.getoption("ats_load_workers"),
            load_remote=config.getoption("ats_load_remote"),
        )
    except (TargetError, ProfileError, PlanError) as exc:
        raise pytest.UsageError(str(exc)) from None
    report_dir = Path(config.getoption("ats_report_dir"))
    waivers = _waivers(config)
    config.pluginmanager.register(
        AtsSession(config, plan, report_dir, waivers=waivers), "ats_session"
    )


def _waivers(config: pytest.Config) -> WaiverSet | None:
    """The run's waivers file, read against the authority's public key; both or neither."""
    path, pubkey = config.getoption("ats_waivers"), config.getoption("ats_authority_pubkey")
    if not path and not pubkey:
        return None
    if not (path and pubkey):
        raise pytest.UsageError("--ats-waivers and --ats-authority-pubkey go together")
    try:
        return load_waivers(Path(path), load_verifying_key(Path(pubkey)))
    except (AuthorityKeyError, WaiverFileError) as exc:
        raise pytest.UsageError(str(exc)) from None


def _ats_session(config: pytest.Config) -> AtsSession:
    session = config.pluginmanager.get_plugin("ats_session")
    if not isinstance(session, AtsSession):
        pytest.skip("no conformance run: pass --target FILE")
    return session


@pytest.fixture(scope="session")
def ats_target(request: pytest.FixtureRequest) -> Target:
    """The target of the run (``repr`` shows no secret), for a CI owner's own tests."""
    return _ats_session(request.config).plan.target


@pytest.fixture(scope="session")
def ats_apps(ats_target: Target) -> Mapping[str, AppCredential]:
    """The apps of the target file by name (``consumer``, ``admin`` …)."""
    return ats_target.apps


@pytest.fixture
def ats_client(request: pytest.FixtureRequest) -> NodeClient:
    """The run's NodeClient (signing, timeouts, size cap, pacing shared with the checks), with
    an evidence log of the test's own: ``ats_client.get("/api/v1/node", app="consumer")``."""
    session = _ats_session(request.config)
    return session.client.for_clause(EvidenceLog(session.plan.target.secrets()))


class PlanError(Exception):
    """The run's options do not make a plan (an unknown --only name)."""


@dataclass(frozen=True)
class PlannedClause:
    """A clause of the run and how it will be assessed."""

    clause: Clause
    check: RegisteredCheck | None
    skip: str | None = None
    skip_cause: SkipCause | None = None

    @property
    def runs(self) -> bool:
        """The clause becomes a test item (deselected clauses do not)."""
        return self.skip_cause is not SkipCause.NOT_SELECTED


@dataclass(frozen=True)
class Plan:
    """The frozen configuration of one run: target, profile, clauses, options."""

    target: Target
    profile: Profile
    clauses: tuple[PlannedClause, ...]
    selection: tuple[str, ...]
    load_mode: str
    lab: bool
    load_workers: int | None = None
    load_remote: RemoteWorkers | None = None

    @property
    def partial(self) -> bool:
        """A run that leaves clauses out by choice, or measures load in smoke mode only."""
        return bool(self.selection) or self.load_mode != "full"

    def scope(self) -> tuple[str, ...]:
        """How the run was narrowed, as the report states it."""
        notes = [f"--only {' '.join(self.selection)}"] if self.selection else []
        if self.load_mode != "full":
            notes.append(f"--load {self.load_mode}")
        return tuple(notes)


def _selection_matches(clause: Clause, only: Sequence[str]) -> bool:
    return not only or clause.id in only or clause.chapter in only


def build_plan(
    *,
    target_path: str,
    profile: str | None,
    only: Sequence[str],
    load_mode: str,
    lab: bool,
    load_workers: int | None = None,
    load_remote: str | None = None,
) -> Plan:
    """The plan of a run; raises ``TargetError``, ``ProfileError`` or ``PlanError`` (one line)."""
    target = load_target(target_path)
    if lab and not target.lab:
        target = _with_lab(target)
    chosen = load_profile(profile or target.node.level)
    every = load_clauses()
    known = [c.id for c in every] + sorted({c.chapter for c in every})
    # "AUTH-05" is accepted for "ATS-AUTH-05".
    names = [o.strip().upper() for o in only if o.strip()]
    wanted = tuple(
        dict.fromkeys(n if n in known or f"ATS-{n}" not in known else f"ATS-{n}" for n in names)
    )
    for name in wanted:
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            did = f"; did you mean {hint[0]}?" if hint else ""
            raise PlanError(f"--only {name}: no such chapter or clause in ATS-1.0{did}")
    checks = registry()
    in_profile = {c.id: c for c in chosen.clauses}
    for clause_id in chosen.not_applicable:
        in_profile.setdefault(clause_id, get_clause(clause_id))
    planned: list[PlannedClause] = []
    for clause in (c for c in every if c.id in in_profile):
        clause = in_profile[clause.id]
        registered = checks.get(clause.id)
        if not _selection_matches(clause, wanted):
            reason = f"not selected (--only {' '.join(wanted)})"
            planned.append(PlannedClause(clause, registered, reason, SkipCause.NOT_SELECTED))
        elif clause.chapter == "PERF" and load_mode == "off":
            reason = "load stage off (--load off)"
            planned.append(PlannedClause(clause, registered, reason, SkipCause.NOT_SELECTED))
        elif clause.id in chosen.not_applicable:
            reason = chosen.not_applicable[clause.id]
            planned.append(PlannedClause(clause, registered, reason, SkipCause.NOT_APPLICABLE))
        elif registered is None:
            planned.append(PlannedClause(clause, None, _NOT_IMPLEMENTED, SkipCause.NOT_IMPLEMENTED))
        else:
            planned.append(PlannedClause(clause, registered))
    if load_workers is not None and load_workers < 1:
        raise PlanError(
            f"--ats-load-workers: must be a whole number of at least 1, got {load_workers}"
        )
    try:
        remote = RemoteWorkers.parse(load_remote) if load_remote else None
    except ValueError as exc:
        raise PlanError(f"--ats-load-remote: {exc}") from None
    return Plan(target, chosen, tuple(planned), wanted, load_mode, target.lab, load_workers, remote)


def _with_lab(target: Target) -> Target:
    return replace(target, lab=True)


class ClauseOutcome(AssertionError):
    """A clause the node violates (FAIL); an AssertionError so that allure shows it failed."""


class ClauseError(Exception):
    """A clause the check could not decide (ERROR); allure shows it broken."""


class ClauseItem(pytest.Item):
    """One clause of the profile as a pytest test; its id is the clause id."""

    def __init__(self, *, planned: PlannedClause, ats: AtsSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.planned = planned
        self.ats = ats
        self.add_marker(pytest.mark.clause(planned.clause.id))
        self.add_marker(getattr(pytest.mark, planned.clause.level.lower()))

    def runtest(self) -> None:
        clause = self.planned.clause
        _allure_labels(clause, self.ats.plan.target)
        result = self.ats.assess(self.planned)
        self.user_properties.append((_RESULT_PROPERTY, json.dumps(result.to_dict())))
        if result.evidence:
            allure.attach(
                json.dumps(list(result.evidence), ensure_ascii=False, indent=1),
                name="evidence",
                attachment_type=allure.attachment_type.JSON,
            )
        # The clause id leads the message: allure and JUnit show it apart from the test name.
        # A FAIL the authority waived is an expected failure: it reads WAIVED, never failed.
        waiver = self.ats.waiver_for(result)
        if waiver is not None:
            pytest.xfail(
                f"{clause.id}: WAIVED by {waiver['approver']} ({waiver['ticket']}) "
                f"until {waiver['expires']}: {result.reason}"
            )
        if result.verdict is Verdict.FAIL:
            raise ClauseOutcome(f"{clause.id}: {result.reason}")
        if result.verdict is Verdict.ERROR:
            raise ClauseError(f"{clause.id}: {result.reason}")
        if result.verdict is Verdict.SKIP:
            pytest.skip(result.reason)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ClauseOutcome | ClauseError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        clause = self.planned.clause
        return self.path, None, f"{clause.id} {clause.level} {clause.title.en}"


def _allure_labels(clause: Clause, target: Target) -> None:
    allure.dynamic.title(f"{clause.id} {clause.title.en}")
    allure.dynamic.description(f"{clause.summary.en}\n\n{clause.summary.zh}")
    allure.dynamic.epic(clause.chapter)
    allure.dynamic.story(f"{clause.id} {clause.title.en}")
    allure.dynamic.severity(_SEVERITY.get(clause.level, "normal"))
    allure.dynamic.label("clause", clause.id)
    allure.dynamic.tag(clause.level)
    # A public parameter keeps history ids apart per node, and only the node's identity: the
    # base URL (a free port in embedded runs) would start a new history every run. Never a secret
    # here (allure records parameters in clear text).
    allure.dynamic.parameter("node", f"{target.node.node_id} ({target.node.level})")


@dataclass
class AtsSession:
    """The state of one conformance run inside pytest; hooks of the run live here."""

    config: pytest.Config
    plan: Plan
    report_dir: Path
    run: RunState = field(default_factory=RunState)
    results: dict[str, ClauseResult] = field(default_factory=dict)
    deselected: set[str] = field(default_factory=set)
    own_tests_failed: int = 0
    started_at: str = field(default_factory=lambda: _now())
    _started: float = field(default_factory=time.monotonic)
    _client: NodeClient | None = None
    _neighbours: NeighbourSet | None = None
    _own_neighbours: bool = False
    _out: TextIO = field(default_factory=lambda: sys.__stdout__ or sys.stdout)
    report: RunReport | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    waivers: WaiverSet | None = None

    @property
    def controller(self) -> bool:
        """This process assembles and writes the reports (not a pytest-xdist worker)."""
        return not hasattr(self.config, "workerinput")

    def waiver_for(self, result: ClauseResult) -> dict[str, Any] | None:
        """The authority's waiver of this FAIL, if one applies to this run."""
        if self.waivers is None:
            return None
        node_id = self.plan.target.node.node_id
        return self.waivers.waiver_for(result, node_id, run_date(self.started_at))

    @property
    def client(self) -> NodeClient:
        """The run's client (connections and pacing shared by every clause)."""
        if self._client is None:
            self._client = NodeClient(self.plan.target)
        return self._client

    @property
    def neighbours(self) -> NeighbourSet | None:
        """The emulated neighbours, started on first use unless the runner provided them."""
        target_neighbours = self.plan.target.neighbours
        if self._neighbours is None and target_neighbours and target_neighbours.emulated().specs():
            provided = self.config.pluginmanager.get_plugin("ats_neighbours")
            if isinstance(provided, NeighbourSet):
                self._neighbours = provided
            else:
                try:
                    self._neighbours = start_neighbours(target_neighbours)
                except OSError as exc:
                    raise Inconclusive(
                        f"the emulated neighbours cannot listen where the target file says: {exc}"
                    ) from None
                self._own_neighbours = True
        return self._neighbours

    # -- collection --------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        # The profile is the test plan: one item per clause, first; tests of the CI owner's own
        # that pytest collected run after them, with the ats_* fixtures.
        clause_items = [
            ClauseItem.from_parent(
                session,
                name=p.clause.id,
                nodeid=f"{p.clause.chapter}::{p.clause.id}",
                planned=p,
                ats=self,
            )
            for p in self.plan.clauses
        ]
        left_out = [i for i in clause_items if not i.planned.runs]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
        # A clause whose check compares the start of the run with its end (ATS-AUD-03 re-reads
        # the audit events read early) says `run_last` in its parameters; the report keeps the
        # standard's order whatever the order of execution.
        running = sorted(
            (i for i in clause_items if i.planned.runs),
            key=lambda i: bool(i.planned.clause.params.get("run_last", False)),
        )
        items[:] = [*running, *items]

    # -- running -----------------------------------------------------------------------

    def assess(self, planned: PlannedClause) -> ClauseResult:
        """Runs the clause's check (or records why not) and answers its result."""
        clause = planned.clause
        secrets = self.plan.target.secrets()
        evidence = EvidenceLog(secrets)
        started = time.monotonic()
        if planned.skip is not None:
            return _result(clause, Verdict.SKIP, planned.skip, 0.0, evidence, planned.skip_cause)
        assert planned.check is not None  # a planned clause without skip has a check
        verdict, reason, cause = Verdict.PASS, planned.check.doc, None
        try:
            ctx = CheckContext(
                clause=clause,
                target=self.plan.target,
                client=self.client.for_clause(evidence),
                run=self.run,
                evidence=evidence,
                profile=self.plan.profile,
                neighbours=self.neighbours,
                load_mode=self.plan.load_mode,
                load_workers=self.plan.load_workers,
                load_remote=self.plan.load_remote,
            )
            planned.check.function(ctx)
        except Finding as exc:
            verdict, reason = Verdict.FAIL, exc.reason
        except Inconclusive as exc:
            verdict, reason = Verdict.ERROR, exc.reason
        except NotAssessed as exc:
            verdict, reason, cause = Verdict.SKIP, exc.reason, SkipCause.NOT_ASSESSED
        except NotApplicable as exc:
            verdict, reason, cause = Verdict.SKIP, exc.reason, SkipCause.NOT_APPLICABLE
        except Exception as exc:
            # A check that crashes is the tester's fault, and the reason says so.
            verdict = Verdict.ERROR
            reason = f"the check failed on the tester side: {type(exc).__name__}: {exc}"
        return _result(
            clause, verdict, evidence.scrub(reason), time.monotonic() - started, evidence, cause
        )

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.deselected.update(i.name for i in items if isinstance(i, ClauseItem))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if _RESULT_PROPERTY not in props and report.failed and not self._harness_failure(report):
            self.own_tests_failed += 1
        if _RESULT_PROPERTY not in props or report.when != "call":
            return
        result = ClauseResult.from_dict(json.loads(str(props[_RESULT_PROPERTY])))
        self.results[result.id] = result
        if self.config.getoption("ats_progress") and not self.config.getoption("ats_quiet"):
            self._progress(result)

    def pytest_report_teststatus(
        self, report: pytest.TestReport, config: pytest.Config
    ) -> tuple[str, str, str] | None:
        props = dict(report.user_properties)
        if _RESULT_PROPERTY not in props or report.when != "call":
            return None
        data = json.loads(str(props[_RESULT_PROPERTY]))
        verdict = data["verdict"]
        category, letter = {
            "PASS": ("passed", "."),
            "FAIL": ("failed", "F"),
            "ERROR": ("error", "E"),
            "SKIP": ("skipped", "s"),
        }[verdict]
        return category, letter, f"{verdict}  {data['level']}  {data['title']['en']}"

    def _harness_failure(self, report: pytest.TestReport) -> bool:
        """A clause whose item broke outside its check (a plugin, the harness) is an ERROR;
        answers whether the report was a clause's."""
        clause_id = report.nodeid.rsplit("::", 1)[-1]
        planned = next((p for p in self.plan.clauses if p.clause.id == clause_id), None)
        if planned is None or report.nodeid != f"{planned.clause.chapter}::{clause_id}":
            return False
        if clause_id in self.results:
            return True
        lines = [line for line in report.longreprtext.strip().splitlines() if line.strip()]
        reason = f"tester-side failure in {report.when}: {lines[-1] if lines else 'unknown'}"
        result = _result(planned.clause, Verdict.ERROR, reason, report.duration, None, None)
        self.results[clause_id] = result
        if self.config.getoption("ats_progress") and not self.config.getoption("ats_quiet"):
            self._progress(result)
        return True

    # -- finishing ---------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._own_neighbours and self._neighbours is not None:
            self._neighbours.stop()
        # --collect-only assesses nothing: a report of it would overwrite a real one.
        report = self.controller and not self.config.option.collectonly
        created = {"subscriptions": self._created_subscriptions()} if report else {}
        if self._client is not None:
            self._client.close()
        if not report:
            return
        self.report = self.assemble(created=created)
        self.paths = write_reports(self.report, self.report_dir)
        alluredir = self.config.getoption("allure_report_dir", None)
        if alluredir:
            finish_allure_results(Path(alluredir), self.report)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = max(exit_status(self.report), int(self.own_tests_failed > 0))

    def _created_subscriptions(self) -> list[dict[str, Any]]:
        """The subscriptions the run created, as the node's admin reads them at the end: what
        the suite leaves behind (ATS-1.0 has no deletion; revocation is its clean-up)."""
        ids = list(dict.fromkeys(self.run.subscriptions))[:_CREATED_LISTED]
        if not ids or "admin" not in self.plan.target.apps or self._client is None:
            return [{"subscription_id": sid} for sid in ids]
        client = self.client.for_clause(EvidenceLog(self.plan.target.secrets()))
        listed: list[dict[str, Any]] = []
        for sid in ids:
            entry: dict[str, Any] = {"subscription_id": sid}
            try:
                ex = client.get(f"/api/v1/subscriptions/{sid}", app="admin")
                body = ex.json() if ex.status == 200 else None
            except Inconclusive as exc:
                entry["unknown"] = exc.reason
            else:
                if isinstance(body, dict):
                    entry.update({k: body.get(k) for k in ("resource_code", "app_id", "status")})
                else:
                    entry["unknown"] = f"the node answered {ex.summary()}"
            listed.append(entry)
        return listed

    def assemble(self, created: Mapping[str, Any] | None = None) -> RunReport:
        """The run report: every clause of the plan with its result or its reason to skip."""
        clauses = []
        for planned in self.plan.clauses:
            result = self.results.get(planned.clause.id)
            if result is None and (not planned.runs or planned.clause.id in self.deselected):
                reason = planned.skip or "not selected (deselected by pytest options)"
                cause = planned.skip_cause or SkipCause.NOT_SELECTED
                result = _result(planned.clause, Verdict.SKIP, reason, 0.0, None, cause)
            elif result is None:
                # Planned to run but never reported: the run stopped early (-x, Ctrl-C, a crash).
                reason = "not run: the run stopped before this clause"
                result = _result(planned.clause, Verdict.ERROR, reason, 0.0, None, None)
            clauses.append(result)
        partial = self.plan.partial or any(r.skip_cause is SkipCause.NOT_SELECTED for r in clauses)
        report = RunReport(
            profile=self.plan.profile.name,
            suite_version=__version__,
            started_at=self.started_at,
            finished_at=_now(),
            target=self.plan.target.public(),
            clauses=tuple(clauses),
            lab=self.plan.lab,
            partial=partial,
            selection=self.plan.scope(),
            load_mode=self.plan.load_mode,
            load=dict(self.run.load),
            standard=STANDARD,
            profile_digest=self.plan.profile.digest(),
            created=dict(created or {}),
        )
        return report if self.waivers is None else self.waivers.apply(report)

    def _progress(self, result: ClauseResult) -> None:
        """One line per clause: position in the run, elapsed time, then the clause's line."""
        total = sum(1 for p in self.plan.clauses if p.runs)
        failing = sum(r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in self.results.values())
        elapsed = time.monotonic() - self._started
        done = f"{len(self.results):>{len(str(total))}}/{total}"
        tally = f"[{done} {elapsed:4.0f}s {failing:>2} failed]"
        self._print(f"{tally} {progress_line(result)}")

    def _print(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()


def exit_status(report: RunReport) -> int:
    """0 for CERTIFIED, CERTIFIED_WITH_FINDINGS or LAB_CONFORMANT; 1 for NOT_CERTIFIED."""
    return 1 if report.verdict.value == "NOT_CERTIFIED" else 0


def progress_line(result: ClauseResult) -> str:
    """One line of terminal progress: clause id, verdict, duration, level, title or reason."""
    detail = result.reason if result.verdict is not Verdict.PASS else result.title.get("en", "")
    return (
        f"{result.id:<12} {result.verdict.value:<5} {result.duration_s:6.2f}s  "
        f"{result.level:<6} {_one_line(detail)}"
    )


def _one_line(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _result(
    clause: Clause,
    verdict: Verdict,
    reason: str,
    duration: float,
    evidence: EvidenceLog | None,
    cause: SkipCause | None,
) -> ClauseResult:
    return ClauseResult(
        id=clause.id,
        level=clause.level,
        chapter=clause.chapter,
        title={"zh": clause.title.zh, "en": clause.title.en},
        verdict=verdict,
        reason=printable(reason),
        duration_s=duration,
        evidence=tuple(evidence.entries) if evidence is not None else (),
        skip_cause=cause if verdict is Verdict.SKIP else None,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
