"""The options of a conformance run, declared once: ``RunOptions``, whose fields are the table.

Each field is one option: its name, type, default, help, choices and the flags it has in each
interface. ``conformance run`` (argparse, ``add_cli_arguments``) and the pytest plugin
(``add_pytest_options``) derive their options from it, and read their values back into a
``RunOptions`` (``from_cli``, ``from_pytest``). The flags are the public contract: under pytest
each option answers to an ``--ats-`` name, which cannot collide with another plugin's option in a
CI owner's own set-up, and the common ones to their short name too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import Field, dataclass, field, fields
from typing import Any

LOAD_MODES = ("off", "smoke", "full")


def positive_int(text: str) -> int:
    """A count of at least 1 (``--workers``)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {count}")
    return count


@dataclass(frozen=True)
class Flags:
    """How one option is spelled and parsed in each interface (the rest of its row)."""

    help: str
    cli: tuple[str, ...] = ()  # flags of `conformance run`; none: not on its command line
    pytest: tuple[str, ...] = ()  # flags of the pytest plugin; none: not a pytest option
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    convert: Callable[[str], Any] | None = None
    # A list option: repeated flags add up; on `conformance run` one flag also takes several
    # values (under pytest it does not: it would swallow the file arguments that follow it).
    several: bool = False


def _option(default: Any, flags: Flags) -> Any:
    return field(default=default, metadata={"flags": flags})


@dataclass(frozen=True)
class RunOptions:
    """The options of one run, as given; ``run_plan.build_plan`` validates them into a plan."""

    target: str | None = _option(
        None,
        Flags(
            "target file to certify (default: none: `conformance run` certifies the embedded "
            "topology, a lab run, and the pytest plugin stays inert)",
            cli=("--target",),
            pytest=("--target", "--ats-target"),
            metavar="FILE",
        ),
    )
    profile: str | None = _option(
        None,
        Flags(
            "profile name or file; default: the target's level",
            cli=("--profile",),
            pytest=("--ats-profile", "--profile"),
            metavar="NAME",
        ),
    )
    report_dir: str = _option(
        "reports",
        Flags(
            "where report.json, report.html, junit.xml and summary.md are written "
            "(default: reports)",
            cli=("--report-dir",),
            pytest=("--ats-report-dir", "--report-dir"),
            metavar="DIR",
        ),
    )
    only: tuple[str, ...] = _option(
        (),
        Flags(
            "run only these chapters or clauses, several at once comma-separated "
            "(AUTH,CAT-01; repeatable); never a certification (default: every clause)",
            cli=("--only",),
            pytest=("--ats-only", "--only"),
            metavar="CHAPTER|CLAUSE",
            several=True,
        ),
    )
    load: str | None = _option(
        None,
        Flags(
            "load stage: off, smoke (about a minute, never a certification) or full (about 20 "
            "minutes, what a certification needs); default: full with a target file, smoke "
            "for the embedded topology",
            cli=("--load",),
            pytest=("--ats-load", "--load"),
            choices=LOAD_MODES,
        ),
    )
    lab: bool = _option(
        False,
        Flags(
            "lab run (plain HTTP, ATS §11): LAB_CONFORMANT at best, never a certification "
            "(default: the target file's lab member)",
            cli=("--lab",),
            pytest=("--ats-lab",),
        ),
    )
    thorough: bool = _option(
        False,
        Flags(
            "also the long probes a default run leaves out (ATS-AUTH-05: a nonce replayed after "
            "590 s); about 10 minutes more (default: off)",
            cli=("--thorough",),
            pytest=("--ats-thorough", "--thorough"),
        ),
    )
    waivers: str | None = _option(
        None,
        Flags(
            "waivers file signed by the authority (accepted FAILs); with --authority-pubkey "
            "(default: none)",
            cli=("--waivers",),
            pytest=("--ats-waivers",),
            metavar="FILE",
        ),
    )
    authority_pubkey: str | None = _option(
        None,
        Flags(
            "the authority's public key: only waivers it signed apply (default: none)",
            cli=("--authority-pubkey",),
            pytest=("--ats-authority-pubkey",),
            metavar="FILE",
        ),
    )
    workers: int | None = _option(
        None,
        Flags(
            "locust worker processes for the load stage (default: the load profile's)",
            cli=("--workers",),
            pytest=("--ats-load-workers",),
            metavar="N",
            convert=positive_int,
        ),
    )
    load_remote: str | None = _option(
        None,
        Flags(
            "also wait for M load workers on other hosts, the master bound to HOST:PORT",
            pytest=("--ats-load-remote",),
            metavar="M@HOST:PORT",
        ),
    )
    quiet: bool = _option(
        False,
        Flags(
            "no preflight or progress lines, only the summary (default: off)",
            cli=("-q", "--quiet"),
            pytest=("--ats-quiet",),
        ),
    )
    progress: bool = _option(
        False,
        Flags("print one line per clause (as `conformance run` does)", pytest=("--ats-progress",)),
    )
    pytest_arg: tuple[str, ...] = _option(
        (),
        Flags(
            "extra argument handed to pytest (repeatable; default: none)",
            cli=("--pytest-arg",),
            metavar="ARG",
        ),
    )

    @property
    def load_mode(self) -> str:
        """The load stage: as given, else full with a target file, smoke for the embedded one."""
        return self.load or ("full" if self.target else "smoke")

    @classmethod
    def from_cli(cls, args: argparse.Namespace) -> RunOptions:
        """The options as ``add_cli_arguments`` parsed them; those the command does not have
        (``conformance load`` has a few) keep their default."""
        given = vars(args)
        return cls(
            **{f.name: _held(f.default, given[f.name]) for f in _rows("cli") if f.name in given}
        )

    @classmethod
    def from_pytest(cls, getoption: Callable[[str], Any]) -> RunOptions:
        """The options as ``add_pytest_options`` parsed them (``config.getoption``)."""
        return cls(
            **{f.name: _held(f.default, getoption(pytest_dest(f.name))) for f in _rows("pytest")}
        )


