"""``conformance run``: certify a node with the pytest plugin and write its reports.

The runner only translates its arguments into pytest arguments and maps the run verdict to the
exit status: 0 CERTIFIED, CERTIFIED_WITH_FINDINGS or LAB_CONFORMANT; 1 NOT_CERTIFIED; 2 the run
could not be made (bad arguments, unreadable target file, unknown profile, missing ``${ENV}``
secret, tester-side failure), always with one line on stderr.

Without ``--target`` it certifies the embedded default: the reference provincial node 330000,
started as a separate process from a generated node file, between the suite's emulated parent
(100000) and child (330100) — a lab run over plain HTTP on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from conformance.data import data_dir
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.plugin import PlanError, build_plan
from conformance.profile import ProfileError
from conformance.report.assessment import collect, write_assessment
from conformance.report.html import AllureError, find_allure, generate_allure
from conformance.report.model import RunReport, Verdict
from conformance.target import TargetError, load_target

EMBEDDED_NODE = "330000"
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0
_SHOWN_FINDINGS = 15


class RunError(Exception):
    """The run could not be made; the message is the one line the user sees."""


@dataclass(frozen=True)
class RunOptions:
    """The run's configuration, built once from the command line."""

    target: Path | None
    profile: str | None
    report_dir: Path
    only: tuple[str, ...]
    load: str
    lab: bool
    quiet: bool
    pytest_args: tuple[str, ...]
    workers: int | None = None
    # Distributed load: ``M@HOST:PORT``, M workers on other hosts, the master bound there.
    load_remote: str | None = None
    # The long probes a default run leaves out (ATS-AUTH-05 replays a nonce after 590 s).
    thorough: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """The options of ``conformance run``; load defaults to full, or smoke when embedded."""
        target = Path(args.target).resolve() if getattr(args, "target", None) else None
        load = getattr(args, "load", None) or ("full" if target else "smoke")
        return cls(
            target=target,
            profile=getattr(args, "profile", None),
            report_dir=Path(getattr(args, "report_dir", None) or "reports").resolve(),
            only=tuple(getattr(args, "only", None) or ()),
            load=load,
            lab=bool(getattr(args, "lab", False)),
            quiet=bool(getattr(args, "quiet", False)),
            pytest_args=tuple(getattr(args, "pytest_arg", None) or ()),
            workers=getattr(args, "workers", None),
            load_remote=getattr(args, "load_remote", None),
            thorough=bool(getattr(args, "thorough", False)),
        )


def run(args: argparse.Namespace) -> int:
    """Runs ``conformance run`` and answers its exit status."""
    options = RunOptions.from_args(args)
    try:
        _writable_folder(options.report_dir)
        with ExitStack() as stack:
            stack.enter_context(_terminate_as_interrupt())
            neighbours = None
            target = options.target
            if target is None:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ats-")))
                target, neighbours = stack.enter_context(embedded_target(workdir, options.quiet))
            status = _certify(options, target, neighbours)
            if options.target is None:
                _embedded_extras(options.report_dir, target)
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
    # Validate before pytest starts, so that a bad input is one line, not a pytest banner.
    plan = build_plan(
        target_path=str(target),
        profile=options.profile,
        only=options.only,
        load_mode=options.load,
        lab=options.lab,
        thorough=options.thorough,
    )
    report_json = options.report_dir / "report.json"
    report_json.unlink(missing_ok=True)
    if not options.quiet:
        node = plan.target.node
        print(
            f"certifying {node.node_id} ({node.level}) at {node.base_url} "
            f"against profile {plan.profile.name}"
        )
    started = time.monotonic()
    status = _pytest(options, target, neighbours)
    if not report_json.is_file():
        raise RunError(f"tester-side failure: pytest ended with status {status} and no report")
    report = RunReport.from_dict(json.loads(report_json.read_text(encoding="utf-8")))
    print(render_summary(report, options.report_dir, time.monotonic() - started))
    if status == pytest.ExitCode.INTERRUPTED:
        raise RunError(f"the run was interrupted; partial reports in {options.report_dir}")
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise RunError(f"tester-side failure: pytest ended with status {int(status)}")
    return 1 if report.verdict.value == "NOT_CERTIFIED" else 0


