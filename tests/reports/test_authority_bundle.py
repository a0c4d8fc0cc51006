"""The authority signs a run's evidence bundle with SM2; anyone verifies it with the public key.

Every member of a bundle is tampered with in turn (changed, removed, and a member added), and
so is the detached signature; each verification names what changed.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from report_builders import make_report

from conformance.authority.bundle import (
    MANIFEST,
    BundleError,
    Check,
    build_bundle,
    read_members,
    signature_path,
    verify_bundle,
)
from conformance.authority.keys import (
    AuthorityKeyError,
    init_keys,
    load_signing_key,
    load_verifying_key,
)
from conformance.cli import main
from conformance.report import write_reports
from conformance.report.model import Verdict

PASSPHRASE = b"correct horse battery"
ALLURE_MEMBER = "allure-results/0001-result.json"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding an authority key pair."""
    folder = tmp_path_factory.mktemp("authority")
    init_keys(folder, PASSPHRASE)
    return folder


def _run_dir(folder: Path, **verdicts: Verdict) -> Path:
    run = folder / "run"
    write_reports(make_report({k.replace("_", "-"): v for k, v in verdicts.items()}), run)
    (run / "allure-results").mkdir()
    (run / ALLURE_MEMBER).write_text('{"name": "ATS-AUTH-05"}', encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def signed(authority: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed bundle of a clean run (read-only: tests copy it before tampering)."""
    run = _run_dir(tmp_path_factory.mktemp("signed"))
    key = load_signing_key(authority / "authority.key.pem", PASSPHRASE)
    bundle, _ = build_bundle(run, key)
    return bundle


def _copy(bundle: Path, folder: Path) -> Path:
    copy = folder / bundle.name
    shutil.copy(bundle, copy)
    shutil.copy(signature_path(bundle), signature_path(copy))
    return copy


def _rewrite(bundle: Path, members: dict[str, bytes]) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bundle.write_bytes(gzip.compress(raw.getvalue()))


def _flip_one_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def _verify(bundle: Path, authority: Path) -> tuple[Check, tuple[str, ...]]:
    result = verify_bundle(bundle, load_verifying_key(authority / "authority.pub.pem"))
    return result.state, result.lines


def test_a_signed_bundle_verifies_and_holds_every_report(signed: Path, authority: Path) -> None:
    state, lines = _verify(signed, authority)
    assert state is Check.VERIFIED, lines
    assert "node 330000, CERTIFIED" in lines[0]
    members = read_members(signed)
    assert set(members) == {
        MANIFEST,
        "report.json",
        "junit.xml",
        "report.html",
        "summary.md",
        ALLURE_MEMBER,
    }
    manifest = json.loads(members[MANIFEST])
    assert (
        manifest["run"]["report_sm3"] == json.loads(members["report.json"])["integrity"]["digest"]
    )


@pytest.mark.parametrize(
    "member",
    [MANIFEST, "report.json", "junit.xml", "report.html", "summary.md", ALLURE_MEMBER],
)
def test_one_changed_byte_in_any_member_is_named(
    member: str, signed: Path, authority: Path, tmp_path: Path
) -> None:
    bundle = _copy(signed, tmp_path)
    members = read_members(bundle)
    members[member] = _flip_one_byte(members[member])
    _rewrite(bundle, members)
    state, lines = _verify(bundle, authority)
    assert state is Check.TAMPERED
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{member}: changed")


@pytest.mark.parametrize("member", ["report.json", "summary.md", ALLURE_MEMBER])
def test_a_removed_member_is_named(
    member: str, signed: Path, authority: Path, tmp_path: Path
) -> None:
    bundle = _copy(signed, tmp_path)
    members = read_members(bundle)
    del members[member]
    _rewrite(bundle, members)
    state, lines = _verify(bundle, authority)
    assert state is Check.TAMPERED
    assert lines == (f"{member}: removed (listed in the manifest, absent from the archive)",)


def test_an_added_member_is_named(signed: Path, authority: Path, tmp_path: Path) -> None:
    bundle = _copy(signed, tmp_path)
    members = read_members(bundle)
    members["allure-results/extra-result.json"] = b"{}"
    _rewrite(bundle, members)
    state, lines = _verify(bundle, authority)
    assert state is Check.TAMPERED
    assert lines == (
        "allure-results/extra-result.json: added (in the archive, not in the manifest)",
    )


def test_a_removed_manifest_is_named(signed: Path, authority: Path, tmp_path: Path) -> None:
    bundle = _copy(signed, tmp_path)
    members = read_members(bundle)
    del members[MANIFEST]
    _rewrite(bundle, members)
    assert _verify(bundle, authority) == (
        Check.TAMPERED,
        (f"{MANIFEST}: removed from the archive",),
    )


def test_a_changed_signature_is_named(signed: Path, authority: Path, tmp_path: Path) -> None:
    bundle = _copy(signed, tmp_path)
    sig_file = signature_path(bundle)
    document = json.loads(sig_file.read_text(encoding="utf-8"))
    der = bytearray(base64.b64decode(document["signature"]))
    der[-1] ^= 0x01
    document["signature"] = base64.b64encode(bytes(der)).decode("ascii")
    sig_file.write_text(json.dumps(document), encoding="utf-8")
    state, lines = _verify(bundle, authority)
    assert state is Check.TAMPERED
    assert lines == (f"{sig_file.name}: changed (the signature does not verify)",)


def test_a_damaged_signature_file_is_unreadable(
    signed: Path, authority: Path, tmp_path: Path
) -> None:
    bundle = _copy(signed, tmp_path)
    signature_path(bundle).write_bytes(b"\x00garbage")
    state, lines = _verify(bundle, authority)
    assert state is Check.UNREADABLE
    assert "damaged" in lines[0]


def test_a_bundle_signed_by_another_key_does_not_verify(
    signed: Path, authority: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    init_keys(other, PASSPHRASE)
    state, lines = _verify(signed, other)
    assert state is Check.TAMPERED
    assert "not made with this public key" in lines[0]


def test_a_truncated_archive_is_unreadable(signed: Path, authority: Path, tmp_path: Path) -> None:
    bundle = _copy(signed, tmp_path)
    bundle.write_bytes(bundle.read_bytes()[:200])
    state, lines = _verify(bundle, authority)
    assert state is Check.UNREADABLE
    assert "damaged" in lines[0]


def test_the_same_run_makes_the_same_archive(authority: Path, tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    key = load_signing_key(authority / "authority.key.pem", PASSPHRASE)
    first, _ = build_bundle(run, key, tmp_path / "a.tar.gz")
    second, _ = build_bundle(run, key, tmp_path / "b.tar.gz")
    # Only the manifest's signing time differs; every report member is byte-identical.
    a, b = read_members(first), read_members(second)
    assert {k: v for k, v in a.items() if k != MANIFEST} == {
        k: v for k, v in b.items() if k != MANIFEST
    }


def test_an_edited_report_is_never_signed(authority: Path, tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    document = json.loads((run / "report.json").read_text(encoding="utf-8"))
    document["verdict"] = "CERTIFIED"
    document["counts"]["FAIL"] = 0
    document["clauses"] = document["clauses"][1:]
    (run / "report.json").write_text(json.dumps(document), encoding="utf-8")
    key = load_signing_key(authority / "authority.key.pem", PASSPHRASE)
    with pytest.raises(BundleError, match="edited"):
        build_bundle(run, key)


def test_a_folder_without_reports_is_refused(authority: Path, tmp_path: Path) -> None:
    key = load_signing_key(authority / "authority.key.pem", PASSPHRASE)
    with pytest.raises(BundleError, match=r"no report\.json: not the report folder of a run"):
        build_bundle(tmp_path, key)


def test_the_private_key_is_encrypted_and_owner_only(authority: Path) -> None:
    private = authority / "authority.key.pem"
    assert private.stat().st_mode & 0o077 == 0
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    with pytest.raises(AuthorityKeyError, match="wrong passphrase"):
        load_signing_key(private, b"not the passphrase")


def test_openssl_verifies_the_authority_signature(signed: Path, authority: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command line to cross-check SM2 with")
    algorithms = subprocess.run(
        [openssl, "list", "-public-key-algorithms"], capture_output=True, text=True, check=False
    ).stdout
    if "SM2" not in algorithms:
        pytest.skip("this OpenSSL has no SM2")
    folder = signed.parent
    (folder / "manifest.json").write_bytes(read_members(signed)[MANIFEST])
    document = json.loads(signature_path(signed).read_text(encoding="utf-8"))
    (folder / "manifest.sig.der").write_bytes(base64.b64decode(document["signature"]))
    command = [
        openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(authority / "authority.pub.pem"),
        "-rawin", "-digest", "sm3", "-pkeyopt", f"distid:{document['distid']}",
        "-in", str(folder / "manifest.json"), "-sigfile", str(folder / "manifest.sig.der"),
    ]  # fmt: skip
    checked = subprocess.run(command, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Verified Successfully" in checked.stdout


def test_the_command_line_signs_and_verifies_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATS_AUTHORITY_PASSPHRASE", PASSPHRASE.decode())
    keys = tmp_path / "keys"
    init = ["authority", "init", "--out", str(keys), "--passphrase-env", "ATS_AUTHORITY_PASSPHRASE"]
    assert main(init) == 0
    assert main(init) == 2
    assert "never overwritten" in capsys.readouterr().err
    run = _run_dir(tmp_path)
    key, pub = keys / "authority.key.pem", keys / "authority.pub.pem"
    sign = ["report", "sign", str(run), "--key", str(key), "--passphrase-env"]
    assert main([*sign, "ATS_AUTHORITY_PASSPHRASE"]) == 0
    bundle = run / "evidence-bundle.tar.gz"
    capsys.readouterr()
    assert main(["report", "verify", str(bundle), "--pubkey", str(pub)]) == 0
    assert "verified" in capsys.readouterr().out
    # The report's own digest still verifies on its own: verify dispatches on what it is given.
    assert main(["report", "verify", str(run / "report.json")]) == 0
    assert main(["report", "verify", str(bundle)]) == 2
    assert "--pubkey" in capsys.readouterr().err
    members = read_members(bundle)
    members["report.json"] = members["report.json"].replace(b'"FAIL": 0', b'"FAIL": 1', 1)
    _rewrite(bundle, members)
    assert main(["report", "verify", str(bundle), "--pubkey", str(pub)]) == 1
    err = capsys.readouterr().err
    assert "TAMPERED" in err
    assert "report.json: changed" in err
    monkeypatch.setenv("ATS_AUTHORITY_PASSPHRASE", "wrong passphrase")
    assert main([*sign, "ATS_AUTHORITY_PASSPHRASE"]) == 2
    assert "wrong passphrase" in capsys.readouterr().err
    assert main([*sign, "ATS_UNSET_PASSPHRASE_VARIABLE"]) == 2
    assert "ATS_UNSET_PASSPHRASE_VARIABLE is not set" in capsys.readouterr().err
