"""The catalog endpoints (ATS chapter 4): list and read the subtree catalog of the node.

They answer from the node's ``CatalogIndex`` (``catalog_index.py``), changed only by fault
switches.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from conformance import ats
from conformance.reference import clock
from conformance.reference.auth import Caller, require
from conformance.reference.catalog_index import IndexedEntry
from conformance.reference.errors import JSON_TYPE, AtsError, json_bytes
from conformance.reference.faults import FaultSet
from conformance.reference.listing import invalid, page_and_size, page_answer, query_params
from conformance.reference.runtime import runtime_of

SHARE_TYPES = ("UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED")
SCOPES = ("local", "subtree")


def presented(entry: Mapping[str, Any], faults: FaultSet) -> Mapping[str, Any]:
    """The entry as the catalog endpoints answer it (changed only by fault switches)."""
    if not (
        faults.on("catalog-missing-field")
        or faults.on("bad-classification")
        or faults.on("dangling-related-code")
        or faults.on("unmarked-sensitive-item")
        or faults.on("phone-without-semantic")
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
    if faults.on("phone-without-semantic") and _about_persons(changed):
        for item in changed.get("items", []):
            if item.get("semantic") == "PHONE":
                for member in ("semantic", "sensitive", "mask"):
                    item.pop(member, None)
    return changed


def _about_persons(entry: Mapping[str, Any]) -> bool:
    """The entry is about natural persons: it has an ID_NUMBER item (ATS-PRIV-01)."""
    return any(i.get("semantic") == "ID_NUMBER" for i in entry.get("items", []))


def _json(value: object) -> Response:
    return Response(json_bytes(value), media_type=JSON_TYPE)


router = APIRouter()
_CATALOG_READERS = ("consumer", "provider-admin", "node")


# The fault slow-catalog-page (ATS-PERF-02): its delay, and the page size it slows.
_SLOW_PAGE_S = 0.9
_FULL_PAGE = 100


@router.get(ats.CATALOG)
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
    if faults.on("page-starts-early") and page > 1:
        start -= 1
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


@router.get(f"{ats.CATALOG}/{{resource_code:path}}")
async def get_resource(
    request: Request,
    resource_code: str,
    caller: Annotated[Caller, Depends(require(*_CATALOG_READERS))],
) -> Response:
    """One entry of the subtree catalog; an unknown code answers 404 (ATS-CAT-03)."""
    node = runtime_of(request)
    query_params(request, (), node.faults)
    found = node.catalog.find(resource_code)
    if node.faults.on("lookup-local-only"):
        found = node.catalog.local(resource_code)
    if found is not None and node.faults.on("hide-not-shared"):
        found = None if found.entry["share"]["type"] == "NOT_SHARED" else found
    if found is None and node.faults.on("catalog-get-unknown-200") and node.catalog.entries():
        found = node.catalog.entries()[0]
    if found is None:
        raise AtsError(404, "NOT_FOUND", "资源不存在 / no such resource in this node's catalog")
    return _json(presented(found.entry, node.faults))
