"""The resource catalog (ATS chapter 4): an in-memory index over the store's catalog table.

The index holds the node's own entries and those its children pushed (its subtree catalog),
sorted by ``resource_code``, and the records of its own resources. Every change goes through the
index, which writes the store in one transaction and then swaps its in-memory view, so readers
never see a half-applied push.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from conformance.reference import clock
from conformance.reference.auth import Caller, require
from conformance.reference.errors import JSON_TYPE, AtsError, json_bytes
from conformance.reference.faults import FaultSet
from conformance.reference.listing import invalid, page_and_size, page_answer, query_params
from conformance.reference.runtime import runtime_of
from conformance.reference.store import Store
from conformance.reference.variant_data import seed_variant
from conformance.reference.variants import VariantSet

SHARE_TYPES = ("UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED")
SCOPES = ("local", "subtree")


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


def presented(entry: Mapping[str, Any], faults: FaultSet) -> Mapping[str, Any]:
    """The entry as the catalog endpoints answer it (changed only by fault switches)."""
    if not (
        faults.on("catalog-missing-field")
        or faults.on("bad-classification")
        or faults.on("dangling-related-code")
        or faults.on("unmarked-sensitive-item")
    ):
        return entry
    changed = copy.deepcopy(dict(entry))
    if faults.on("catalog-missing-field"):
        changed.pop("update_cycle", None)
    if faults.on("bad-classification"):
        types = {"1": "TOPIC", "2": "DEPARTMENT", "3": "BASE"}
        changed["classification"]["type"] = types[changed["resource_code"][0]]
    if faults.on("dangling-related-code"):
        changed["related_codes"] = [*changed.get("related_codes", []), "199999/999999"]
    if faults.on("unmarked-sensitive-item"):
        for item in changed.get("items", []):
            if item.get("mask") == "PHONE":
                item["sensitive"] = False
                item.pop("mask", None)
    return changed


def _json(value: object) -> Response:
    return Response(json_bytes(value), media_type=JSON_TYPE)


router = APIRouter()
_CATALOG_READERS = ("consumer", "provider-admin", "node")


# The fault slow-catalog-page (ATS-PERF-02): its delay, and the page size it slows.
_SLOW_PAGE_S = 0.9
_FULL_PAGE = 100


@router.get("/api/v1/catalog/resources")
async def list_resources(
    request: Request, caller: Annotated[Caller, Depends(require(*_CATALOG_READERS))]
) -> Response:
    """A page of the local or subtree catalog with filters (ATS-CAT-01, ATS-CAT-04)."""
    node = runtime_of(request)
    faults = node.faults
    params = query_params(
        request, ("page", "size", "share_type", "updated_since", "keyword", "scope"), faults
    )
    page, size = page_and_size(params, faults)
    scope = params.get("scope", "local")
    if scope not in SCOPES:
        raise invalid("scope 必须是 local 或 subtree / scope must be local or subtree")
    share_type = params.get("share_type")
    if share_type is not None and share_type not in SHARE_TYPES:
        raise invalid(
            f"share_type 必须是 {' | '.join(SHARE_TYPES)} / share_type must be one of them"
        )
    since_text = params.get("updated_since")
    since = clock.parse_rfc3339(since_text) if since_text is not None else None
    if since_text is not None and since is None:
        raise invalid(
            "updated_since 必须是 RFC 3339 时间 / updated_since must be an RFC 3339 timestamp"
        )
    keyword = params.get("keyword")
    if keyword is not None and faults.on("injectable-keyword") and keyword.strip("%_") == "":
        # The defect of an unescaped SQL LIKE: a pattern of wildcards only matches everything.
        keyword = None
    selected: Sequence[IndexedEntry] = node.catalog.entries(scope)
    if faults.on("hide-not-shared"):
        selected = [e for e in selected if e.entry["share"]["type"] != "NOT_SHARED"]
    if not faults.on("ignore-catalog-filters") and (share_type or since or keyword is not None):
        selected = [e for e in selected if _matches(e, share_type, since, keyword)]
    if faults.on("unstable-page-order"):
        selected = list(reversed(selected))
    start = (page - 1) * size
    chosen = list(selected[start : start + size])
    if faults.on("duplicate-catalog-entry") and selected and start + size >= len(selected):
        chosen.append(selected[0])
    items = [presented(e.entry, faults) for e in chosen]
    if faults.on("slow-catalog-page") and size == _FULL_PAGE:
        # ATS-PERF-02 measures pages of 100 entries; smaller pages stay fast for other checks.
        await asyncio.sleep(_SLOW_PAGE_S)
    return _json(page_answer(items, page, size, len(selected), faults))


def _matches(
    indexed: IndexedEntry, share_type: str | None, since: datetime | None, keyword: str | None
) -> bool:
    entry = indexed.entry
    if share_type is not None and entry["share"]["type"] != share_type:
        return False
    if since is not None and (indexed.updated is None or indexed.updated < since):
        return False
    return (
        keyword is None or keyword in entry.get("name", "") or keyword in entry.get("summary", "")
    )


@router.get("/api/v1/catalog/resources/{resource_code:path}")
async def get_resource(
    request: Request,
    resource_code: str,
    caller: Annotated[Caller, Depends(require(*_CATALOG_READERS))],
) -> Response:
    """One entry of the subtree catalog; an unknown code answers 404 (ATS-CAT-03)."""
    node = runtime_of(request)
    query_params(request, (), node.faults)
    found = node.catalog.find(resource_code)
    if found is not None and node.faults.on("hide-not-shared"):
        found = None if found.entry["share"]["type"] == "NOT_SHARED" else found
    if found is None and node.faults.on("catalog-get-unknown-200") and node.catalog.entries():
        found = node.catalog.entries()[0]
    if found is None:
        raise AtsError(404, "NOT_FOUND", "资源不存在 / no such resource in this node's catalog")
    return _json(presented(found.entry, node.faults))
