"""``conformance report allure DIR``: Allure's HTML report from DIR/allure-results, offline.

Generation needs the Allure 2 command line (``npm install allure-commandline``, Java 17): on
PATH or in ./node_modules/.bin. The test is skipped where it is absent; nothing is downloaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from report_builders import Page

from conformance.allure_report import find_allure
from conformance.cli import main

_ALLURE = find_allure()
_RUN_TIMEOUT_S = 120


def test_an_absent_command_line_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "allure-results").mkdir()
    missing = str(tmp_path / "no-such-allure")
    assert main(["report", "allure", str(tmp_path), "--allure", missing]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "npm install allure-commandline" in lines[0]


@pytest.mark.skipif(
    _ALLURE is None,
    reason="the allure command line is absent (npm install allure-commandline; needs Java 17)",
)
@pytest.mark.timeout(300)
def test_the_allure_report_is_one_offline_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = tmp_path / "test_sample.py"
    tests.write_text("def test_passes():\n    assert True\n", encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    report_dir = tmp_path / "reports"
    subprocess.run(
        [sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider",
         "-p", "no:locust", "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"),
         "--alluredir", str(report_dir / "allure-results")],
        cwd=tmp_path, capture_output=True, timeout=_RUN_TIMEOUT_S, check=True,
    )  # fmt: skip
    assert main(["report", "allure", str(report_dir)]) == 0
    index = report_dir / "allure-report" / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    assert sorted(p.name for p in index.parent.iterdir()) == ["index.html"]
    page = index.read_text(encoding="utf-8")
    assert "googletagmanager" not in page
    assert Page(page).external_references() == []


def test_a_folder_without_results_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", "allure", str(tmp_path)]
    if _ALLURE is None:
        argv += ["--allure", sys.executable]  # any command: the folder is checked first
    assert main(argv) == 2
    assert "allure-results" in capsys.readouterr().err
