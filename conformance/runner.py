"""``conformance run``: certify a node with the pytest plugin and write its reports.

The runner builds the run's plan once from its options (``conformance.options``), hands it to
the pytest plugin and maps the run verdict to the exit status: 0 CERTIFIED,
CERTIFIED_WITH_FINDINGS or LAB_CONFORMANT; 1 NOT_CERTIFIED; 2 the run could not be made (bad
arguments, unreadable target file, unknown profile, missing ``${ENV}`` secret, tester-side
failure), always with one line on stderr.

Without ``--target`` it certifies the embedded default: the reference provincial node 330000,
started as a separate process from the plan ``embedded`` (``conformance.topology``), between the
suite's emulated parent (100000) and child (330100) — a lab run over plain HTTP on loopback.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conformance.allure_report import AllureError, find_allure, generate_allure
from conformance.figures import collect
from conformance.load.plan import load_load_profile
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.options import RunOptions
from conformance.outcomes import RunVerdict, Verdict, exit_status
from conformance.plugin import ProvidedRun
from conformance.profile import ProfileError
from conformance.report.assessment import write_assessment
from conformance.report.model import RunReport
from conformance.run_plan import Plan, PlanError, build_plan
from conformance.target import TargetError, load_target
from conformance.topology import (
    LaunchError,
    RunningNode,
    load_plan,
    node_files,
    plan_ports,
    start_node,
    target_document,
    write_file,
)

_SHOWN_FINDINGS = 15
# About how long the chapters other than PERF take against a responsive node.
_OTHER_CHAPTERS_S = 120.0


class RunError(Exception):
    """The run could not be made; the message is the one line the user sees."""


def run(options: RunOptions) -> int:
    """Runs ``conformance run`` with these options and answers its exit status."""
    # Paths are fixed before pytest starts; `conformance run` always shows progress unless quiet.
    options = replace(
        options,
        target=str(Path(options.target).resolve()) if options.target else None,
        report_dir=str(Path(options.report_dir).resolve()),
        progress=True,
    )
    report_dir = Path(options.report_dir)
    try:
        _writable_folder(report_dir)
        with ExitStack() as stack:
            stack.enter_context(_terminate_as_interrupt())
            neighbours = None
            target = Path(options.target) if options.target else None
            if target is None:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ats-")))
                target, neighbours = stack.enter_context(embedded_target(workdir, options.quiet))
            status = _certify(options, target, neighbours)
            if options.target is None:
                _embedded_extras(report_dir, target)
            return status
    except (RunError, TargetError, ProfileError, PlanError) as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2


def _embedded_extras(report_dir: Path, target: Path) -> None:
    """The embedded run is self-contained: it also writes the monthly assessment of its node
    (read from its statistics before the node stops) and, where the allure command line is
    installed, the allure HTML report. Neither changes the verdict."""
    written = list(write_assessment(collect([target]), report_dir).values())
    allure = find_allure()
    if allure is not None:
        try:
            written.append(generate_allure(report_dir, allure))
        except AllureError as exc:
            print(f"conformance: allure HTML not written: {exc}", file=sys.stderr)
    for path in written:
        print(f"  {path}")


def _writable_folder(folder: Path) -> None:
    """``--report-dir`` exists (created if need be) and takes files; else one line, exit 2."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileExistsError:
        raise RunError(f"--report-dir {folder}: is a file, not a folder") from None
    except OSError as exc:
        raise RunError(f"--report-dir {folder}: cannot write there: {exc.strerror}") from None


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C: reports written, every started process stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _certify(options: RunOptions, target: Path, neighbours: NeighbourSet | None) -> int:
    # The plan is built once, before pytest starts (a bad input is one line, not a pytest
    # banner), and handed to the plugin as it is.
    plan = build_plan(options, target)
    report_json = plan.report_dir / "report.json"
    report_json.unlink(missing_ok=True)
    if not options.quiet:
        node = plan.target.node
        print(
            f"certifying {node.node_id} ({node.level}) at {node.base_url} "
            f"against profile {plan.profile.name}"
        )
        if plan.load_mode == "full":
            print(expected_end(plan))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ats-pytest-") as folder:
        home = Path(folder)
        (home / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        argv = pytest_arguments(plan.report_dir, home, options.pytest_arg)
        status = int(pytest.main(argv, plugins=[ProvidedRun(plan, neighbours)]))
    if not report_json.is_file():
        raise RunError(f"tester-side failure: pytest ended with status {status} and no report")
    report = RunReport.from_dict(json.loads(report_json.read_text(encoding="utf-8")))
    print(render_summary(report, plan.report_dir, time.monotonic() - started))
    if report.verdict is RunVerdict.INCOMPLETE:
        # Stopped by its preflight or interrupted: the summary says where; exit status 2.
        return exit_status(report.verdict)
    if status == pytest.ExitCode.INTERRUPTED:
        raise RunError(f"the run was interrupted; partial reports in {plan.report_dir}")
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise RunError(f"tester-side failure: pytest ended with status {int(status)}")
    return exit_status(report.verdict)


def full_load_estimate_s(plan: Plan) -> float:
    """About how long the full load stage of ``plan`` takes: each measured scenario's warm-up
    and window, and every step of the stepped load (its worst case: the node holds them all)."""
    total = 0.0
    for planned in plan.clauses:
        params = planned.clause.params
        if not planned.runs or planned.clause.chapter != "PERF":
            continue
        if "window_s" in params:
            total += float(params.get("warmup_s", 0)) + float(params["window_s"])
        if "load_profile" in params:
            steps = load_load_profile(str(params["load_profile"])).stepped.get("full")
            if steps is not None:
                total += len(steps.factors) * (steps.warmup_s + steps.window_s)
    return total


def expected_end(plan: Plan) -> str:
    """The line a full run prints first: how long its load stage takes and when the run ends."""
    seconds = full_load_estimate_s(plan) + _OTHER_CHAPTERS_S
    ends = datetime.now().astimezone() + timedelta(seconds=seconds)
    return (
        f"full run (--load full): about {round(seconds / 60)} minutes, expected to end "
        f"around {ends:%H:%M} (--load smoke for a quick rehearsal, never a certification)"
    )


def pytest_arguments(report_dir: Path, home: Path, extra: Sequence[str] = ()) -> list[str]:
    """The pytest command line of a planned run; ``home`` is an empty folder serving as rootdir.

    The run's own options do not appear: the plan reaches the plugin as a ``ProvidedRun``."""
    argv = [
        "-p", "conformance.plugin",
        "-p", "no:locust",
        "-p", "no:cacheprovider",
        "-p", "no:terminal",
        # An empty ini file in an empty folder: the user's conftest and ini files stay out.
        "-c", str(home / "pytest.ini"),
        "--rootdir", str(home),
        "--confcutdir", str(home),
        "--alluredir", str(report_dir / "allure-results"),
        "--clean-alluredir",
    ]  # fmt: skip
    return [*argv, *extra, str(home)]


def render_summary(report: RunReport, report_dir: Path, elapsed_s: float) -> str:
    """The one-screen summary: verdict, counts, findings, elapsed time and report paths."""
    lines = ["", report.headline(), f"elapsed {elapsed_s:.1f} s"]
    lines += [f"a certification would need: {need}" for need in report.to_certify()]
    findings = [r for r in report.clauses if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    for result in findings[:_SHOWN_FINDINGS]:
        lines.append(
            f"  {result.id:<12} {result.verdict.value:<5} {result.level:<6} {result.reason}"
        )
    if len(findings) > _SHOWN_FINDINGS:
        lines.append(f"  … and {len(findings) - _SHOWN_FINDINGS} more in summary.md")
    lines.append("reports:")
    for name in ("report.json", "report.html", "junit.xml", "summary.md", "allure-results"):
        path = report_dir / name
        if path.exists():
            lines.append(f"  {path}")
    return "\n".join(lines)


# -- the embedded default ---------------------------------------------------------------


def embedded_files(workdir: Path) -> tuple[Path, Path]:
    """Writes the node file of reference node 330000 and its target file, from the plan
    ``embedded`` (fixtures/embedded.yaml); answers both paths."""
    try:
        plan = load_plan("embedded")
        files = node_files(plan, "127.0.0.1", plan_ports(plan))
        target = target_document(plan, files)
    except LaunchError as exc:
        raise RunError(str(exc)) from None
    node_file = write_file(workdir / f"{plan.candidate}.yaml", files[plan.candidate])
    return node_file, write_file(workdir / "target.yaml", target)


@contextmanager
def reference_node(node_file: Path, quiet: bool) -> Iterator[RunningNode]:
    """One reference node process, listening for the duration of the block, then stopped."""
    try:
        node = start_node(node_file)
    except LaunchError as exc:
        raise RunError(f"reference node: {exc}") from None
    try:
        if not quiet:
            print(f"reference node {node.node_id} ready at {node.url}")
        yield node
    finally:
        node.stop()


@contextmanager
def embedded_target(workdir: Path, quiet: bool = False) -> Iterator[tuple[Path, NeighbourSet]]:
    """The embedded default: emulated neighbours and a listening reference node 330000.

    Answers the target file and the running neighbours; everything stops with the block.
    """
    node_file, target_file = embedded_files(workdir)
    target = load_target(target_file)
    if target.neighbours is None:
        raise RunError(f"{target_file}: the embedded target has no neighbours")
    # The neighbours listen first, so that the node's first push finds its parent.
    neighbours = start_neighbours(target.neighbours)
    try:
        with reference_node(node_file, quiet):
            yield target_file, neighbours
    finally:
        neighbours.stop()
