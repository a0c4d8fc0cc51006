"""`conformance load` and `--workers` reach the load stage through the run's options."""

from __future__ import annotations

import pytest

from conformance.cli import build_parser
from conformance.options import RunOptions


def _options(argv: list[str]) -> RunOptions:
    return RunOptions.from_cli(build_parser().parse_args(argv))


def test_workers_of_a_run_reach_the_plugin() -> None:
    assert _options(["run", "--target", "t.yaml", "--workers", "3"]).workers == 3


def test_a_run_without_workers_leaves_them_to_the_load_profile() -> None:
    assert _options(["run", "--target", "t.yaml"]).workers is None


def test_the_load_command_is_a_run_of_chapter_perf_only(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["load", "--target", "t.yaml", "--mode", "smoke", "-q"])
    runs: list[RunOptions] = []
    monkeypatch.setattr("conformance.runner.run", lambda options: runs.append(options) or 0)
    args.handler(args)
    (options,) = runs
    assert (options.target, options.only, options.load_mode) == ("t.yaml", ("PERF",), "smoke")
    assert (options.lab, options.profile, options.quiet) == (False, None, True)


def test_a_certification_run_measures_load_in_full_by_default() -> None:
    assert _options(["run", "--target", "t.yaml"]).load_mode == "full"


def test_the_embedded_run_measures_load_in_smoke_mode_by_default() -> None:
    assert _options(["run"]).load_mode == "smoke"
    assert _options(["run", "--load", "off"]).load_mode == "off"


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_a_worker_count_below_one_is_refused(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "--workers", count])
    assert exit_info.value.code == 2
    assert "--workers" in capsys.readouterr().err
