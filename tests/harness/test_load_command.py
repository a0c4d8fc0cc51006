"""`conformance load` and `--workers` reach the load stage as pytest options of the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import build_parser
from conformance.runner import RunOptions, pytest_arguments


def _arguments(argv: list[str]) -> list[str]:
    args = build_parser().parse_args(argv)
    return pytest_arguments(RunOptions.from_args(args), Path("target.yaml"), Path("home"))


def _option(arguments: list[str], name: str) -> list[str]:
    return [arguments[i + 1] for i, value in enumerate(arguments) if value == name]


def test_workers_of_a_run_reach_the_plugin() -> None:
    arguments = _arguments(["run", "--target", "t.yaml", "--workers", "3"])
    assert _option(arguments, "--ats-load-workers") == ["3"]


def test_a_run_without_workers_leaves_them_to_the_load_profile() -> None:
    assert "--ats-load-workers" not in _arguments(["run", "--target", "t.yaml"])


def test_the_load_command_is_a_run_of_chapter_perf_only(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["load", "--target", "t.yaml", "--mode", "smoke"])
    runs: list[RunOptions] = []
    monkeypatch.setattr("conformance.runner.run", lambda ns: runs.append(RunOptions.from_args(ns)))
    args.handler(args)
    (options,) = runs
    assert (options.only, options.load, options.lab) == (("PERF",), "smoke", False)


def test_a_certification_run_measures_load_in_full_by_default() -> None:
    assert _option(_arguments(["run", "--target", "t.yaml"]), "--ats-load") == ["full"]


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_a_worker_count_below_one_is_refused(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "--workers", count])
    assert exit_info.value.code == 2
    assert "--workers" in capsys.readouterr().err
