"""The register of issued certificates: one SQLite file the authority keeps.

A row per certificate: node, number, verdict, dates, the bundle's digest and where the bundle
lies, and, once revoked, when and why. Certificates are never deleted: a node's history is every
row of it, oldest first; a revocation is a new state of the row, with its reason.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from conformance.authority.certificate import Certificate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS certificates (
    number TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    node_name TEXT NOT NULL,
    level TEXT NOT NULL,
    operator TEXT NOT NULL,
    verdict TEXT NOT NULL,
    issued_on TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    bundle_sm3 TEXT NOT NULL,
    bundle_path TEXT NOT NULL,
    report_sm3 TEXT NOT NULL,
    profile TEXT NOT NULL,
    profile_digest TEXT NOT NULL,
    signer TEXT NOT NULL,
    added_at TEXT NOT NULL,
    revoked_at TEXT,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS certificates_node ON certificates (node_id, issued_on);
"""
_COLUMNS = (
    "number", "node_id", "node_name", "level", "operator", "verdict", "issued_on",
    "valid_until", "bundle_sm3", "bundle_path", "report_sm3", "profile", "profile_digest",
    "signer", "added_at", "revoked_at", "revoked_reason",
)  # fmt: skip


class RegisterError(Exception):
    """The register refuses an operation; one line saying why."""


@dataclass(frozen=True)
class Entry:
    """One certificate as the register holds it."""

    number: str
    node_id: str
    node_name: str
    level: str
    operator: str
    verdict: str
    issued_on: str
    valid_until: str
    bundle_sm3: str
    bundle_path: str
    report_sm3: str
    profile: str
    profile_digest: str
    signer: str
    added_at: str
    revoked_at: str | None
    revoked_reason: str | None

    def status(self, today: date) -> str:
        """revoked, expired or valid, on ``today``."""
        if self.revoked_at:
            return "revoked"
        return "expired" if date.fromisoformat(self.valid_until) < today else "valid"

    def line(self, today: date) -> str:
        """One line for ``register list``."""
        text = (
            f"{self.number}  node {self.node_id} ({self.level})  {self.verdict}  "
            f"{self.issued_on} → {self.valid_until}  {self.status(today)}"
        )
        if self.revoked_at:
            text += f" on {self.revoked_at[:10]}: {self.revoked_reason}"
        return text


class Register:
    """The SQLite register at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise RegisterError(f"{self.path}: cannot open the register: {exc}") from None
        with closing(connection):
            try:
                connection.executescript(_SCHEMA)
                with connection:
                    yield connection
            except sqlite3.DatabaseError as exc:
                raise RegisterError(f"{self.path}: not a register: {exc}") from None

    def add(self, certificate: Certificate, bundle_path: Path) -> Entry:
        """Records an issued certificate; a number is recorded once."""
        values = {
            **{name: getattr(certificate, name) for name in _COLUMNS if hasattr(certificate, name)},
            "bundle_path": str(bundle_path.resolve()),
            "added_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "revoked_at": None,
            "revoked_reason": None,
        }
        with self._db() as db:
            try:
                db.execute(
                    f"INSERT INTO certificates ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
                    [values[name] for name in _COLUMNS],
                )
            except sqlite3.IntegrityError:
                raise RegisterError(
                    f"certificate {certificate.number} is already in the register"
                ) from None
        return self.show(certificate.number)

    def _select(self, where: str = "", params: tuple[object, ...] = ()) -> list[Entry]:
        with self._db() as db:
            rows = db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM certificates {where} "
                "ORDER BY node_id, issued_on, number",
                params,
            ).fetchall()
        return [Entry(*row) for row in rows]

    def show(self, number: str) -> Entry:
        """The certificate ``number``."""
        found = self._select("WHERE number = ?", (number,))
        if not found:
            raise RegisterError(f"no certificate {number} in the register")
        return found[0]

    def history(self, node_id: str) -> list[Entry]:
        """Every certificate of ``node_id``, oldest first."""
        return self._select("WHERE node_id = ?", (node_id,))

    def entries(self) -> list[Entry]:
        """Every certificate, by node and date."""
        return self._select()

    def expiring(self, within_days: int, today: date) -> list[Entry]:
        """Valid certificates that expire within ``within_days`` of ``today``."""
        return [
            e
            for e in self._select("WHERE revoked_at IS NULL")
            if 0 <= (date.fromisoformat(e.valid_until) - today).days <= within_days
        ]

    def last_certified(self, node_id: str, today: date) -> Entry:
        """The node's latest certificate still valid on ``today``."""
        valid = [e for e in self.history(node_id) if e.status(today) == "valid"]
        if not valid:
            raise RegisterError(f"node {node_id} has no valid certificate in the register")
        return valid[-1]

    def revoke(self, number: str, reason: str) -> Entry:
        """Revokes the certificate ``number`` for ``reason``; a revocation is final."""
        if not reason.strip():
            raise RegisterError("a revocation needs its reason (--reason)")
        entry = self.show(number)
        if entry.revoked_at:
            raise RegisterError(f"certificate {number} was revoked on {entry.revoked_at[:10]}")
        with self._db() as db:
            db.execute(
                "UPDATE certificates SET revoked_at = ?, revoked_reason = ? WHERE number = ?",
                (datetime.now(UTC).isoformat(timespec="seconds"), reason.strip(), number),
            )
        return self.show(number)
