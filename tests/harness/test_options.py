"""One table of run options drives both interfaces: `conformance run` (argparse) and the pytest
plugin have every option of ``RunOptions`` with its flags and its default, and a plain pytest
run reaches the same plan as the command line would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness_servers import closed_port

from conformance.authority.keys import init_keys, load_signing_key
from conformance.authority.waivers import sign_waivers
from conformance.cli import build_parser
from conformance.options import LOAD_MODES, RunOptions, flags_of, pytest_dest
from conformance.plugin import AtsSession
from conformance.run_plan import Plan

NAMES = [f.name for f in fields(RunOptions)]
CLI = [n for n in NAMES if flags_of(n).cli]
PYTEST = [n for n in NAMES if flags_of(n).pytest]


def _parsed_default(name: str) -> Any:
    default = next(f.default for f in fields(RunOptions) if f.name == name)
    return list(default) if isinstance(default, tuple) else default


def _signed_waivers(folder: Path) -> tuple[Path, Path]:
    """A waivers file signed by a new authority key in ``folder``, and that key's public half."""
    passphrase = b"correct horse battery"
    private, public = init_keys(folder, passphrase)
    waivers = folder / "waivers.yaml"
    entry = {
        "clause": "ATS-NODE-05",
        "node_id": "330000",
        "reason": "the clock is set by the provincial time service",
        "approver": "王审核",
        "ticket": "CERT-2026-001",
        "expires": "2099-12-31",
    }
    waivers.write_text(yaml.safe_dump({"waivers": [entry]}, allow_unicode=True), "utf-8")
    sign_waivers(waivers, load_signing_key(private, passphrase))
    return waivers, public


def _value(name: str, target: Path) -> tuple[list[str], Any]:
    """A value to give option ``name`` on a command line, and what the option holds then."""
    default = next(f.default for f in fields(RunOptions) if f.name == name)
    if isinstance(default, bool):
        return [], True
    folder = target.parent / "authority"
    if not folder.is_dir():
        folder.mkdir()
        _signed_waivers(folder)
    special = {
        "waivers": str(folder / "waivers.yaml"),
        "authority_pubkey": str(folder / "authority.pub.pem"),
        "target": str(target),
        "only": "NODE",
        "load": "off",
        "workers": "3",
        "load_remote": "2@127.0.0.1:5557",
        "profile": "provincial",
        "report_dir": str(target.parent / "out"),
        "pytest_arg": "-x",
    }
    text = special[name]
    held: Any = int(text) if name == "workers" else text
    return [text], ((held,) if isinstance(default, tuple) else held)


def test_every_option_has_a_flag_in_at_least_one_interface() -> None:
    assert set(CLI) | set(PYTEST) == set(NAMES)
    assert {"target", "profile", "report_dir", "only", "load", "lab", "workers", "quiet"} <= set(
        CLI
    ) & set(PYTEST)
    assert flags_of("load").choices == LOAD_MODES


def test_the_run_command_has_every_cli_option_with_the_tables_default() -> None:
    args = build_parser().parse_args(["run"])
    for name in CLI:
        assert getattr(args, name) == _parsed_default(name), name
    assert RunOptions.from_cli(args) == RunOptions()


def test_the_plugin_has_every_pytest_option_with_the_tables_default(
    pytestconfig: pytest.Config,
) -> None:
    # This very run loads the plugin (entry point pytest11) without --target.
    for name in PYTEST:
        assert pytestconfig.getoption(pytest_dest(name)) == _parsed_default(name), name
    assert RunOptions.from_pytest(pytestconfig.getoption) == RunOptions()


@pytest.mark.parametrize("which", [0, -1], ids=["first flag", "last flag"])
def test_every_cli_flag_reaches_its_option(which: int, tmp_path: Path) -> None:
    for name in CLI:
        values, held = _value(name, tmp_path / "target.yaml")
        flag = flags_of(name).cli[which]
        # flag=value: the value of --pytest-arg starts with a dash.
        args = build_parser().parse_args(["run", *([f"{flag}={v}" for v in values] or [flag])])
        assert getattr(RunOptions.from_cli(args), name) == held, name


class _Capture:
    """Keeps the plan the plugin built in a nested pytest run."""

    plan: Plan | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        session = config.pluginmanager.get_plugin("ats_session")
        self.plan = session.plan if isinstance(session, AtsSession) else None


@pytest.mark.parametrize("which", [0, -1], ids=["first flag", "last flag"])
def test_every_pytest_flag_reaches_the_plan(
    which: int, tmp_path: Path, write_target: Callable[..., Path]
) -> None:
    target = write_target(closed_port())
    argv: list[str] = []
    for name in PYTEST:
        values, _ = _value(name, target)
        argv += [flags_of(name).pytest[which], *values]
    capture = _Capture()
    # An empty ini file: the suite's own addopts (pytest-xdist workers) stay out.
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    argv += ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
    status = pytest.main(
        [*argv, "-p", "no:cacheprovider", "-p", "no:locust", "--collect-only", "-q", str(tmp_path)],
        plugins=[capture],
    )
    assert status == pytest.ExitCode.OK
    plan = capture.plan
    assert plan is not None
    assert plan.target.source == str(target)
    assert (plan.profile.name, plan.selection, plan.load_mode, plan.lab) == (
        "provincial",
        ("NODE",),
        "off",
        True,
    )
    assert plan.report_dir == tmp_path / "out"
    assert (plan.load_workers, plan.load_remote and plan.load_remote.spec()) == (
        3,
        "2@127.0.0.1:5557",
    )
    # --ats-progress with --ats-quiet: only the summary.
    assert plan.progress is False
    assert plan.thorough is True
    assert plan.waivers is not None
