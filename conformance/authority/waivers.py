"""Waivers: the certifying authority's signed acceptance of a known deviation of one node.

A waivers file is YAML (``waivers: [{clause, node_id, reason, approver, ticket, expires}]``)
with a detached SM2 signature beside it (``FILE.sig``) made with the authority key. Applied to a
run, a waiver turns that node's FAIL of that clause into WAIVED: still a finding (the run is
CERTIFIED_WITH_FINDINGS at best), no longer a block. Everything else is ignored and the report
says why: a file not signed by the authority key given to the run, an expired waiver, a waiver
for another node, for a clause that did not FAIL. A vendor cannot waive its own findings: only
the holder of the authority's private key signs, and the report names the key that did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from conformance.authority.keys import (
    AuthorityKeyError,
    SigningKey,
    VerifyingKey,
    read_signature,
    write_signature,
)
from conformance.report.model import ClauseResult, RunReport, Verdict

FIELDS = ("clause", "node_id", "reason", "approver", "ticket", "expires")


class WaiverFileError(Exception):
    """A waivers file cannot be read at all; one line naming the file."""


def signature_path(path: Path) -> Path:
    """Where the detached signature of the waivers file ``path`` sits by default."""
    return path.with_name(path.name + ".sig")


def sign_waivers(path: Path, key: SigningKey) -> Path:
    """Checks the waivers file at ``path`` and signs its exact bytes; answers the signature."""
    entries = _entries(path, _read(path))
    problems = [
        f"waivers[{i}]: {why}" for i, entry in enumerate(entries) if (why := _problem(entry))
    ]
    if problems:
        raise WaiverFileError(f"{path}: {problems[0]}; not signed")
    return write_signature(signature_path(path), key.sign(path.read_bytes()))


@dataclass(frozen=True)
class WaiverSet:
    """A waivers file as read for one run: its entries, and why it cannot be trusted if not."""

    source: str
    entries: tuple[Mapping[str, Any], ...]
    signer: str | None
    distrust: str | None

    def waiver_for(self, result: ClauseResult, node_id: str, day: date) -> dict[str, Any] | None:
        """The waiver that applies to ``result`` of node ``node_id`` on ``day``, if any."""
        if self.distrust is not None:
            return None
        for entry in self.entries:
            if isinstance(entry, Mapping) and str(entry.get("clause")) == result.id:
                fits = _problem(entry) or _mismatch(entry, node_id, day, {result.id: result})
                if fits is None:
                    return _public(entry)
        return None

    def apply(self, report: RunReport) -> RunReport:
        """``report`` with each valid waiver applied and each other one listed with why."""
        node_id = str(report.target.get("node_id", ""))
        day = run_date(report.started_at)
        results = {r.id: r for r in report.clauses}
        waived: dict[str, Mapping[str, Any]] = {}
        ignored = []
        for entry in self.entries:
            why = self.distrust or _problem(entry) or _mismatch(entry, node_id, day, results)
            if why is None and str(entry["clause"]) in waived:
                why = "a second waiver of the same clause; the first one applies"
            if why is not None:
                ignored.append({**_public(entry), "why": why})
            else:
                waived[str(entry["clause"])] = _public(entry)
        clauses = tuple(
            dataclasses.replace(r, waiver=waived[r.id]) if r.id in waived else r
            for r in report.clauses
        )
        record = {
            "file": self.source,
            "signer": self.signer,
            "applied": list(waived.values()),
            "ignored": ignored,
        }
        return dataclasses.replace(report, clauses=clauses, waivers=record)


def _public(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {name: str(entry.get(name, "")) for name in FIELDS}


def run_date(started_at: str) -> date:
    """The date of a run, from its start time (the day a waiver must not have expired by)."""
    try:
        return date.fromisoformat(started_at[:10])
    except ValueError:
        return date.today()


def _problem(entry: Mapping[str, Any]) -> str | None:
    """What makes one waiver entry unusable whatever the run, or None."""
    if not isinstance(entry, Mapping):
        return "not a mapping of clause, node_id, reason, approver, ticket, expires"
    missing = [name for name in FIELDS if not str(entry.get(name) or "").strip()]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        date.fromisoformat(str(entry["expires"]))
    except ValueError:
        return f"expires: {entry['expires']!r} is not a date (YYYY-MM-DD)"
    return None


def _mismatch(
    entry: Mapping[str, Any], node_id: str, run_date: date, results: Mapping[str, ClauseResult]
) -> str | None:
    """Why a well-formed waiver does not apply to this run, or None."""
    expires = date.fromisoformat(str(entry["expires"]))
    if expires < run_date:
        return f"expired on {expires.isoformat()} (the run is of {run_date.isoformat()})"
    if str(entry["node_id"]) != node_id:
        return f"for node {entry['node_id']}; this run certifies node {node_id}"
    result = results.get(str(entry["clause"]))
    if result is None:
        return f"{entry['clause']} is not a clause of this run"
    if result.verdict is not Verdict.FAIL:
        return f"{result.id} is {result.verdict.value} in this run: only a FAIL is waived"
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WaiverFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _entries(path: Path, data: bytes) -> list[Any]:
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WaiverFileError(f"{path}: not a YAML waivers file: {exc}".splitlines()[0]) from None
    if not isinstance(document, dict) or not isinstance(document.get("waivers"), list):
        raise WaiverFileError(f"{path}: no `waivers:` list")
    return list(document["waivers"])


def load_waivers(path: Path, pubkey: VerifyingKey, signature: Path | None = None) -> WaiverSet:
    """The waivers file at ``path``, trusted only if the authority key ``pubkey`` signed it."""
    data = _read(path)
    entries = tuple(_entries(path, data))
    sig_path = signature or signature_path(path)
    distrust = None
    signer = None
    if not sig_path.is_file():
        distrust = f"the waivers file is not signed (no {sig_path.name})"
    else:
        try:
            document = read_signature(sig_path)
        except AuthorityKeyError as exc:
            distrust = f"the waivers file's signature is unreadable: {exc}"
        else:
            if pubkey.verifies(data, document):
                signer = pubkey.fingerprint
            else:
                distrust = (
                    "the waivers file is not signed by the authority key "
                    f"{pubkey.fingerprint[:16]}… (changed after signing, or signed by another key)"
                )
    return WaiverSet(str(path), entries, signer, distrust)
