"""The certificate is issued for a signed CERTIFIED or CERTIFIED_WITH_FINDINGS run, and refused
(exit 2, one line) for every other verdict, a partial or lab run, and a tampered bundle."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from report_builders import clauses, make_report

from conformance.authority.bundle import build_bundle, read_members
from conformance.authority.certificate import (
    CertificateRefused,
    certificate_for,
    find_browser,
    print_pdf,
    render_certificate,
    write_certificate,
)
from conformance.authority.keys import init_keys, load_signing_key, load_verifying_key, sm3_hex
from conformance.authority.waivers import load_waivers, sign_waivers
from conformance.cli import main
from conformance.report import write_reports
from conformance.report.integrity import seal
from conformance.report.model import RunReport, Verdict

PASSPHRASE = b"correct horse battery"
ISSUED = date(2026, 12, 1)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the authority's key pair."""
    folder = tmp_path_factory.mktemp("authority")
    init_keys(folder, PASSPHRASE)
    return folder


def _signed(folder: Path, authority: Path, report: RunReport, **edits: Any) -> Path:
    run = folder / "run"
    paths = write_reports(report, run)
    if edits:
        document = json.loads(paths["report.json"].read_text(encoding="utf-8"))
        document.update(edits)
        paths["report.json"].write_text(json.dumps(seal(document)), encoding="utf-8")
    key = load_signing_key(authority / "authority.key.pem", PASSPHRASE)
    bundle, _ = build_bundle(run, key)
    return bundle


def _issue(bundle: Path, authority: Path) -> Any:
    pubkey = load_verifying_key(authority / "authority.pub.pem")
    return certificate_for(bundle, pubkey, issued_on=ISSUED)


def test_a_certified_run_gets_a_one_page_bilingual_certificate(
    authority: Path, tmp_path: Path
) -> None:
    bundle = _signed(tmp_path, authority, make_report())
    certificate = _issue(bundle, authority)
    assert certificate.verdict == "CERTIFIED"
    assert certificate.node_id == "330000"
    assert certificate.level == "provincial"
    assert certificate.valid_until == "2027-12-01"
    assert certificate.bundle_sm3 == sm3_hex(bundle.read_bytes())
    report_json = json.loads(read_members(bundle)["report.json"])
    assert certificate.report_sm3 == report_json["integrity"]["digest"]
    assert certificate.number == f"ATS-330000-20261201-{certificate.bundle_sm3[:8].upper()}"
    page = render_certificate(certificate)
    for text in (
        certificate.number,
        certificate.bundle_sm3,
        certificate.profile_digest,
        "数据共享交换节点符合性证书",
        "Certificate of conformance",
        "有效期至 Valid until",
        f"conformance report verify {bundle.name} --pubkey authority.pub.pem",
    ):
        assert text in page
    assert "<script" not in page
    written = write_certificate(certificate, tmp_path / "certificate")
    stored = json.loads(written["certificate.json"].read_text(encoding="utf-8"))
    assert stored == certificate.to_dict()


def test_a_run_with_findings_gets_a_certificate_saying_so(authority: Path, tmp_path: Path) -> None:
    should = next(c.id for c in clauses() if c.level == "SHOULD")
    bundle = _signed(tmp_path, authority, make_report({should: Verdict.FAIL}))
    certificate = _issue(bundle, authority)
    assert certificate.verdict == "CERTIFIED_WITH_FINDINGS"
    assert "CERTIFIED WITH FINDINGS" in render_certificate(certificate)


def _must() -> str:
    return next(c.id for c in clauses() if c.level == "MUST")


@pytest.mark.parametrize(
    ("build", "edits", "refusal"),
    [
        (lambda: make_report({_must(): Verdict.FAIL}), {}, "the run is NOT_CERTIFIED"),
        (lambda: make_report(lab=True), {}, "lab run (plain HTTP), LAB_CONFORMANT"),
        (lambda: make_report(partial=True), {}, "partial run (selected clauses)"),
        (lambda: make_report(), {"verdict": "INCOMPLETE"}, "the run is INCOMPLETE"),
    ],
    ids=["not-certified", "lab-conformant", "partial", "incomplete"],
)
def test_no_certificate_for_a_run_that_is_not_certified(
    build: Any, edits: dict[str, Any], refusal: str, authority: Path, tmp_path: Path
) -> None:
    bundle = _signed(tmp_path, authority, build(), **edits)
    with pytest.raises(CertificateRefused, match=re.escape(refusal)):
        _issue(bundle, authority)


def test_no_certificate_for_a_report_whose_verdict_was_rewritten(
    authority: Path, tmp_path: Path
) -> None:
    report = make_report({_must(): Verdict.FAIL})
    bundle = _signed(tmp_path, authority, report, verdict="CERTIFIED")
    with pytest.raises(
        CertificateRefused, match="states CERTIFIED, its clauses give NOT_CERTIFIED"
    ):
        _issue(bundle, authority)


