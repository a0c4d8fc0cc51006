"""Bad command lines and report folders: exit 2 with one line, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import build_parser, main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "--load", "sometimes"], "invalid choice: 'sometimes'"),
        (["run", "--workers", "0"], "must be at least 1"),
        (["serve", "--base-port", "many"], "invalid int value"),
    ],
    ids=["an unknown option", "an unknown load mode", "no workers", "a port that is no number"],
)
def test_a_bad_command_line_is_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert says in lines[0]
    assert "--help" in lines[0]


@pytest.mark.parametrize(
    ("under", "says"),
    [("a-file", "is a file, not a folder"), ("a-file/sub", "cannot write there")],
    ids=["a file", "a folder under a file"],
)
def test_an_unusable_report_dir_is_one_line_and_exit_2(
    tmp_path: Path, under: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / under
    assert main(["run", "--report-dir", str(folder)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert says in lines[0]
    assert str(folder) in lines[0]


def test_only_takes_several_names_at_once() -> None:
    args = build_parser().parse_args(["run", "--only", "NODE", "AUTH", "--only", "CAT-01"])
    assert args.only == ["NODE", "AUTH", "CAT-01"]
