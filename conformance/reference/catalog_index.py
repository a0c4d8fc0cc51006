"""The catalog index (ATS chapter 4): an in-memory index over the store's catalog table.

The index holds the node's own entries and those its children pushed (its subtree catalog),
sorted by ``resource_code``, and the records of its own resources. Every change goes through the
index, which writes the store in one transaction and then swaps its in-memory view, so readers
never see a half-applied push. The endpoints that answer from it are in ``catalog.py``; the
node's runtime holds one index, so this module imports no endpoint and no runtime.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from conformance.reference import clock
from conformance.reference.store import Store
from conformance.reference.variant_data import seed_variant
from conformance.reference.variants import VariantSet


@dataclass(frozen=True)
class IndexedEntry:
    """A catalog entry with what lookups need: its holder and its parsed ``updated_at``."""

    entry: Mapping[str, Any]
    origin_child: str | None
    updated: datetime | None

    @property
    def code(self) -> str:
        """The entry's resource code."""
        return str(self.entry["resource_code"])


@dataclass(frozen=True)
class _View:
    ordered: tuple[IndexedEntry, ...]
    by_code: Mapping[str, IndexedEntry]
    local: tuple[IndexedEntry, ...]


class CatalogIndex:
    """The catalog index is the subtree catalog of one node, in memory and in its store."""

    def __init__(self, store: Store, node_id: str) -> None:
        self._store = store
        self._node_id = node_id
        self._write = threading.Lock()
        self._records: dict[str, tuple[dict[str, Any], ...]] = {}
        self._view = _View((), {}, ())
        self.reload()

    def reload(self) -> None:
        """The in-memory view equals the store's catalog and records tables."""
        rows = self._store.query(
            "SELECT entry_json, origin_child FROM catalog ORDER BY resource_code"
        )
        ordered = tuple(_indexed(json.loads(r["entry_json"]), r["origin_child"]) for r in rows)
        records: dict[str, list[dict[str, Any]]] = {}
        for row in self._store.query(
            "SELECT resource_code, record_json FROM records ORDER BY resource_code, position"
        ):
            records.setdefault(row["resource_code"], []).append(json.loads(row["record_json"]))
        self._records = {code: tuple(items) for code, items in records.items()}
        self._view = _view(ordered)

    def seed(self, path: Path, variants: VariantSet | None = None) -> None:
        """The node's own entries and records come from a catalog file, on a first start only
        (with the data variants of ``variants`` applied)."""
        if self._store.scalar("SELECT COUNT(*) FROM catalog WHERE origin_child IS NULL"):
            return
        data = seed_variant(json.loads(path.read_text(encoding="utf-8")), variants or VariantSet())
        with self._store.transaction() as db:
            for entry in data.get("entries", ()):
                db.execute(
                    "INSERT INTO catalog (resource_code, node_id, origin_child, entry_json, "
                    "updated_at) VALUES (?, ?, NULL, ?, ?)",
                    (
                        entry["resource_code"],
                        entry.get("node_id", self._node_id),
                        json.dumps(entry, ensure_ascii=False),
                        entry.get("updated_at", ""),
                    ),
                )
            for code, records in (data.get("records") or {}).items():
                db.executemany(
                    "INSERT INTO records (resource_code, position, record_json) VALUES (?, ?, ?)",
                    [(code, i, json.dumps(r, ensure_ascii=False)) for i, r in enumerate(records)],
                )
        self.reload()

    def entries(self, scope: str = "local") -> tuple[IndexedEntry, ...]:
        """The entries of the local or the subtree catalog, by ascending resource code."""
        view = self._view
        return view.local if scope == "local" else view.ordered

    def find(self, code: str) -> IndexedEntry | None:
        """The entry of the subtree catalog with this code."""
        return self._view.by_code.get(code)

    def local(self, code: str) -> IndexedEntry | None:
        """The node's own entry with this code."""
        found = self._view.by_code.get(code)
        return found if found is not None and found.origin_child is None else None

    def records(self, code: str) -> tuple[dict[str, Any], ...]:
        """The records of one of the node's own resources, in their stable order."""
        return self._records.get(code, ())

    def child_entries(self, child_id: str) -> tuple[IndexedEntry, ...]:
        """The entries a child pushed."""
        return tuple(e for e in self._view.ordered if e.origin_child == child_id)

    def holder(self, code: str) -> str | None:
        """The child whose subtree holds this code (None: local or unknown)."""
        found = self._view.by_code.get(code)
        return found.origin_child if found is not None else None

    def replace_child(self, child_id: str, entries: Sequence[Mapping[str, Any]]) -> None:
        """Everything held from this child is replaced by these entries (a full push, ATS §8)."""
        with self._write, self._store.transaction() as db:
            db.execute("DELETE FROM catalog WHERE origin_child = ?", (child_id,))
            _upsert(db, child_id, entries)
        self._refresh()

    def update_child(
        self, child_id: str, entries: Sequence[Mapping[str, Any]], deleted: Iterable[str]
    ) -> None:
        """Entries from this child are upserted and its ``deleted`` codes removed (ATS §8)."""
        with self._write, self._store.transaction() as db:
            _upsert(db, child_id, entries)
            db.executemany(
                "DELETE FROM catalog WHERE resource_code = ? AND origin_child = ?",
                [(code, child_id) for code in deleted],
            )
        self._refresh()

    def _refresh(self) -> None:
        rows = self._store.query(
            "SELECT entry_json, origin_child FROM catalog ORDER BY resource_code"
        )
        self._view = _view(
            tuple(_indexed(json.loads(r["entry_json"]), r["origin_child"]) for r in rows)
        )


def _upsert(db: Any, child_id: str, entries: Sequence[Mapping[str, Any]]) -> None:
    db.executemany(
        "INSERT INTO catalog (resource_code, node_id, origin_child, entry_json, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (resource_code) DO UPDATE SET "
        "node_id = excluded.node_id, origin_child = excluded.origin_child, "
        "entry_json = excluded.entry_json, updated_at = excluded.updated_at",
        [
            (
                e["resource_code"],
                e["node_id"],
                child_id,
                json.dumps(e, ensure_ascii=False),
                e.get("updated_at", ""),
            )
            for e in entries
        ],
    )


def _indexed(entry: dict[str, Any], origin_child: str | None) -> IndexedEntry:
    updated = entry.get("updated_at")
    parsed = clock.parse_rfc3339(updated) if isinstance(updated, str) else None
    return IndexedEntry(entry, origin_child, parsed)


def _view(ordered: tuple[IndexedEntry, ...]) -> _View:
    return _View(
        ordered,
        {e.code: e for e in ordered},
        tuple(e for e in ordered if e.origin_child is None),
    )
