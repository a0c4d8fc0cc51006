"""report.json carries an SM3 digest of its content; ``conformance report verify`` checks it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_builders import make_report

from conformance.cli import main
from conformance.report import write_reports
from conformance.report.integrity import (
    Integrity,
    canonical_bytes,
    content_digest,
    seal,
    verify_document,
    verify_file,
)
from conformance.report.json_writer import write_json
from conformance.signing import body_digest


@pytest.fixture
def report_json(tmp_path: Path) -> Path:
    return write_json(make_report(lab=True), tmp_path / "report.json")


def test_the_written_report_is_sealed_with_sm3(report_json: Path) -> None:
    document = json.loads(report_json.read_text(encoding="utf-8"))
    stamp = document["integrity"]
    assert stamp["algorithm"] == "SM3"
    assert stamp["digest"] == body_digest(canonical_bytes(document), "HMAC-SM3")
    assert verify_file(report_json).state is Integrity.INTACT


def test_the_canonical_form_sorts_keys_without_whitespace_in_utf8() -> None:
    document = {"b": "认证", "a": [1, 2.5], "integrity": {"digest": "x"}}
    assert canonical_bytes(document) == '{"a":[1,2.5],"b":"认证"}'.encode()


def test_one_changed_character_is_detected(report_json: Path) -> None:
    text = report_json.read_text(encoding="utf-8")
    edited = text.replace('"verdict": "NOT_CERTIFIED"', '"verdict": "NOT_CERTIFIEd"', 1)
    if edited == text:
        edited = text.replace('"node_id": "330000"', '"node_id": "330001"', 1)
    assert edited != text
    report_json.write_text(edited, encoding="utf-8")
    assert verify_file(report_json).state is Integrity.EDITED


def test_every_single_character_edit_of_a_value_is_detected(report_json: Path) -> None:
    document = json.loads(report_json.read_text(encoding="utf-8"))
    for index, clause in enumerate(document["clauses"][:20]):
        edited = json.loads(json.dumps(document))
        edited["clauses"][index]["reason"] = clause["reason"][:-1] + "!"
        assert verify_document(edited).state is Integrity.EDITED, clause["id"]


def test_a_removed_digest_is_an_edit(report_json: Path) -> None:
    document = json.loads(report_json.read_text(encoding="utf-8"))
    del document["integrity"]
    assert verify_document(document).state is Integrity.EDITED


def test_layout_is_not_content(report_json: Path) -> None:
    document = json.loads(report_json.read_text(encoding="utf-8"))
    report_json.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    assert verify_file(report_json).state is Integrity.INTACT


def test_sealing_again_gives_the_same_digest(report_json: Path) -> None:
    document = json.loads(report_json.read_text(encoding="utf-8"))
    assert seal(document) == document
    assert content_digest(document) == document["integrity"]["digest"]


def test_the_run_writers_seal_report_json(tmp_path: Path) -> None:
    write_reports(make_report(), tmp_path)
    assert verify_file(tmp_path / "report.json").state is Integrity.INTACT


def test_verify_exits_0_1_2(report_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "verify", str(report_json)]) == 0
    assert "intact" in capsys.readouterr().out
    report_json.write_text(
        report_json.read_text(encoding="utf-8").replace("330000", "330001", 1), encoding="utf-8"
    )
    assert main(["report", "verify", str(report_json)]) == 1
    assert "edited" in capsys.readouterr().err
    report_json.write_text("{not json", encoding="utf-8")
    assert main(["report", "verify", str(report_json)]) == 2
    assert main(["report", "verify", str(report_json.with_name("absent.json"))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
