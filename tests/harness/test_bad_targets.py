"""Bad targets never hang or crash a run: ERROR or FAIL per clause, reports written."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from harness_servers import (
    dripping_port,
    http_answer,
    json_answer,
    serve,
)

from conformance.cli import main


@contextmanager
def answering(answer: Callable[[bytes], bytes]) -> Iterator[str]:
    with serve(answer) as (url, _):
        yield url


# Servers that answer, badly: judged (NOT_CERTIFIED). An address where nothing answers stops
# the run at preflight instead (INCOMPLETE, exit 2: tests/harness/test_preflight.py).
BAD_NODES: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "a server dripping its answer a byte at a time": dripping_port,
    "a server answering HTML": lambda: answering(
        lambda _: http_answer(200, b"<html><body>portal</body></html>", "text/html")
    ),
    "a server answering garbage": lambda: answering(lambda _: b"\x00\xffnot http at all\r\n\r\n"),
    "a 10 MB body": lambda: answering(lambda _: http_answer(200, b"[" + b"0," * 5_000_000 + b"0]")),
    "a redirect to another host": lambda: answering(
        lambda _: json_answer(302, {}, Location="http://192.0.2.1/api/v1/health")
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("make_node", list(BAD_NODES.values()), ids=list(BAD_NODES))
def test_a_bad_target_gives_errors_or_failures_and_reports(
    tmp_path: Path,
    write_target: Callable[..., Path],
    make_node: Callable[[], AbstractContextManager[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    reports = tmp_path / "reports"
    started = time.monotonic()
    with make_node() as url:
        status = main(
            ["run", "--target", str(write_target(url)), "--report-dir", str(reports),
             "--only", "NODE", "--load", "off", "--quiet"]
        )  # fmt: skip
    assert time.monotonic() - started < 45
    assert status == 1
    document = json.loads((reports / "report.json").read_text())
    assert document["verdict"] == "NOT_CERTIFIED"
    node = [c for c in document["clauses"] if c["chapter"] == "NODE"]
    assert node
    assert all(c["verdict"] in ("ERROR", "FAIL") and c["reason"] for c in node)
    # Whatever the node sent, every report is well formed and carries no control character.
    ET.parse(reports / "junit.xml")
    for name in ("report.json", "junit.xml", "summary.md", "report.html"):
        text = (reports / name).read_text(encoding="utf-8")
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text), name
    out = capsys.readouterr().out
    assert "NOT_CERTIFIED" in out
    assert str(reports / "report.json") in out
    # Quiet: the summary only, no clause-by-clause progress lines (with their durations).
    assert not re.search(r"ATS-NODE-01 +\w+ +[0-9.]+s", out)
