"""report.json as a file: reading it back, and its integrity digest (SM3 of its content).

The digest is SM3 over the canonical JSON of the document without its ``integrity`` member:
keys sorted, no whitespace, non-ASCII characters as themselves, UTF-8. It detects accidental
and naive edits of a report (a verdict changed by hand, a clause deleted, a truncated copy). It
is not a signature: there is no key, so whoever edits a report and recomputes the digest goes
unnoticed. Layout (indentation, line breaks) is not content and may change freely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from conformance.report.model import RunReport
from conformance.signing import body_digest

ALGORITHM = "SM3"
MEMBER = "integrity"


class ReportFileError(Exception):
    """A report file cannot be read as a report; the message is one line naming the file."""


class Integrity(IntEnum):
    """The state of a report file, valued as the exit status of ``conformance report verify``."""

    INTACT = 0
    EDITED = 1
    UNREADABLE = 2


@dataclass(frozen=True)
class Verification:
    """The state of one report file and the one line that explains it."""

    state: Integrity
    message: str


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    """The canonical JSON of ``document`` without its integrity member, as UTF-8."""
    content = {key: value for key, value in document.items() if key != MEMBER}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def content_digest(document: Mapping[str, Any]) -> str:
    """The lower-case hex SM3 digest of the canonical content of ``document``."""
    # The signing module owns SM3 (hashlib where OpenSSL has it, else cryptography).
    return body_digest(canonical_bytes(document), "HMAC-SM3")


def seal(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with its integrity member set to the digest of the rest."""
    sealed = {key: value for key, value in document.items() if key != MEMBER}
    sealed[MEMBER] = {"algorithm": ALGORITHM, "digest": content_digest(document)}
    return sealed


def report_identity(report: RunReport) -> tuple[str, str]:
    """The report id and the SM3 digest report.json is sealed with, as every page shows them.

    The id names the node, the start of the run and the digest's first 8 hex digits, so the
    page, the summary and report.json are seen to be of one run.
    """
    digest = content_digest(report.to_dict())
    node = str(report.target.get("node_id", "node"))
    started = "".join(ch for ch in report.started_at[:19] if ch.isdigit())
    return f"ATS-{node}-{started}-{digest[:8].upper()}", digest


def verify_document(document: Any) -> Verification:
    """Whether a parsed report still has the content its integrity member was computed over."""
    if not isinstance(document, dict):
        return Verification(Integrity.UNREADABLE, "not a report: the JSON is not an object")
    stamp = document.get(MEMBER)
    if not isinstance(stamp, dict) or not isinstance(stamp.get("digest"), str):
        return Verification(Integrity.EDITED, "no integrity digest: removed, or never sealed")
    if stamp.get("algorithm") != ALGORITHM:
        return Verification(
            Integrity.EDITED,
            f"integrity algorithm is {stamp.get('algorithm')!r}, expected {ALGORITHM!r}",
        )
    expected = content_digest(document)
    if stamp["digest"].lower() != expected:
        return Verification(
            Integrity.EDITED,
            f"edited: the content digest is {expected[:16]}…, "
            f"the report states {stamp['digest'][:16]}…",
        )
    return Verification(Integrity.INTACT, f"intact: {ALGORITHM} {expected}")


def read_document(path: Path) -> dict[str, Any]:
    """The parsed report.json at ``path``; raises ``ReportFileError`` with one line."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReportFileError(f"{path}: not UTF-8 text") from None
    except ValueError as exc:
        raise ReportFileError(f"{path}: not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ReportFileError(f"{path}: not a report: the JSON is not an object")
    return document


def read_report(path: Path) -> RunReport:
    """The run model of the report.json at ``path``; raises ``ReportFileError`` with one line."""
    document = read_document(path)
    try:
        return RunReport.from_dict(document)
    except KeyError as exc:
        raise ReportFileError(f"{path}: not a report: no member {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ReportFileError(f"{path}: not a report: {exc}") from None


def verify_file(path: Path) -> Verification:
    """Whether the report file at ``path`` is intact, edited or unreadable."""
    try:
        document = read_document(path)
    except ReportFileError as exc:
        return Verification(Integrity.UNREADABLE, str(exc))
    result = verify_document(document)
    return Verification(result.state, f"{path}: {result.message}")
