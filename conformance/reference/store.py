"""The node's SQLite store: one connection guarded by a lock, WAL journal, short statements.

Every call holds the lock for one statement or one ``transaction()``; statements are small and
indexed, so a call from the event loop blocks it for microseconds, not milliseconds.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog (
    resource_code TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    origin_child TEXT,
    entry_json TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    resource_code TEXT NOT NULL,
    position INTEGER NOT NULL,
    record_json TEXT NOT NULL,
    PRIMARY KEY (resource_code, position)
);
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    bound_node TEXT,
    rate_limit INTEGER
);
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    origin_node TEXT NOT NULL,
    resource_code TEXT NOT NULL,
    fields_json TEXT NOT NULL,
    unmasked INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    approved_seq INTEGER,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS subscriptions_by_app
    ON subscriptions (app_id, resource_code, status, approved_seq);
CREATE TABLE IF NOT EXISTS nonces (
    app_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    used_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, nonce)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    request_id TEXT NOT NULL,
    app_id TEXT,
    origin_node TEXT,
    origin_app TEXT,
    action TEXT NOT NULL,
    resource_code TEXT,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_request ON audit (request_id);
CREATE TABLE IF NOT EXISTS stats (
    period TEXT PRIMARY KEY,
    calls_total INTEGER NOT NULL,
    calls_failed INTEGER NOT NULL
);
"""

# ATS-AUD-03: the audit trail is append-only, enforced by the database itself.
APPEND_ONLY_AUDIT = """
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
"""

MUTABLE_AUDIT = """
DROP TRIGGER IF EXISTS audit_no_update;
DROP TRIGGER IF EXISTS audit_no_delete;
"""


class Store:
    """A store is one SQLite database with the node's tables, safe to call from any thread."""

    def __init__(self, path: str) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable across process crashes; only a power loss may drop
        # the last transactions, which a reference node can afford.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self.ensure_schema(SCHEMA)

    def ensure_schema(self, sql: str) -> None:
        """The statements of ``sql`` (``CREATE … IF NOT EXISTS``) have run."""
        with self._lock:
            self._db.executescript(sql)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic transaction: committed on normal exit, rolled back on an exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row, atomically."""
        with self.transaction() as db:
            db.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one INSERT; the rowid it created."""
        with self._lock:
            rowid = self._db.execute(sql, params).lastrowid
            return int(rowid or 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one SELECT."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of one SELECT (None when there is none)."""
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        """The connection is closed."""
        with self._lock:
            self._db.close()
