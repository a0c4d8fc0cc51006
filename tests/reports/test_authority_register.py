"""The register: certificates recorded in SQLite, listed by expiry and by node, revoked with a
reason; `report diff` compares a node's last certified bundle with a new run."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from report_builders import clauses, make_report

from conformance.authority.bundle import build_bundle
from conformance.authority.certificate import (
    Certificate,
    certificate_for,
    read_certificate,
    write_certificate,
)
from conformance.authority.keys import init_keys, load_signing_key, load_verifying_key
from conformance.authority.register import Register, RegisterError
from conformance.cli import main
from conformance.report import write_reports
from conformance.report.model import Verdict

PASSPHRASE = b"correct horse battery"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the authority's key pair."""
    folder = tmp_path_factory.mktemp("authority")
    init_keys(folder, PASSPHRASE)
    return folder


def _certified(folder: Path, authority: Path, issued_on: date, days: int = 365) -> Path:
    """A signed bundle of a clean run and its certificate.json; answers the latter's path."""
    write_reports(make_report(), folder / "run")
    key = load_signing_key(authority / "authority.key.pem", PASSPHRASE)
    bundle, _ = build_bundle(folder / "run", key)
    pubkey = load_verifying_key(authority / "authority.pub.pem")
    certificate = certificate_for(bundle, pubkey, issued_on=issued_on, validity_days=days)
    return write_certificate(certificate, bundle.parent)["certificate.json"]


def test_the_register_keeps_a_nodes_history_and_what_expires(
    authority: Path, tmp_path: Path
) -> None:
    today = date.today()
    register = Register(tmp_path / "register.sqlite")
    old = _certified(tmp_path / "a", authority, today - timedelta(days=400))
    soon = _certified(tmp_path / "b", authority, today - timedelta(days=340))
    for path in (old, soon):
        data = json.loads(path.read_text(encoding="utf-8"))
        register.add(Certificate(**data), path.parent / data["bundle_file"])
    history = register.history("330000")
    assert [e.status(today) for e in history] == ["expired", "valid"]
    (expiring,) = register.expiring(30, today)
    assert expiring.number == history[1].number
    assert register.expiring(10, today) == []
    assert register.last_certified("330000", today).number == history[1].number
    with pytest.raises(RegisterError, match="already in the register"):
        register.add(Certificate(**json.loads(soon.read_text(encoding="utf-8"))), soon)


def test_a_revoked_certificate_says_when_and_why_and_stays_revoked(
    authority: Path, tmp_path: Path
) -> None:
    today = date.today()
    register = Register(tmp_path / "register.sqlite")
    path = _certified(tmp_path / "a", authority, today)
    certificate = read_certificate(path)
    register.add(certificate, path.parent / certificate.bundle_file)
    with pytest.raises(RegisterError, match="needs its reason"):
        register.revoke(certificate.number, "  ")
    entry = register.revoke(certificate.number, "node replaced without re-certification")
    assert entry.status(today) == "revoked"
    assert "revoked on" in entry.line(today)
    assert "node replaced without re-certification" in entry.line(today)
    assert register.expiring(400, today) == []
    with pytest.raises(RegisterError, match="no valid certificate"):
        register.last_certified("330000", today)
    with pytest.raises(RegisterError, match="was revoked on"):
        register.revoke(certificate.number, "again")


def test_the_register_commands_and_a_diff_against_the_last_certified_run(
    authority: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(tmp_path / "register.sqlite")]
    path = _certified(tmp_path / "a", authority, date.today())
    number = json.loads(path.read_text(encoding="utf-8"))["number"]
    assert main(["register", "add", str(path), *db]) == 0
    assert main(["register", "add", str(path), *db]) == 2
    assert "already in the register" in capsys.readouterr().err
    assert main(["register", "list", "--node", "330000", *db]) == 0
    assert f"{number}  node 330000 (provincial)  CERTIFIED" in capsys.readouterr().out
    assert main(["register", "list", "--expiring", "400", *db]) == 0
    assert number in capsys.readouterr().out
    assert main(["register", "show", number, *db]) == 0
    assert "status: valid" in capsys.readouterr().out
    assert main(["register", "last", "330000", *db]) == 0
    last = capsys.readouterr().out.strip()
    assert last.endswith("evidence-bundle.tar.gz")

    must = next(c.id for c in clauses() if c.level == "MUST")
    new = write_reports(make_report({must: Verdict.FAIL}), tmp_path / "new")["report.json"]
    assert main(["report", "diff", last, str(new)]) == 1
    out = capsys.readouterr().out
    assert must in out
    assert last in out

    assert main(["register", "revoke", number, "--reason", "superseded", *db]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["register", "show", "NO-SUCH", *db]) == 2
    assert "no certificate NO-SUCH" in capsys.readouterr().err


def test_a_certificate_whose_bundle_was_replaced_is_not_recorded(
    authority: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _certified(tmp_path / "a", authority, date.today())
    bundle = path.parent / json.loads(path.read_text(encoding="utf-8"))["bundle_file"]
    bundle.write_bytes(bundle.read_bytes() + b"\0")
    assert main(["register", "add", str(path), "--db", str(tmp_path / "r.sqlite")]) == 2
    assert "not the bundle certificate" in capsys.readouterr().err
