"""The `conformance` command: one thin layer over the modules that own each concern."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from conformance import __version__


class UsageError(Exception):
    """The run could not be made: bad arguments or unreadable input (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _profiles_list(args: argparse.Namespace) -> int:
    from conformance.profile import render_clause_list

    print(render_clause_list(args.profile))
    return 0


def _profiles_show(args: argparse.Namespace) -> int:
    from conformance.profile import render_clause

    print(render_clause(args.clause_id))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from conformance.reference.launcher import serve

    return serve(args)


def _run(args: argparse.Namespace) -> int:
    from conformance.runner import run

    return run(args)


def _load(args: argparse.Namespace) -> int:
    from conformance.runner import run

    if (args.remote_workers is None) != (args.master_bind is None):
        raise UsageError("--remote-workers and --master-bind go together (distributed mode)")
    remote = f"{args.remote_workers}@{args.master_bind}" if args.remote_workers else None
    # The load stage alone is a run of chapter PERF: same target file, reports and exit status.
    only_perf = {"only": ["PERF"], "load": args.mode, "profile": None, "lab": False}
    return run(argparse.Namespace(**vars(args), **only_perf, pytest_arg=[], load_remote=remote))


def _load_worker(args: argparse.Namespace) -> int:
    from conformance.load import serve_worker
    from conformance.load.runner import SECRET_ENV
    from conformance.target import TargetError, load_target

    host, port = args.master
    if args.target:
        try:
            target = load_target(args.target)
        except TargetError as exc:
            raise UsageError(str(exc)) from None
        if "load" not in target.apps:
            raise UsageError(f"{args.target}: apps.load is missing: it signs the load")
        secret = target.apps["load"].secret
    else:
        secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise UsageError(f"the load app's secret: give --target FILE or set {SECRET_ENV}")
    return serve_worker(host, port, secret)


def _address(text: str) -> tuple[str, int]:
    from conformance.load.runner import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {count}")
    return count


def _report_html(args: argparse.Namespace) -> int:
    from conformance.report.html import html_from_json
    from conformance.report.integrity import ReportFileError

    try:
        print(html_from_json(Path(args.report), Path(args.out) if args.out else None))
    except ReportFileError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _report_allure(args: argparse.Namespace) -> int:
    from conformance.report.html import (
        ALLURE_INSTALL_HINT,
        AllureError,
        find_allure,
        generate_allure,
    )

    allure = find_allure(args.allure)
    if allure is None:
        raise UsageError(ALLURE_INSTALL_HINT)
    try:
        out = Path(args.out) if args.out else None
        print(generate_allure(Path(args.report_dir), allure, out))
    except AllureError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _report_diff(args: argparse.Namespace) -> int:
    from conformance.report.diff import diff_files
    from conformance.report.integrity import ReportFileError

    try:
        text, status = diff_files(Path(args.old), Path(args.new), as_json=args.json)
    except ReportFileError as exc:
        raise UsageError(str(exc)) from None
    print(text)
    return status


def _report_assessment(args: argparse.Namespace) -> int:
    from conformance.report.assessment import collect, write_assessment

    rows = collect([Path(path) for path in args.target])
    paths = write_assessment(rows, Path(args.out))
    print(paths["assessment.md"].read_text(encoding="utf-8"))
    print("\n".join(str(path) for path in paths.values()))
    # 1: a node could not be read; its row carries the error.
    return 1 if any(row.error for row in rows) else 0


def _report_verify(args: argparse.Namespace) -> int:
    from conformance.report.integrity import Integrity, verify_file

    result = verify_file(Path(args.report))
    print(result.message, file=sys.stdout if result.state is Integrity.INTACT else sys.stderr)
    return int(result.state)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conformance",
        description="Certify a data sharing and exchange node against ATS-1.0.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    profiles = commands.add_parser("profiles", help="list or show the clauses of ATS-1.0")
    profiles_commands = profiles.add_subparsers(dest="profiles_command", required=True)
    listing = profiles_commands.add_parser("list", help="every clause, bilingual")
    listing.add_argument("--profile", help="only the clauses of this profile (name or file)")
    listing.set_defaults(handler=_profiles_list)
    show = profiles_commands.add_parser("show", help="one clause in full")
    show.add_argument("clause_id", metavar="CLAUSE-ID")
    show.set_defaults(handler=_profiles_show)

    serve = commands.add_parser("serve", help="run the reference topology or one reference node")
    serve.add_argument("--node", metavar="CONFIG", help="run one node from this node file")
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="fault to switch on (repeatable)",
    )
    serve.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="conformant variant to switch on (repeatable; see docs/reference-node.md)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    serve.add_argument("--base-port", type=int, default=8300, help="first port of the topology")
    serve.add_argument(
        "--target-out", default="target.yaml", help="where the topology writes its target file"
    )
    serve.add_argument("--workdir", help="folder for the nodes' databases and logs")
    serve.set_defaults(handler=_serve)

    run = commands.add_parser("run", help="certify a node and write the reports")
    run.add_argument("--target", metavar="FILE", help="target file; none: the embedded topology")
    run.add_argument("--profile", help="profile name or file; default: the target's level")
    run.add_argument("--report-dir", default="reports", help="where the reports are written")
    run.add_argument(
        "--only",
        action="extend",
        nargs="+",
        default=[],
        metavar="CHAPTER|CLAUSE",
        help="run only these chapters or clauses (several, or repeated)",
    )
    run.add_argument("--load", choices=("off", "smoke", "full"), help="load stage mode")
    run.add_argument("--lab", action="store_true", help="lab run: plain HTTP, never certifies")
    run.add_argument(
        "--workers", type=_workers, metavar="N", help="locust worker processes for the load stage"
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    run.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument handed to pytest (repeatable)",
    )
    run.set_defaults(handler=_run)

    load = commands.add_parser("load", help="run only the load stage (ATS-PERF) against a node")
    load.add_argument("--target", required=True, metavar="FILE", help="target file")
    load.add_argument("--mode", choices=("smoke", "full"), default="full", help="load mode")
    load.add_argument("--workers", type=_workers, metavar="N", help="locust worker processes")
    load.add_argument(
        "--remote-workers",
        type=_workers,
        metavar="M",
        help="also wait for M workers on other hosts (`conformance load-worker`)",
    )
    load.add_argument(
        "--master-bind",
        metavar="HOST:PORT",
        help="address the locust master listens on for remote workers",
    )
    load.add_argument("--report-dir", default="reports", help="where the reports are written")
    load.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    load.set_defaults(handler=_load)

    worker = commands.add_parser(
        "load-worker", help="serve a distributed load stage as a worker on this host"
    )
    worker.add_argument(
        "--master", required=True, type=_address, metavar="HOST:PORT", help="the locust master"
    )
    worker.add_argument(
        "--target", metavar="FILE", help="target file whose load app signs (else ATS_LOAD_SECRET)"
    )
    worker.set_defaults(handler=_load_worker)

    report = commands.add_parser("report", help="render, compare and verify reports")
    report_commands = report.add_subparsers(dest="report_command", required=True)
    html = report_commands.add_parser("html", help="report.html from a report.json")
    html.add_argument("report", metavar="REPORT.json")
    html.add_argument("--out", metavar="FILE", help="default: report.html beside REPORT.json")
    html.set_defaults(handler=_report_html)
    allure = report_commands.add_parser("allure", help="Allure HTML from DIR/allure-results")
    allure.add_argument("report_dir", metavar="DIR")
    allure.add_argument("--out", metavar="DIR", help="default: DIR/allure-report")
    allure.add_argument("--allure", metavar="PATH", help="the allure command line to use")
    allure.set_defaults(handler=_report_allure)
    diff = report_commands.add_parser("diff", help="what changed between two runs")
    diff.add_argument("old", metavar="OLD.json")
    diff.add_argument("new", metavar="NEW.json")
    diff.add_argument("--json", action="store_true", help="JSON for machines")
    diff.set_defaults(handler=_report_diff)
    assessment = report_commands.add_parser(
        "assessment", help="monthly assessment figures (考核指标) of one or more nodes"
    )
    assessment.add_argument(
        "--target", action="append", required=True, metavar="FILE", help="target file (repeatable)"
    )
    assessment.add_argument("--out", default="reports", metavar="DIR", help="output folder")
    assessment.set_defaults(handler=_report_assessment)
    verify = report_commands.add_parser("verify", help="check the integrity digest of a report")
    verify.add_argument("report", metavar="REPORT.json")
    verify.set_defaults(handler=_report_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from conformance.profile import ProfileError

    try:
        return int(args.handler(args))
    except (UsageError, ProfileError) as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away; point stdout at devnull so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