def _held(default: Any, value: Any) -> Any:
    # argparse answers lists; the options hold tuples (frozen).
    return tuple(value) if isinstance(default, tuple) else value


def flags_of(name: str) -> Flags:
    """The row of option ``name``."""
    row = next(f for f in fields(RunOptions) if f.name == name)
    flags: Flags = row.metadata["flags"]
    return flags


def _rows(interface: str, names: Iterable[str] | None = None) -> list[Field[Any]]:
    wanted = set(names) if names is not None else None
    return [
        f
        for f in fields(RunOptions)
        if getattr(f.metadata["flags"], interface) and (wanted is None or f.name in wanted)
    ]


def pytest_dest(name: str) -> str:
    """The attribute of pytest's option namespace that holds option ``name``."""
    return f"ats_{name}"


def _arguments(flags: Flags, default: Any, *, several: bool) -> dict[str, Any]:
    """The argparse keywords of one option (pytest hands them to argparse as well)."""
    kwargs: dict[str, Any] = {"help": flags.help}
    if isinstance(default, bool):
        return {**kwargs, "action": "store_true", "default": default}
    if isinstance(default, tuple):
        kwargs["default"] = list(default)
        kwargs["action"] = "extend" if several else "append"
        if several:
            kwargs["nargs"] = "+"
    else:
        kwargs["default"] = default
    if flags.metavar:
        kwargs["metavar"] = flags.metavar
    if flags.choices:
        kwargs["choices"] = flags.choices
    if flags.convert:
        kwargs["type"] = flags.convert
    return kwargs


def add_cli_arguments(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """Adds the options of ``conformance run`` (or only ``names`` of them) to ``parser``."""
    for row in _rows("cli", names):
        flags: Flags = row.metadata["flags"]
        parser.add_argument(
            *flags.cli, dest=row.name, **_arguments(flags, row.default, several=flags.several)
        )


def add_pytest_options(group: Any) -> None:
    """Adds the options of the plugin to a pytest option group (``parser.getgroup``)."""
    for row in _rows("pytest"):
        flags: Flags = row.metadata["flags"]
        group.addoption(
            *flags.pytest,
            dest=pytest_dest(row.name),
            **_arguments(flags, row.default, several=False),
        )
