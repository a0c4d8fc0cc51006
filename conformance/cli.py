"""The `conformance` command: one thin layer over the modules that own each concern."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from conformance import __version__


class UsageError(Exception):
    """The run could not be made: bad arguments or unreadable input (exit status 2)."""


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        action="append",
        default=[],
        metavar="CHAPTER|CLAUSE",
        help="run only these chapters or clauses (repeatable)",
    )
    run.add_argument("--load", choices=("off", "smoke", "full"), help="load stage mode")
    run.add_argument("--lab", action="store_true", help="lab run: plain HTTP, never certifies")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    run.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument handed to pytest (repeatable)",
    )
    run.set_defaults(handler=_run)
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
