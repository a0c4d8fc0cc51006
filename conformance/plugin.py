"""The pytest plugin of the conformance suite: one test item per clause of the profile.

It loads in every pytest run (entry point ``pytest11``) and stays inert unless ``--target`` is
given or ``conformance run`` hands it a planned run (``ProvidedRun``); its options are derived
from ``conformance.options`` and the plan is built once, by ``conformance.run_plan``. Then it
collects no files at all: the test plan is the profile, each clause one item whose id is the
clause id. Results become ``ClauseResult``s carried on the test reports (so they reach the
controlling process under pytest-xdist too); the controlling process assembles one
``RunReport``, writes the reports at session finish and makes the exit status follow the run
verdict (``outcomes.exit_status``: 0 certified, with findings or lab conformant; 1 not certified).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import allure
import pytest

from conformance import STANDARD, __version__, ats
from conformance.authority.waivers import run_date
from conformance.checks import CheckContext, RunState
from conformance.client import EvidenceLog, NodeClient
from conformance.masking import ANY_RUN
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.options import RunOptions, add_pytest_options
from conformance.outcomes import Inconclusive, SkipCause, Verdict, decide, exit_status
from conformance.preflight import Preflight, run_preflight
from conformance.profile import Clause, ProfileError
from conformance.report import write_reports
from conformance.report.allure_results import finish_allure_results
from conformance.report.model import ClauseResult, RunReport, printable
from conformance.run_plan import Plan, PlanError, PlannedClause, build_plan
from conformance.target import AppCredential, Target, TargetError

_RESULT_PROPERTY = "ats_result"
_SEVERITY = {"MUST": "critical", "SHOULD": "normal", "MAY": "minor"}
# The end-of-run listing of created subscriptions reads at most this many back from the node.
_CREATED_LISTED = 50


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser.getgroup("conformance", "ATS-1.0 conformance run"))


@dataclass(frozen=True, eq=False)  # pluggy keeps plugins in sets: hashed by identity
class ProvidedRun:
    """A run planned before pytest started (``conformance run``), handed to ``pytest.main`` as a
    plugin object: the plugin takes its plan as it is, with the emulated neighbours that serve
    the whole run."""

    plan: Plan
    neighbours: NeighbourSet | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(id): the ATS clause a test verifies")
    for level in ("must", "should", "may"):
        config.addinivalue_line("markers", f"{level}: a clause of level {level.upper()}")
    provided = next(
        (p for p in config.pluginmanager.get_plugins() if isinstance(p, ProvidedRun)), None
    )
    if provided is None:
        if not config.getoption("ats_target", None):
            return
        # A configuration error exits 2 as under `conformance run`, in one line (a UsageError
        # would exit 4 with pytest's usage banner).
        if _xdist_requested(config):
            pytest.exit(
                "conformance: a conformance run cannot be spread over pytest-xdist workers (the "
                "emulated neighbours and the reports belong to one process): drop -n",
                returncode=2,
            )
        try:
            provided = ProvidedRun(build_plan(RunOptions.from_pytest(config.getoption)))
        except (TargetError, ProfileError, PlanError) as exc:
            pytest.exit(f"conformance: {exc}", returncode=2)
    session = AtsSession(config, provided.plan, provided_neighbours=provided.neighbours)
    config.pluginmanager.register(session, "ats_session")


def _xdist_requested(config: pytest.Config) -> bool:
    """pytest-xdist is asked for (``-n N`` other than 0, or ``--dist``) in the controller."""
    if hasattr(config, "workerinput"):
        return False
    workers = getattr(config.option, "numprocesses", None)
    dist = getattr(config.option, "dist", "no")
    return bool(workers) or (dist not in (None, "no"))


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
                json.dumps(ANY_RUN.value(list(result.evidence)), ensure_ascii=False, indent=1),
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
    # Neighbours started by whoever planned the run (`conformance run`): they serve it all.
    provided_neighbours: NeighbourSet | None = None
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
    preflight: Preflight | None = None
    # Why the run stopped before judging every clause ({"stage", "at", "reason"}), if it did.
    stopped: dict[str, str] = field(default_factory=dict)

    @property
    def controller(self) -> bool:
        """This process assembles and writes the reports (not a pytest-xdist worker)."""
        return not hasattr(self.config, "workerinput")

    def waiver_for(self, result: ClauseResult) -> dict[str, Any] | None:
        """The authority's waiver of this FAIL, if one applies to this run."""
        if self.plan.waivers is None:
            return None
        node_id = self.plan.target.node.node_id
        return self.plan.waivers.waiver_for(result, node_id, run_date(self.started_at))

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
            if self.provided_neighbours is not None:
                self._neighbours = self.provided_neighbours
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
        # The clause items count as collected (the header says "64 items", not "0 items").
        config.hook.pytest_collectreport(
            report=pytest.CollectReport(session.nodeid, "passed", None, list(clause_items))
        )
        left_out = [i for i in clause_items if not i.planned.runs]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
        if self.controller and not config.option.collectonly:
            stop = self.run_preflight()
            if stop is not None:
                # Nothing is judged on a run its preflight stopped: INCOMPLETE, exit status 2.
                config.hook.pytest_deselected(items=[i for i in clause_items if i.planned.runs])
                items[:] = []
                return
        # A clause whose check compares the start of the run with its end (ATS-AUD-03 re-reads
        # the audit events read early) says `run_last` in its parameters; the report keeps the
        # standard's order whatever the order of execution.
        running = sorted(
            (i for i in clause_items if i.planned.runs),
            key=lambda i: bool(i.planned.clause.params.get("run_last", False)),
        )
        items[:] = [*running, *items]

    # -- preflight ---------------------------------------------------------------------

    def run_preflight(self) -> str | None:
        """Runs the preflight, prints its lines and hands the refused apps to the client;
        answers the stopping item's line when the run must stop."""
        selection = self.plan.selection
        self.preflight = run_preflight(
            self.plan.target,
            neighbours_serving=self.provided_neighbours is not None,
            judging_auth=bool(selection)
            and all(s == "AUTH" or s.startswith("ATS-AUTH-") for s in selection),
        )
        if not self.plan.quiet:
            for item in self.preflight.items:
                self._print(item.line())
        self.client.refuse(self.preflight.refused)
        stop = self.preflight.stop
        if stop is None:
            return None
        self.stopped = {"stage": "preflight", "at": stop.name, "reason": stop.detail}
        return stop.line()

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
        function = planned.check.function

        def assess() -> None:
            # Building the context is inside: neighbours that cannot listen are an ERROR too.
            function(
                CheckContext(
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
                    thorough=self.plan.thorough,
                )
            )

        decision = decide(assess, passed=planned.check.doc)
        return _result(
            clause,
            decision.verdict,
            evidence.scrub(decision.reason),
            time.monotonic() - started,
            evidence,
            decision.skip_cause,
        )

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        if self.stopped:
            return  # clauses a stopped run never reached are not run, not deselected
        self.deselected.update(i.name for i in items if isinstance(i, ClauseItem))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if _RESULT_PROPERTY not in props and report.failed and not self._harness_failure(report):
            self.own_tests_failed += 1
        if _RESULT_PROPERTY not in props or report.when != "call":
            return
        result = ClauseResult.from_dict(json.loads(str(props[_RESULT_PROPERTY])))
        self.results[result.id] = result
        if self.plan.progress:
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
        if self.plan.progress:
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
        if exitstatus == pytest.ExitCode.INTERRUPTED and not self.stopped:
            self.stopped = {
                "stage": "interrupted",
                "at": self._first_not_run(),
                "reason": "the run was interrupted (Ctrl-C, SIGTERM or a stop request)",
            }
        self.report = self.assemble(created=created)
        self.paths = write_reports(self.report, self.plan.report_dir)
        alluredir = self.config.getoption("allure_report_dir", None)
        if alluredir:
            finish_allure_results(Path(alluredir), self.report)
        if self.stopped:
            session.exitstatus = exit_status(self.report.verdict)
        elif session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = max(
                exit_status(self.report.verdict), int(self.own_tests_failed > 0)
            )

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Iterator[None]:
        """Plain pytest ends like `conformance run`: the verdict, then the report paths, after
        pytest's own summary (this wrapper is outermost)."""
        yield
        if self.report is None:
            return
        terminalreporter.write_sep("=", "ATS conformance run")
        terminalreporter.write_line(self.report.headline())
        for need in self.report.to_certify():
            terminalreporter.write_line(f"a certification would need: {need}")
        for path in self.paths.values():
            terminalreporter.write_line(f"  {path}")

    def _first_not_run(self) -> str:
        """The first clause the run planned and never judged (where it stopped)."""
        return next(
            (
                p.clause.id
                for p in self.plan.clauses
                if p.runs and p.clause.id not in self.results and p.clause.id not in self.deselected
            ),
            "the end",
        )

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
                ex = client.get(ats.subscription_path(sid), app="admin")
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
            elif result is None and self.stopped:
                # A run that stopped (preflight, interruption) is INCOMPLETE: what it never
                # reached is not run, not the node's ERROR.
                reason = f"not run: the run stopped ({self.stopped['stage']}) before this clause"
                result = _result(planned.clause, Verdict.SKIP, reason, 0.0, None, SkipCause.NOT_RUN)
            elif result is None:
                # Planned to run but never reported: the run stopped early (-x, a crash).
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
            preflight=tuple(i.to_dict() for i in self.preflight.items) if self.preflight else (),
            stopped=dict(self.stopped),
        )
        return report if self.plan.waivers is None else self.plan.waivers.apply(report)

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
