"""The `conformance` command: one thin layer over the modules that own each concern."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from conformance import __version__
from conformance.options import RunOptions, add_cli_arguments, positive_int


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

    return run(RunOptions.from_cli(args))


def _preflight(args: argparse.Namespace) -> int:
    from conformance.preflight import run_preflight
    from conformance.target import TargetError, load_target

    try:
        target = load_target(args.target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    result = run_preflight(target)
    for item in result.items:
        print(item.line())
    stop = result.stop
    if stop is not None:
        print(f"conformance: a run would stop at preflight ({stop.name})", file=sys.stderr)
        return 2
    return 0


def _load(args: argparse.Namespace) -> int:
    from conformance.runner import run

    if (args.remote_workers is None) != (args.master_bind is None):
        raise UsageError("--remote-workers and --master-bind go together (distributed mode)")
    remote = f"{args.remote_workers}@{args.master_bind}" if args.remote_workers else None
    # The load stage alone is a run of chapter PERF: same target file, reports and exit status.
    options = RunOptions.from_cli(args)  # --target, --workers, --report-dir, -q
    return run(replace(options, only=("PERF",), load=args.mode, load_remote=remote))


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


def _report_html(args: argparse.Namespace) -> int:
    from conformance.report.html import html_from_json
    from conformance.report.integrity import ReportFileError

    try:
        print(html_from_json(Path(args.report), Path(args.out) if args.out else None))
    except ReportFileError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _report_allure(args: argparse.Namespace) -> int:
    from conformance.allure_report import (
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
    import tempfile

    from conformance.report.diff import diff_files
    from conformance.report.integrity import ReportFileError

    with tempfile.TemporaryDirectory(prefix="ats-diff-") as folder:
        # An evidence bundle stands for its report.json (a node's last certified run).
        old, new = (
            _report_of(Path(p), Path(folder) / n) for p, n in ((args.old, "old"), (args.new, "new"))
        )
        try:
            text, status = diff_files(old, new, as_json=args.json)
        except ReportFileError as exc:
            raise UsageError(str(exc)) from None
        # The scratch copies are named as what the user gave.
        for scratch, given in ((old, args.old), (new, args.new)):
            if scratch.is_relative_to(folder):
                text = text.replace(str(scratch), given)
    print(text)
    return status


def _report_of(path: Path, scratch: Path) -> Path:
    """``path`` itself, or the report.json inside it when it is an evidence bundle."""
    if not _is_archive(path):
        return path
    from conformance.authority.bundle import BundleError, read_members

    try:
        report = read_members(path)["report.json"]
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    except KeyError:
        raise UsageError(f"{path}: an archive without report.json") from None
    scratch.mkdir()
    (scratch / "report.json").write_bytes(report)
    return scratch / "report.json"


def _report_assessment(args: argparse.Namespace) -> int:
    from conformance.figures import collect
    from conformance.report.assessment import write_assessment

    rows = collect([Path(path) for path in args.target])
    paths = write_assessment(rows, Path(args.out))
    print(paths["assessment.md"].read_text(encoding="utf-8"))
    print("\n".join(str(path) for path in paths.values()))
    # 1: a node could not be read; its row carries the error.
    return 1 if any(row.error for row in rows) else 0


def _report_verify(args: argparse.Namespace) -> int:
    from conformance.report.integrity import Integrity, verify_file

    given = Path(args.report)
    if args.pubkey or _is_archive(given):
        return _bundle_verify(given, args)
    result = verify_file(given)
    print(result.message, file=sys.stdout if result.state is Integrity.INTACT else sys.stderr)
    return int(result.state)


def _profiles_bundle_openapi(args: argparse.Namespace) -> int:
    from conformance.data import data_dir
    from conformance.openapi import BUNDLED_NAME, bundled_text

    folder = Path(args.profiles) if args.profiles else data_dir("profiles")
    output = Path(args.output) if args.output else folder / BUNDLED_NAME
    output.write_text(bundled_text(folder), "utf-8")
    print(output)
    return 0


def _is_archive(path: Path) -> bool:
    import tarfile

    return path.is_file() and tarfile.is_tarfile(path)


def _bundle_verify(bundle: Path, args: argparse.Namespace) -> int:
    from conformance.authority.bundle import Check, verify_bundle
    from conformance.authority.keys import AuthorityKeyError, load_verifying_key

    if not args.pubkey:
        raise UsageError(f"{bundle}: an evidence bundle is verified with --pubkey FILE")
    try:
        pubkey = load_verifying_key(Path(args.pubkey))
    except AuthorityKeyError as exc:
        raise UsageError(str(exc)) from None
    signature = Path(args.signature) if args.signature else None
    result = verify_bundle(bundle, pubkey, signature)
    out = sys.stdout if result.state is Check.VERIFIED else sys.stderr
    if result.state is Check.TAMPERED:
        print(f"{bundle}: TAMPERED: not what the authority signed", file=out)
    for line in result.lines:
        print(line, file=out)
    return int(result.state)


def _report_sign(args: argparse.Namespace) -> int:
    from conformance.authority.bundle import BundleError, build_bundle
    from conformance.authority.keys import AuthorityKeyError, load_signing_key, read_passphrase

    try:
        key = load_signing_key(Path(args.key), read_passphrase(args.passphrase_env))
        bundle, signature = build_bundle(
            Path(args.run_dir), key, Path(args.out) if args.out else None
        )
    except (AuthorityKeyError, BundleError) as exc:
        raise UsageError(str(exc)) from None
    print(bundle)
    print(signature)
    return 0


def _waivers_sign(args: argparse.Namespace) -> int:
    from conformance.authority.keys import AuthorityKeyError, load_signing_key, read_passphrase
    from conformance.authority.waivers import WaiverFileError, sign_waivers

    try:
        key = load_signing_key(Path(args.key), read_passphrase(args.passphrase_env))
        print(sign_waivers(Path(args.file), key))
    except (AuthorityKeyError, WaiverFileError) as exc:
        raise UsageError(str(exc)) from None
    return 0


def _certificate_issue(args: argparse.Namespace) -> int:
    import subprocess
    from datetime import date

    from conformance.authority.certificate import (
        CertificateRefused,
        certificate_for,
        chinese_font_missing,
        find_browser,
        print_pdf,
        write_certificate,
    )
    from conformance.authority.keys import AuthorityKeyError, load_verifying_key

    bundle = Path(args.bundle)
    try:
        issued_on = date.fromisoformat(args.date) if args.date else date.today()
    except ValueError:
        raise UsageError(f"--date: {args.date!r} is not a date (YYYY-MM-DD)") from None
    try:
        certificate = certificate_for(
            bundle,
            load_verifying_key(Path(args.pubkey)),
            issued_on=issued_on,
            validity_days=args.validity_days,
            number=args.number,
            operator=args.operator,
            node_name=args.node_name,
        )
    except (AuthorityKeyError, CertificateRefused) as exc:
        raise UsageError(str(exc)) from None
    written = write_certificate(certificate, Path(args.out) if args.out else bundle.parent)
    browser = find_browser()
    no_font = chinese_font_missing() if browser is not None else None
    if no_font is not None:
        print(f"conformance: no PDF: {no_font}", file=sys.stderr)
    elif browser is not None:
        page = written["certificate.html"]
        try:
            written["certificate.pdf"] = print_pdf(page, page.with_suffix(".pdf"), browser)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"conformance: no PDF: {exc}", file=sys.stderr)
    print(
        f"certificate {certificate.number}: {certificate.verdict}, node {certificate.node_id}, "
        f"valid {certificate.issued_on} → {certificate.valid_until}"
    )
    for path in written.values():
        print(path)
    return 0


def _register(args: argparse.Namespace) -> int:
    from datetime import date

    from conformance.authority.certificate import CertificateRefused, read_certificate
    from conformance.authority.keys import sm3_hex
    from conformance.authority.register import Register, RegisterError

    register, today = Register(Path(args.db)), date.today()
    try:
        if args.register_command == "add":
            source = Path(args.certificate)
            certificate = read_certificate(source)
            bundle = Path(args.bundle) if args.bundle else source.parent / certificate.bundle_file
            if not bundle.is_file() or sm3_hex(bundle.read_bytes()) != certificate.bundle_sm3:
                raise UsageError(f"{bundle}: not the bundle certificate {certificate.number} names")
            print(register.add(certificate, bundle).line(today))
        elif args.register_command == "list":
            if args.node:
                entries = register.history(args.node)
            elif args.expiring is not None:
                entries = register.expiring(args.expiring, today)
            else:
                entries = register.entries()
            for entry in entries:
                print(entry.line(today))
        elif args.register_command == "show":
            entry = register.show(args.number)
            for name, value in vars(entry).items():
                print(f"{name}: {value if value is not None else '—'}")
            print(f"status: {entry.status(today)}")
        elif args.register_command == "last":
            print(register.last_certified(args.node, today).bundle_path)
        else:
            print(register.revoke(args.number, args.reason).line(today))
    except (RegisterError, CertificateRefused) as exc:
        raise UsageError(str(exc)) from None
    return 0


def _authority_init(args: argparse.Namespace) -> int:
    from conformance.authority.keys import (
        AuthorityKeyError,
        fingerprint,
        init_keys,
        read_passphrase,
    )

    try:
        private, public = init_keys(
            Path(args.out), read_passphrase(args.passphrase_env, confirm=True)
        )
    except AuthorityKeyError as exc:
        raise UsageError(str(exc)) from None
    print(f"private key (encrypted, keep offline): {private}")
    print(f"public key (give to whoever verifies): {public}")
    print(f"fingerprint (SM3): {fingerprint(public.read_bytes())}")
    return 0


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
    bundle = profiles_commands.add_parser(
        "bundle-openapi",
        help="write profiles/openapi.bundled.yaml: the OpenAPI description in one file",
    )
    bundle.add_argument(
        "--profiles", metavar="DIR", help="the profiles folder (default: the packaged one)"
    )
    bundle.add_argument(
        "--output", metavar="FILE", help="where to write it (default: DIR/openapi.bundled.yaml)"
    )
    bundle.set_defaults(handler=_profiles_bundle_openapi)

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
    serve.add_argument(
        "--tls",
        action="store_true",
        help="serve the topology over HTTPS with a private CA (workdir/ca.pem) and a plain-HTTP "
        "port per node (ATS-SEC-06); its target file is not a lab run",
    )
    serve.set_defaults(handler=_serve)

    run = commands.add_parser("run", help="certify a node and write the reports")
    add_cli_arguments(run)
    run.set_defaults(handler=_run)

    preflight = commands.add_parser(
        "preflight", help="check what a run stands on (address, TLS, apps, resources) and stop"
    )
    preflight.add_argument("--target", required=True, metavar="FILE", help="target file")
    preflight.set_defaults(handler=_preflight)

    load = commands.add_parser("load", help="run only the load stage (ATS-PERF) against a node")
    load.add_argument("--target", required=True, metavar="FILE", help="target file")
    load.add_argument("--mode", choices=("smoke", "full"), default="full", help="load mode")
    add_cli_arguments(load, ("workers", "report_dir", "quiet"))
    load.add_argument(
        "--remote-workers",
        type=positive_int,
        metavar="M",
        help="also wait for M workers on other hosts (`conformance load-worker`)",
    )
    load.add_argument(
        "--master-bind",
        metavar="HOST:PORT",
        help="address the locust master listens on for remote workers",
    )
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
    diff = report_commands.add_parser(
        "diff", help="what changed between two runs (report.json or evidence bundle)"
    )
    diff.add_argument("old", metavar="OLD.json|BUNDLE")
    diff.add_argument("new", metavar="NEW.json|BUNDLE")
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
    verify = report_commands.add_parser(
        "verify",
        help="check a report's integrity digest, or an evidence bundle's signature (--pubkey)",
    )
    verify.add_argument("report", metavar="REPORT.json|BUNDLE")
    verify.add_argument("--pubkey", metavar="FILE", help="the authority's public key (bundles)")
    verify.add_argument("--signature", metavar="FILE", help="default: BUNDLE.sig")
    verify.set_defaults(handler=_report_verify)
    sign = report_commands.add_parser(
        "sign", help="bundle a run's reports and sign them with the authority key (SM2)"
    )
    sign.add_argument("run_dir", metavar="RUN_DIR")
    sign.add_argument("--key", required=True, metavar="FILE", help="the authority's private key")
    _passphrase_option(sign)
    sign.add_argument("--out", metavar="BUNDLE", help="default: RUN_DIR/evidence-bundle.tar.gz")
    sign.set_defaults(handler=_report_sign)

    waivers = commands.add_parser("waivers", help="accepted deviations, signed by the authority")
    waivers_commands = waivers.add_subparsers(dest="waivers_command", required=True)
    waivers_sign = waivers_commands.add_parser("sign", help="sign a waivers file (FILE.sig)")
    waivers_sign.add_argument("file", metavar="FILE")
    waivers_sign.add_argument("--key", required=True, metavar="FILE", help="the authority's key")
    _passphrase_option(waivers_sign)
    waivers_sign.set_defaults(handler=_waivers_sign)

    certificate = commands.add_parser("certificate", help="the certificate of a signed run")
    certificate_commands = certificate.add_subparsers(dest="certificate_command", required=True)
    issue = certificate_commands.add_parser(
        "issue", help="certificate.html (and .pdf) for a CERTIFIED signed bundle"
    )
    issue.add_argument("bundle", metavar="BUNDLE")
    issue.add_argument("--pubkey", required=True, metavar="FILE", help="the authority's public key")
    issue.add_argument("--out", metavar="DIR", help="default: the bundle's folder")
    issue.add_argument(
        "--validity-days", type=positive_int, default=365, metavar="N", help="default: 365"
    )
    issue.add_argument("--number", help="certificate number; default: ATS-NODE-DATE-DIGEST")
    issue.add_argument("--operator", help="operator organisation; default: the target file's")
    issue.add_argument("--node-name", help="node name; default: the target file's")
    issue.add_argument("--date", metavar="YYYY-MM-DD", help="date of issue; default: today")
    issue.set_defaults(handler=_certificate_issue)

    register = commands.add_parser("register", help="the register of issued certificates")
    register_commands = register.add_subparsers(dest="register_command", required=True)
    add = register_commands.add_parser("add", help="record an issued certificate")
    add.add_argument("certificate", metavar="CERTIFICATE.json")
    add.add_argument("--bundle", metavar="FILE", help="default: the bundle named beside it")
    listing = register_commands.add_parser(
        "list", help="every certificate, a node's history, or what expires soon"
    )
    listing.add_argument("--expiring", type=int, metavar="N", help="valid, expiring within N days")
    listing.add_argument("--node", metavar="NODE-ID", help="this node's history, oldest first")
    shown = register_commands.add_parser("show", help="one certificate in full")
    shown.add_argument("number", metavar="NUMBER")
    last = register_commands.add_parser(
        "last", help="the bundle of a node's last valid certificate (for `report diff`)"
    )
    last.add_argument("node", metavar="NODE-ID")
    revoke = register_commands.add_parser("revoke", help="revoke a certificate, with its reason")
    revoke.add_argument("number", metavar="NUMBER")
    revoke.add_argument("--reason", required=True, help="why it is revoked")
    for sub in (add, listing, shown, last, revoke):
        sub.add_argument("--db", default="register.sqlite", metavar="FILE", help="the register")
        sub.set_defaults(handler=_register)

    authority = commands.add_parser("authority", help="the certifying authority's SM2 key pair")
    authority_commands = authority.add_subparsers(dest="authority_command", required=True)
    init = authority_commands.add_parser("init", help="create the authority's key pair")
    init.add_argument("--out", default="authority", metavar="DIR", help="where the keys go")
    _passphrase_option(init)
    init.set_defaults(handler=_authority_init)
    return parser


def _passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-env",
        metavar="NAME",
        help="environment variable holding the key's passphrase; default: ask at the terminal",
    )


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
