"""Waivers: a FAIL the authority accepted reads WAIVED in every report; anything else is ignored
and the report says why."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from report_builders import clauses, make_report

from conformance.authority.keys import init_keys, load_signing_key, load_verifying_key
from conformance.authority.waivers import (
    WaiverFileError,
    load_waivers,
    sign_waivers,
    signature_path,
)
from conformance.cli import main
from conformance.report import write_reports
from conformance.report.html import render_html
from conformance.report.markdown import render_summary
from conformance.report.model import RunReport, RunVerdict, Verdict

PASSPHRASE = b"correct horse battery"
NODE = "330000"  # the node report_builders' runs certify; they start on 2026-11-25


def _must(index: int = 0) -> str:
    return [c.id for c in clauses() if c.level == "MUST"][index]


def _waiver(clause: str, **changes: str) -> dict[str, str]:
    entry = {
        "clause": clause,
        "node_id": NODE,
        "reason": "fixed in release 2.4, deployed after the audit",
        "approver": "王审核",
        "ticket": "CERT-2026-118",
        "expires": "2027-01-31",
    }
    return {**entry, **changes}


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the authority's key pair."""
    folder = tmp_path_factory.mktemp("authority")
    init_keys(folder, PASSPHRASE)
    return folder


def _file(folder: Path, *entries: dict[str, str], key: Path | None = None) -> Path:
    path = folder / "waivers.yaml"
    path.write_text(yaml.safe_dump({"waivers": list(entries)}, allow_unicode=True), "utf-8")
    if key is not None:
        sign_waivers(path, load_signing_key(key / "authority.key.pem", PASSPHRASE))
    return path


def _apply(path: Path, authority: Path, report: RunReport) -> RunReport:
    waivers = load_waivers(path, load_verifying_key(authority / "authority.pub.pem"))
    return waivers.apply(report)


def _failing(*ids: str, verdict: Verdict = Verdict.FAIL) -> RunReport:
    return make_report(dict.fromkeys(ids, verdict))


def test_a_signed_waiver_turns_a_must_fail_into_waived_in_every_report(
    authority: Path, tmp_path: Path
) -> None:
    clause = _must()
    report = _failing(clause)
    assert report.verdict is RunVerdict.NOT_CERTIFIED
    waived = _apply(_file(tmp_path, _waiver(clause), key=authority), authority, report)
    assert waived.verdict is RunVerdict.CERTIFIED_WITH_FINDINGS
    assert "1 FAIL waived" in waived.headline()

    paths = write_reports(waived, tmp_path / "run")
    document = json.loads(paths["report.json"].read_text(encoding="utf-8"))
    (entry,) = [c for c in document["clauses"] if c["id"] == clause]
    assert entry["verdict"] == "FAIL"
    assert entry["waiver"]["approver"] == "王审核"
    assert entry["waiver"]["expires"] == "2027-01-31"
    assert document["verdict"] == "CERTIFIED_WITH_FINDINGS"
    assert (
        document["waivers"]["signer"]
        == load_verifying_key(authority / "authority.pub.pem").fingerprint
    )
    assert RunReport.from_dict(document).verdict is RunVerdict.CERTIFIED_WITH_FINDINGS

    page = render_html(waived)
    assert 'class="v WAIVED"' in page
    assert "已豁免" in page
    assert "王审核" in page
    assert "2027-01-31" in page

    summary = render_summary(waived)
    assert f"| {clause} | MUST | WAIVED (王审核, until 2027-01-31) |" in summary

    tree = ET.parse(paths["junit.xml"])
    (case,) = [c for c in tree.iter("testcase") if c.get("name", "").startswith(clause + " ")]
    skipped = case.find("skipped")
    assert skipped is not None
    assert "WAIVED by 王审核 (CERT-2026-118) until 2027-01-31" in skipped.get("message", "")
    assert case.find("failure") is None


def _ignored(report: RunReport) -> list[str]:
    return [entry["why"] for entry in report.waivers["ignored"]]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"expires": "2026-11-24"}, "expired on 2026-11-24 (the run is of 2026-11-25)"),
        ({"node_id": "330100"}, "for node 330100; this run certifies node 330000"),
        ({"approver": ""}, "missing approver"),
        ({"expires": "soon"}, "expires: 'soon' is not a date (YYYY-MM-DD)"),
    ],
)
def test_a_waiver_that_does_not_fit_the_run_is_ignored_with_why(
    changes: dict[str, str], why: str, authority: Path, tmp_path: Path
) -> None:
    clause = _must()
    path = _file(tmp_path, _waiver(clause, **changes))
    # A malformed entry cannot be signed; sign the file as the authority would sign anything.
    signature = load_signing_key(authority / "authority.key.pem", PASSPHRASE).sign(
        path.read_bytes()
    )
    signature_path(path).write_text(json.dumps(signature), encoding="utf-8")
    report = _apply(path, authority, _failing(clause))
    assert report.verdict is RunVerdict.NOT_CERTIFIED
    assert _ignored(report) == [why]
    assert not any(r.waived for r in report.clauses)
    assert why in html.unescape(render_html(report))
    assert why in render_summary(report)


