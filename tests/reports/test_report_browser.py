"""report.html in a real browser: it loads without console errors and shows the verdict.

Uses headless Chromium (Debian's ``chromium`` package); skipped where no browser is installed.
The page is opened from a file with networking disabled, as an officer on an isolated network
would open it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from report_builders import HOSTILE, clauses, exchange, load_results, make_report

from conformance.profile import load_clauses
from conformance.report.html import labels, write_html
from conformance.report.model import Verdict

_BROWSER = next((b for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(
    _BROWSER is None, reason="headless Chromium is not installed (apt-get install chromium)"
)


def _open(page: Path, profile: Path) -> tuple[str, str]:
    """The DOM after the page's script ran, and the browser's log (console messages included)."""
    assert _BROWSER is not None
    done = subprocess.run(
        [
            _BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_the_report_loads_cleanly_and_shows_the_verdict(tmp_path: Path) -> None:
    failing = next(c.id for c in clauses() if c.level == "MUST")
    report = make_report(
        verdicts={failing: Verdict.FAIL},
        evidence={failing: [exchange(HOSTILE, status=200), {"note": HOSTILE}]},
        load=load_results(),
    )
    page = write_html(report, tmp_path / "report.html")
    dom, log = _open(page, tmp_path / "profile")
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Refused" in line]
    assert console == []
    assert 'data-verdict="NOT_CERTIFIED"' in dom
    assert labels()["run_verdicts"]["NOT_CERTIFIED"]["zh"] in dom
    # The filter script ran (it reveals the filter bar) and the node's script did not.
    assert '<div class="filters" id="filters">' in dom
    assert "pwned" not in dom.split("</title>")[0]
    assert f'<strong id="filter-shown">{len(report.clauses)}</strong>' in dom


def test_the_officer_sees_findings_first_with_the_clause_text_in_both_languages(
    tmp_path: Path,
) -> None:
    failing = next(c for c in load_clauses() if c.level == "MUST")
    report = make_report(
        verdicts={failing.id: Verdict.FAIL}, evidence={failing.id: [exchange('{"a": 1}')]}
    )
    dom, log = _open(write_html(report, tmp_path / "report.html"), tmp_path / "profile")
    assert [line for line in log.splitlines() if "CONSOLE" in line] == []
    assert dom.index('id="findings"') < dom.index('id="target"') < dom.index('id="clause-table"')
    findings = dom[dom.index('id="findings"') : dom.index('id="target"')]
    assert failing.summary.en.split(" ")[0] in findings
    assert failing.summary.zh[:6] in findings
    assert 'class="exchange decisive"' in findings
    assert labels()["run_verdicts"]["NOT_CERTIFIED"]["zh"] + "：" in dom