def pytest_arguments(options: RunOptions, target: Path, home: Path) -> list[str]:
    """The pytest command line of a run; ``home`` is an empty folder serving as rootdir."""
    argv = [
        "-p", "conformance.plugin",
        "-p", "no:locust",
        "-p", "no:cacheprovider",
        "-p", "no:terminal",
        # An empty ini file in an empty folder: the user's conftest and ini files stay out.
        "-c", str(home / "pytest.ini"),
        "--rootdir", str(home),
        "--confcutdir", str(home),
        "--target", str(target),
        "--ats-report-dir", str(options.report_dir),
        "--ats-load", options.load,
        "--ats-progress",
        "--alluredir", str(options.report_dir / "allure-results"),
        "--clean-alluredir",
    ]  # fmt: skip
    if options.profile:
        argv += ["--ats-profile", options.profile]
    for name in options.only:
        argv += ["--ats-only", name]
    if options.lab:
        argv.append("--ats-lab")
    if options.thorough:
        argv.append("--ats-thorough")
    if options.workers is not None:
        argv += ["--ats-load-workers", str(options.workers)]
    if options.load_remote:
        argv += ["--ats-load-remote", options.load_remote]
    if options.quiet:
        argv.append("--ats-quiet")
    return [*argv, *options.pytest_args, str(home)]


