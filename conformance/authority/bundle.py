"""The evidence bundle: one archive of a run's reports, a manifest of SM3 digests, and a
detached SM2 signature of the manifest.

The archive holds report.json, junit.xml and its evidence attachments, report.html, summary.md
and the allure results. It is a gzip'd tar with fixed member order, times and owners, so the
same run makes the same bytes. ``manifest.json`` inside it names every other member with its
SM3 digest and size, and the run it certifies (node, verdict, profile, report digest). The
signature (``BUNDLE.sig``) covers the manifest's exact bytes; the manifest covers the members.
Verification needs the public key alone, and names every member changed, added or removed.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

from conformance.authority.keys import (
    AuthorityKeyError,
    SigningKey,
    VerifyingKey,
    read_signature,
    sm3_hex,
    write_signature,
)
from conformance.report.integrity import Integrity, verify_document
from conformance.report.junit import ATTACHMENTS

FORMAT = "ats-evidence-bundle/1"
MANIFEST = "manifest.json"
REPORT_MEMBERS = ("report.json", "junit.xml", "report.html", "summary.md")
ALLURE_FOLDER = "allure-results"
BUNDLE_FILE = "evidence-bundle.tar.gz"
# A bundle is read fully into memory to be checked: a bound on what a hostile file can make us read.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 100_000


class BundleError(Exception):
    """A run directory cannot be bundled, or a bundle cannot be read; one line."""


class Check(IntEnum):
    """The state of a bundle, valued as the exit status of ``conformance report verify``."""

    VERIFIED = 0
    TAMPERED = 1
    UNREADABLE = 2


@dataclass(frozen=True)
class BundleVerification:
    """The state of a bundle and the lines that explain it (one per problem found)."""

    state: Check
    lines: tuple[str, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    members: Mapping[str, bytes] = field(default_factory=dict)


def signature_path(bundle: Path) -> Path:
    """Where the detached signature of ``bundle`` sits by default."""
    return bundle.with_name(bundle.name + ".sig")


def _run_files(run_dir: Path) -> Iterator[tuple[str, Path]]:
    for name in REPORT_MEMBERS:
        path = run_dir / name
        if not path.is_file():
            raise BundleError(f"{run_dir}: no {name}: not the report folder of a run")
        yield name, path
    for folder in (run_dir / ATTACHMENTS, run_dir / ALLURE_FOLDER):
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    yield path.relative_to(run_dir).as_posix(), path


def _run_facts(document: Mapping[str, Any]) -> dict[str, Any]:
    target = document.get("target") or {}
    integrity = document.get("integrity") or {}
    return {
        "standard": document.get("standard"),
        "profile": document.get("profile"),
        "profile_digest": document.get("profile_digest"),
        "suite_version": document.get("suite_version"),
        "node_id": target.get("node_id"),
        "level": target.get("level"),
        "base_url": target.get("base_url"),
        "verdict": document.get("verdict"),
        "partial": bool(document.get("partial", False)),
        "lab": bool(document.get("lab", False)),
        "started_at": document.get("started_at"),
        "finished_at": document.get("finished_at"),
        "report_sm3": integrity.get("digest"),
    }


def _tar_bytes(members: Mapping[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    # mtime=0: the archive's bytes depend on its content only.
    return gzip.compress(raw.getvalue(), mtime=0)


def build_bundle(
    run_dir: Path, key: SigningKey, out: Path | None = None, *, now: datetime | None = None
) -> tuple[Path, Path]:
    """Bundles and signs the reports of ``run_dir``; answers the bundle's and signature's paths."""
    files = dict(_run_files(run_dir))
    contents = {name: path.read_bytes() for name, path in files.items()}
    try:
        document = json.loads(contents["report.json"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"{run_dir / 'report.json'}: not JSON") from None
    # A report edited after the run is never signed: the authority signs what the suite wrote.
    integrity = verify_document(document)
    if integrity.state is not Integrity.INTACT:
        raise BundleError(f"{run_dir / 'report.json'}: {integrity.message}; not signed")
    manifest = {
        "format": FORMAT,
        "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "signer": key.fingerprint,
        "run": _run_facts(document),
        "members": {
            name: {"sm3": sm3_hex(data), "size": len(data)} for name, data in contents.items()
        },
    }
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    bundle = out or run_dir / BUNDLE_FILE
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_bytes(_tar_bytes({MANIFEST: manifest_bytes, **contents}))
    return bundle, write_signature(signature_path(bundle), key.sign(manifest_bytes))


def read_members(bundle: Path) -> dict[str, bytes]:
    """Every regular file of the archive at ``bundle``, by name."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(bundle, mode="r:*") as tar:
            for info in tar:
                if len(members) >= MAX_MEMBERS:
                    raise BundleError(f"{bundle}: more than {MAX_MEMBERS} members")
                if not info.isfile():
                    members[info.name] = b""
                    continue
                if info.size > MAX_MEMBER_BYTES:
                    raise BundleError(f"{bundle}: {info.name}: larger than {MAX_MEMBER_BYTES} B")
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle else b""
    except OSError as exc:
        raise BundleError(f"{bundle}: cannot read: {exc.strerror or exc}") from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, ValueError) as exc:
        raise BundleError(f"{bundle}: damaged: not a readable archive ({exc})") from None
    return members