@pytest.mark.parametrize(
    ("profile", "refusal"),
    [
        ("rehearsal-provincial", "profile rehearsal-provincial is not a packaged profile"),
        ("provincial", "not the packaged provincial"),
    ],
    ids=["rehearsal-profile", "edited-packaged-profile"],
)
def test_no_certificate_for_a_run_against_another_profile_than_the_packaged_one(
    profile: str, refusal: str, authority: Path, tmp_path: Path
) -> None:
    # The rehearsal profile's load windows last seconds (docs/harness.md): CERTIFIED by its
    # own plan, never a certificate; nor a packaged name whose plan was edited.
    report = replace(make_report(), profile=profile, profile_digest="0f" * 32)
    bundle = _signed(tmp_path, authority, report)
    with pytest.raises(CertificateRefused, match=re.escape(refusal)):
        _issue(bundle, authority)


def test_no_certificate_for_a_bundle_another_key_signed(authority: Path, tmp_path: Path) -> None:
    bundle = _signed(tmp_path, authority, make_report())
    other = tmp_path / "other"
    init_keys(other, PASSPHRASE)
    with pytest.raises(CertificateRefused, match="not what the authority signed"):
        _issue(bundle, other)


def test_the_command_refuses_in_one_line_and_issues_otherwise(
    authority: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = str(authority / "authority.pub.pem")
    refused = _signed(tmp_path / "a", authority, make_report({_must(): Verdict.FAIL}))
    assert main(["certificate", "issue", str(refused), "--pubkey", pub]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "NOT_CERTIFIED" in err
    assert not (refused.parent / "certificate.html").exists()
    bundle = _signed(tmp_path / "b", authority, make_report())
    issue = ["certificate", "issue", str(bundle), "--pubkey", pub, "--date", "2026-12-01"]
    assert main([*issue, "--validity-days", "30", "--operator", "浙江省大数据发展管理局"]) == 0
    out = capsys.readouterr().out
    assert "valid 2026-12-01 → 2026-12-31" in out
    stored = json.loads((bundle.parent / "certificate.json").read_text(encoding="utf-8"))
    assert stored["operator"] == "浙江省大数据发展管理局"


@pytest.mark.skipif(find_browser() is None, reason="headless Chromium is not installed")
def test_the_certificate_prints_to_pdf_and_opens_in_a_browser(
    authority: Path, tmp_path: Path
) -> None:
    certificate = _issue(_signed(tmp_path, authority, make_report()), authority)
    page = write_certificate(certificate, tmp_path / "out")["certificate.html"]
    browser = find_browser()
    assert browser is not None
    pdf = print_pdf(page, tmp_path / "out" / "certificate.pdf", browser)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"--user-data-dir={tmp_path / 'profile'}", page.as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    assert certificate.number in dom


@pytest.mark.skipif(find_browser() is None, reason="headless Chromium is not installed")
def test_no_pdf_of_boxes_where_no_font_covers_chinese(
    authority: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A fontconfig that knows no font at all: the PDF would print the Chinese half as boxes.
    config = tmp_path / "fonts.conf"
    config.write_text("<?xml version='1.0'?><fontconfig></fontconfig>\n", encoding="utf-8")
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    bundle = _signed(tmp_path, authority, make_report())
    pub = str(authority / "authority.pub.pem")
    assert main(["certificate", "issue", str(bundle), "--pubkey", pub]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no font for Chinese" in err
    assert (bundle.parent / "certificate.html").is_file()
    assert not (bundle.parent / "certificate.pdf").exists()


def test_no_certificate_when_a_vendor_key_signed_the_waivers_of_the_run(
    authority: Path, tmp_path: Path
) -> None:
    """A vendor that passes its own key as --authority-pubkey gets WAIVED in its report, but the
    report names the signer, and the authority issues no certificate on it."""
    vendor = tmp_path / "vendor"
    init_keys(vendor, PASSPHRASE)
    waivers = tmp_path / "waivers.yaml"
    entry = {
        "clause": _must(),
        "node_id": "330000",
        "reason": "r",
        "approver": "vendor",
        "ticket": "T-1",
        "expires": "2099-01-01",
    }
    waivers.write_text(yaml.safe_dump({"waivers": [entry]}), encoding="utf-8")
    sign_waivers(waivers, load_signing_key(vendor / "authority.key.pem", PASSPHRASE))
    report = load_waivers(waivers, load_verifying_key(vendor / "authority.pub.pem")).apply(
        make_report({_must(): Verdict.FAIL})
    )
    assert report.verdict.value == "CERTIFIED_WITH_FINDINGS"
    bundle = _signed(tmp_path, authority, report)
    with pytest.raises(CertificateRefused, match="waivers were not signed by this authority key"):
        _issue(bundle, authority)