def _pytest(options: RunOptions, target: Path, neighbours: NeighbourSet | None) -> int:
    with tempfile.TemporaryDirectory(prefix="ats-pytest-") as folder:
        home = Path(folder)
        (home / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        plugins: list[Any] = [_ProvidedNeighbours(neighbours)] if neighbours else []
        return int(pytest.main(pytest_arguments(options, target, home), plugins=plugins))


class _ProvidedNeighbours:
    """Hands the runner's emulated neighbours to the plugin (they serve the whole run)."""

    def __init__(self, neighbours: NeighbourSet) -> None:
        self.neighbours = neighbours

    def pytest_configure(self, config: pytest.Config) -> None:
        config.pluginmanager.register(self.neighbours, "ats_neighbours")


def render_summary(report: RunReport, report_dir: Path, elapsed_s: float) -> str:
    """The one-screen summary: verdict, counts, findings, elapsed time and report paths."""
    lines = ["", report.headline(), f"elapsed {elapsed_s:.1f} s"]
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _secret() -> str:
    # ATS §0: 32–128 characters of [A-Za-z0-9_-]; token_urlsafe(48) gives 64 of them.
    return secrets.token_urlsafe(48)


def _catalog_roles(node_id: str) -> dict[str, str]:
    path = data_dir("fixtures") / "catalogs" / f"{node_id}.json"
    try:
        roles = json.loads(path.read_text(encoding="utf-8"))["roles"]
    except (OSError, ValueError, KeyError) as exc:
        raise RunError(
            f"{path}: the seed catalog of the embedded node is unusable: {exc}"
        ) from None
    return {role: str(code) for role, code in roles.items()}


def embedded_files(workdir: Path) -> tuple[Path, Path]:
    """Writes the node file of reference node 330000 and its target file; answers both paths."""
    node_port, parent_port, child_port = _free_port(), _free_port(), _free_port()
    creds = {name: _secret() for name in ("a", "b", "admin", "load", "up", "down", "p", "c")}
    node_file = workdir / f"{EMBEDDED_NODE}.yaml"
    node = {
        "node": {
            "node_id": EMBEDDED_NODE,
            "name": "浙江省政务数据共享交换平台",
            "level": "provincial",
            "listen": f"127.0.0.1:{node_port}",
            "database": f"{EMBEDDED_NODE}.sqlite3",
            "rate_limit_per_app": 200,
            # ATS-CAS-08 allows any cascade timeout up to 10 s; 5 s keeps the embedded run brisk
            # (its check waits out one timeout against a hanging neighbour).
            "cascade_timeout_s": 5,
            "systems_integrated": 12,
            "parent": {
                "node_id": "100000",
                "url": f"http://127.0.0.1:{parent_port}",
                "app_id": "node-330000",
                "secret": creds["up"],
            },
            "children": [
                {
                    "node_id": "330100",
                    "name": "杭州市政务数据共享交换平台",
                    "level": "municipal",
                    "url": f"http://127.0.0.1:{child_port}",
                    "app_id": "node-330000",
                    "secret": creds["down"],
                }
            ],
        },
        "apps": [
            {"app_id": "consumer-a", "secret": creds["a"], "role": "consumer"},
            {"app_id": "consumer-b", "secret": creds["b"], "role": "consumer"},
            {"app_id": "admin", "secret": creds["admin"], "role": "provider-admin"},
            {"app_id": "load", "secret": creds["load"], "role": "consumer", "rate_limit": 400},
            {"app_id": "node-100000", "secret": creds["p"], "role": "node", "bound_node": "100000"},
            {"app_id": "node-330100", "secret": creds["c"], "role": "node", "bound_node": "330100"},
        ],
        "seed": {"catalog": EMBEDDED_NODE},
        "faults": [],
        "tls": None,
    }
    target_file = workdir / "target.yaml"
    target = {
        "node": {
            "base_url": f"http://127.0.0.1:{node_port}",
            "level": "provincial",
            "node_id": EMBEDDED_NODE,
            "parent_id": "100000",
        },
        "apps": {
            "consumer": {"app_id": "consumer-a", "secret": creds["a"]},
            "consumer_b": {"app_id": "consumer-b", "secret": creds["b"]},
            "admin": {"app_id": "admin", "secret": creds["admin"]},
            "load": {"app_id": "load", "secret": creds["load"]},
        },
        "resources": _catalog_roles(EMBEDDED_NODE),
        "neighbours": {
            "parent": {
                "listen": f"127.0.0.1:{parent_port}",
                "node_id": "100000",
                "as_parent": {"app_id": "node-100000", "secret": creds["p"]},
                "candidate": {"app_id": "node-330000", "secret": creds["up"]},
            },
            "child": {
                "listen": f"127.0.0.1:{child_port}",
                "node_id": "330100",
                "as_child": {"app_id": "node-330100", "secret": creds["c"]},
                "candidate": {"app_id": "node-330000", "secret": creds["down"]},
            },
        },
        "lab": True,
    }
    for path, document in ((node_file, node), (target_file, target)):
        path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
        path.chmod(0o600)
    return node_file, target_file


@contextmanager
def reference_node(
    node_file: Path, health_url: str, quiet: bool
) -> Iterator[subprocess.Popen[bytes]]:
    """One reference node process, healthy for the duration of the block, then stopped."""
    log = node_file.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "conformance.reference", "--config", str(node_file)],
            stdout=sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
            cwd=node_file.parent,
            # Its own session: Ctrl-C reaches the runner, which stops the node in order.
            start_new_session=True,
        )
    try:
        _wait_healthy(process, health_url, log)
        if not quiet:
            print(f"reference node {EMBEDDED_NODE} ready at {health_url.rsplit('/api', 1)[0]}")
        yield process
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    with requests.Session() as session:
        session.trust_env = False
        while time.monotonic() < deadline:
            if process.poll() is not None:
                lines = log.read_text("utf-8", "replace").strip().splitlines() or ["no output"]
                raise RunError(f"the reference node stopped at start: {lines[-1]}")
            try:
                if session.get(url, timeout=(1, 2)).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
    raise RunError(f"the reference node did not answer health within {_START_TIMEOUT_S:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_STOP_TIMEOUT_S)
    except ProcessLookupError:
        process.wait(timeout=_STOP_TIMEOUT_S)


@contextmanager
def embedded_target(workdir: Path, quiet: bool = False) -> Iterator[tuple[Path, NeighbourSet]]:
    """The embedded default: emulated neighbours and a healthy reference node 330000.

    Answers the target file and the running neighbours; everything stops with the block.
    """
    node_file, target_file = embedded_files(workdir)
    target = load_target(target_file)
    if target.neighbours is None:
        raise RunError(f"{target_file}: the embedded target has no neighbours")
    # The neighbours listen first, so that the node's first push finds its parent.
    neighbours = start_neighbours(target.neighbours)
    try:
        with reference_node(node_file, f"{target.node.base_url}/api/v1/health", quiet):
            yield target_file, neighbours
    finally:
        neighbours.stop()