def _member_problems(manifest: Mapping[str, Any], members: Mapping[str, bytes]) -> list[str]:
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        return [f"{MANIFEST}: no member list"]
    problems = []
    for name in sorted(set(listed) | set(members) - {MANIFEST}):
        if name not in members:
            problems.append(f"{name}: removed (listed in the manifest, absent from the archive)")
        elif name not in listed:
            problems.append(f"{name}: added (in the archive, not in the manifest)")
        else:
            expected = listed[name] or {}
            digest = sm3_hex(members[name])
            if digest != expected.get("sm3"):
                problems.append(
                    f"{name}: changed (SM3 {digest[:16]}…, signed {str(expected.get('sm3'))[:16]}…;"
                    f" {len(members[name])} B, signed {expected.get('size')} B)"
                )
    return problems


def verify_bundle(
    bundle: Path, pubkey: VerifyingKey, signature_file: Path | None = None
) -> BundleVerification:
    """Whether ``bundle`` is, member for member, what the holder of ``pubkey`` signed."""
    sig_path = signature_file or signature_path(bundle)
    try:
        members = read_members(bundle)
        signature = read_signature(sig_path)
    except (BundleError, AuthorityKeyError) as exc:
        return BundleVerification(Check.UNREADABLE, (str(exc),))
    manifest_bytes = members.get(MANIFEST)
    if manifest_bytes is None:
        return BundleVerification(Check.TAMPERED, (f"{MANIFEST}: removed from the archive",))
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    problems = []
    if not pubkey.verifies(manifest_bytes, signature):
        if signature.get("signed_sm3") != sm3_hex(manifest_bytes):
            # An unsigned manifest says nothing about the members: compare nothing against it.
            line = f"{MANIFEST}: changed after signing (the signature does not cover it)"
            return BundleVerification(Check.TAMPERED, (line,))
        elif signature.get("key_fingerprint") != pubkey.fingerprint:
            problems.append(
                f"{sig_path.name}: not made with this public key ({pubkey.fingerprint[:16]}…); "
                f"it names key {str(signature.get('key_fingerprint'))[:16]}…"
            )
        else:
            problems.append(f"{sig_path.name}: changed (the signature does not verify)")
    problems.extend(_member_problems(manifest, members))
    if problems:
        return BundleVerification(Check.TAMPERED, tuple(problems), manifest, members)
    run = manifest.get("run") or {}
    line = (
        f"{bundle}: verified: {len(members) - 1} members signed by {pubkey.fingerprint[:16]}… "
        f"on {manifest.get('created_at')}; node {run.get('node_id')}, {run.get('verdict')}"
    )
    return BundleVerification(Check.VERIFIED, (line,), manifest, members)