def test_a_waiver_expiring_on_the_day_of_the_run_still_applies(
    authority: Path, tmp_path: Path
) -> None:
    clause = _must()
    path = _file(tmp_path, _waiver(clause, expires="2026-11-25"), key=authority)
    assert _apply(path, authority, _failing(clause)).verdict is RunVerdict.CERTIFIED_WITH_FINDINGS


def test_an_unsigned_waivers_file_is_ignored(authority: Path, tmp_path: Path) -> None:
    clause = _must()
    report = _apply(_file(tmp_path, _waiver(clause)), authority, _failing(clause))
    assert report.verdict is RunVerdict.NOT_CERTIFIED
    assert _ignored(report) == ["the waivers file is not signed (no waivers.yaml.sig)"]
    assert report.waivers["signer"] is None


def test_a_vendor_cannot_waive_its_own_findings(authority: Path, tmp_path: Path) -> None:
    """A waivers file signed with any key but the authority's is ignored."""
    vendor = tmp_path / "vendor"
    init_keys(vendor, PASSPHRASE)
    clause = _must()
    report = _apply(_file(tmp_path, _waiver(clause), key=vendor), authority, _failing(clause))
    assert report.verdict is RunVerdict.NOT_CERTIFIED
    (why,) = _ignored(report)
    assert why.startswith("the waivers file is not signed by the authority key")


def test_a_waivers_file_changed_after_signing_is_ignored(authority: Path, tmp_path: Path) -> None:
    clause, other = _must(0), _must(1)
    path = _file(tmp_path, _waiver(clause), key=authority)
    path.write_text(path.read_text(encoding="utf-8").replace(clause, other), encoding="utf-8")
    report = _apply(path, authority, _failing(other))
    assert report.verdict is RunVerdict.NOT_CERTIFIED
    assert "not signed by the authority key" in _ignored(report)[0]


@pytest.mark.parametrize("verdict", [Verdict.PASS, Verdict.ERROR])
def test_only_a_fail_is_waived(verdict: Verdict, authority: Path, tmp_path: Path) -> None:
    clause = _must()
    report = _failing(clause, verdict=verdict)
    applied = _apply(_file(tmp_path, _waiver(clause), key=authority), authority, report)
    assert applied.verdict is report.verdict
    assert _ignored(applied) == [f"{clause} is {verdict.value} in this run: only a FAIL is waived"]


def test_a_waived_fail_never_makes_a_run_certified(authority: Path, tmp_path: Path) -> None:
    should = next(c.id for c in clauses() if c.level == "SHOULD")
    applied = _apply(_file(tmp_path, _waiver(should), key=authority), authority, _failing(should))
    assert applied.verdict is RunVerdict.CERTIFIED_WITH_FINDINGS


def test_a_malformed_waiver_is_never_signed(authority: Path, tmp_path: Path) -> None:
    path = _file(tmp_path, _waiver(_must(), ticket=""))
    key = load_signing_key(authority / "authority.key.pem", PASSPHRASE)
    with pytest.raises(WaiverFileError, match=r"waivers\[0\]: missing ticket; not signed"):
        sign_waivers(path, key)
    assert not signature_path(path).exists()


def test_the_command_line_signs_waivers_and_the_run_takes_them_in_pairs(
    authority: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATS_AUTHORITY_PASSPHRASE", PASSPHRASE.decode())
    path = _file(tmp_path, _waiver(_must()))
    key = str(authority / "authority.key.pem")
    sign = ["waivers", "sign", str(path), "--key", key]
    assert main([*sign, "--passphrase-env", "ATS_AUTHORITY_PASSPHRASE"]) == 0
    assert signature_path(path).is_file()
    capsys.readouterr()
    assert main(["run", "--waivers", str(path)]) == 2
    assert "--waivers and --authority-pubkey go together" in capsys.readouterr().err
    missing = str(tmp_path / "no-such.pub.pem")
    assert main(["run", "--waivers", str(path), "--authority-pubkey", missing]) == 2
    assert "no-such.pub.pem: cannot read" in capsys.readouterr().err
    pub = str(authority / "authority.pub.pem")
    assert main(["run", "--waivers", str(tmp_path / "none.yaml"), "--authority-pubkey", pub]) == 2
    assert "none.yaml: cannot read" in capsys.readouterr().err
