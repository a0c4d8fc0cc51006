"""``conformance report assessment``: the monthly figures of real reference nodes.

Two reference nodes run as their own processes on loopback (started as the embedded default
starts them); a third target names a port nothing listens on. Every request is bounded by the
target's timeouts; only the nodes started here are contacted.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml
from report_builders import Page
from support.nodes import free_port

from conformance.cli import main
from conformance.figures import collect
from conformance.report.assessment import FIGURES, csv_header, write_assessment
from conformance.report.html import labels
from conformance.runner import embedded_files, reference_node
from conformance.target import load_target

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Target files of two running reference nodes and of a node that is down."""
    files = []
    with ExitStack() as stack:
        for name in ("first", "second"):
            node_file, target_file = embedded_files(tmp_path_factory.mktemp(name))
            stack.enter_context(reference_node(node_file, quiet=True))
            files.append(target_file)
        down = tmp_path_factory.mktemp("down") / "target.yaml"
        document = yaml.safe_load(files[0].read_text(encoding="utf-8"))
        document["node"]["base_url"] = f"http://127.0.0.1:{free_port()}"
        down.write_text(yaml.safe_dump(document), encoding="utf-8")
        files.append(down)
        yield files


def test_each_node_gives_its_figures_and_the_unreachable_one_an_error(
    targets: list[Path],
) -> None:
    rows = collect(targets)
    assert [r.source for r in rows] == [str(t) for t in targets]
    for row in rows[:2]:
        assert row.error == ""
        assert re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", row.period)
        assert set(row.figures) == set(FIGURES)
        assert row.figures["systems_integrated"] == 12
        assert 0 <= row.figures["connectivity_rate"] <= 1
        assert row.node_id == "330000"
        assert row.name
    assert rows[2].error
    assert rows[2].figures == {}


def test_the_report_is_markdown_html_and_csv_with_a_bom(
    targets: list[Path], tmp_path: Path
) -> None:
    rows = collect(targets)
    paths = write_assessment(rows, tmp_path, generated_at="2026-11-25T09:00:00+08:00")
    raw = paths["assessment.csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert table[0] == csv_header()
    assert "整合系统数 systems_integrated" in table[0]
    assert "系统联通率 connectivity_rate" in table[0]
    assert len(table) == 1 + len(rows)
    column = table[0].index("整合系统数 systems_integrated")
    assert [line[column] for line in table[1:]] == ["12", "12", ""]
    assert table[3][table[0].index("error")]

    markdown = paths["assessment.md"].read_text(encoding="utf-8")
    assert rows[0].period in markdown
    assert "协同应用数 collaborative_apps" in markdown

    page = paths["assessment.html"].read_text(encoding="utf-8")
    parsed = Page(page)
    assert parsed.external_references() == []
    assert parsed.scripts == []
    for figure in FIGURES:
        names = labels()["assessment"]["figures"][figure]
        assert names["zh"] in page
        assert names["en"] in page
    assert len(parsed.elements("tr", **{"class": "node"})) == 2
    assert len(parsed.elements("tr", **{"class": "node failed"})) == 1


def test_the_command_writes_the_report_and_exits_1_when_a_node_is_down(
    targets: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", "assessment", "--out", str(tmp_path)]
    assert main([*argv, "--target", str(targets[0]), "--target", str(targets[1])]) == 0
    out = capsys.readouterr().out
    assert "月度考核指标" in out
    assert str(tmp_path / "assessment.csv") in out
    assert main([*argv, "--target", str(targets[2]), "--target", str(tmp_path / "none")]) == 1
    assert (tmp_path / "assessment.html").is_file()


def test_no_secret_reaches_the_report(targets: list[Path], tmp_path: Path) -> None:
    paths = write_assessment(collect(targets), tmp_path)
    secrets = load_target(targets[0]).secrets()
    for path in paths.values():
        text = path.read_text(encoding="utf-8-sig")
        assert not [s for s in secrets if s in text]
