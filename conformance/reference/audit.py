"""The audit trail (ATS chapter 9): append-only events, read by provider-admins.

An audited request carries an ``AuditMark`` on its state from the moment it is authenticated
(or refused with 401); the request-id middleware records the event with the final status once the
answer is sent, so every status — 4xx, 429, 5xx included — is recorded (ATS-AUD-01/02).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from conformance.reference import clock
from conformance.reference.listing import row_offset

if TYPE_CHECKING:
    from conformance.reference.runtime import NodeRuntime

ACTIONS = ("QUERY", "SUBSCRIBE", "DECIDE", "REVOKE", "CATALOG_PUSH", "SYNC", "AUTH_FAILURE")
# Only under the audit-records-filter-values fault: the filters of audited queries.
_DETAIL_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_detail (event_id INTEGER PRIMARY KEY, detail TEXT NOT NULL);"
)
# Only under the uuid-event-ids variant: the random UUID each event is listed and ordered by.
_UUID_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_uuid (event_id INTEGER PRIMARY KEY, uuid TEXT NOT NULL);"
)
_COLUMNS = (
    "event_id, time, request_id, app_id, origin_node, origin_app, action, resource_code, "
    "outcome, status"
)


@dataclass(frozen=True)
class AuditMark:
    """An audit mark is an audited request's action, caller, origin pair and resource.

    None marks a value that does not apply (ATS §9).
    """

    action: str
    app_id: str | None
    origin_node: str | None
    origin_app: str | None
    resource_code: str | None = None
    # Only under the audit-records-filter-values fault: the query's filter, as JSON.
    detail: str | None = None


def mark(
    request: Request,
    node: NodeRuntime,
    action: str,
    app_id: str,
    resource_code: str | None = None,
) -> None:
    """The request is audited as ``action`` by a local caller (origin: this node, this app)."""
    request.state.audit = AuditMark(action, app_id, node.config.node_id, app_id, resource_code)


def amend(request: Request, **changes: Any) -> None:
    """The request's audit mark, when it has one, carries these changed members."""
    current: AuditMark | None = getattr(request.state, "audit", None)
    if current is not None:
        request.state.audit = replace(current, **changes)


def outcome(status: int) -> str:
    """ALLOWED for 2xx (and other non-errors), DENIED for 4xx, ERROR for 5xx (ATS §9)."""
    if status >= 500:
        return "ERROR"
    if status >= 400:
        return "DENIED"
    return "ALLOWED"


def record_event(node: NodeRuntime, request_id: str, audit: AuditMark, status: int) -> None:
    """One audit event is appended for an answered request."""
    if audit.action == "AUTH_FAILURE":
        if node.faults.on("no-auth-failure-audit"):
            return
    elif 400 <= status < 500 and node.faults.on("no-audit-on-denied"):
        return
    event_id = node.store.insert(
        "INSERT INTO audit (time, request_id, app_id, origin_node, origin_app, action, "
        "resource_code, outcome, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            clock.rfc3339(clock.now()),
            request_id,
            audit.app_id,
            audit.origin_node,
            audit.origin_app,
            audit.action,
            audit.resource_code,
            outcome(status),
            status,
        ),
    )
    if node.variants.on("uuid-event-ids"):
        node.store.ensure_schema(_UUID_SCHEMA)
        node.store.insert(
            "INSERT INTO audit_uuid (event_id, uuid) VALUES (?, ?)", (event_id, str(uuid.uuid4()))
        )
    if audit.detail is not None and node.faults.on("audit-records-filter-values"):
        node.store.ensure_schema(_DETAIL_SCHEMA)
        node.store.insert(
            "INSERT INTO audit_detail (event_id, detail) VALUES (?, ?)", (event_id, audit.detail)
        )


def event_page(
    node: NodeRuntime,
    *,
    page: int,
    size: int,
    request_id: str | None,
    app_id: str | None,
    since: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of events by ascending ``event_id`` with the filters, and the matching total."""
    where: list[str] = []
    params: list[Any] = []
    if request_id is not None:
        where.append("request_id = ?")
        params.append(request_id)
    if app_id is not None:
        where.append("app_id = ?")
        params.append(app_id)
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = int(node.store.scalar(f"SELECT COUNT(*) FROM audit{clause}", params))
    if node.variants.on("uuid-event-ids"):
        # ATS-API-08: audit events by event_id ascending, strings by code point.
        node.store.ensure_schema(_UUID_SCHEMA)
        columns = _COLUMNS.replace("event_id,", "audit_uuid.uuid AS event_id,", 1)
        rows = node.store.query(
            f"SELECT {columns} FROM audit JOIN audit_uuid USING (event_id){clause} "
            "ORDER BY audit_uuid.uuid LIMIT ? OFFSET ?",
            [*params, size, row_offset(page, size, total, node.faults)],
        )
    else:
        rows = node.store.query(
            f"SELECT {_COLUMNS} FROM audit{clause} ORDER BY event_id LIMIT ? OFFSET ?",
            [*params, size, row_offset(page, size, total, node.faults)],
        )
    events = [dict(row) for row in rows]
    if node.faults.on("audit-time-on-read"):
        # ATS-AUD-03 forbids this: an event read twice reads differently.
        read_at = clock.rfc3339(clock.now())
        events = [{**event, "time": read_at} for event in events]
    if node.faults.on("audit-records-filter-values") and events:
        node.store.ensure_schema(_DETAIL_SCHEMA)
        marks = ", ".join("?" for _ in events)
        details = node.store.query(
            f"SELECT event_id, detail FROM audit_detail WHERE event_id IN ({marks})",
            [e["event_id"] for e in events],
        )
        by_event = {row["event_id"]: json.loads(row["detail"]) for row in details}
        for event in events:
            if event["event_id"] in by_event:
                # ATS-PRIV-04 forbids exactly this: the filter values in an audit event.
                event["filter"] = by_event[event["event_id"]]
    return events, total


def since_key(moment: datetime) -> str:
    """The stored form of the earliest event time matching ``since``.

    Event times are written in +08:00 to the millisecond, so they compare as text; ``since`` is
    brought to that form, rounded up to the next millisecond.
    """
    china = moment.astimezone(clock.CHINA)
    if china.microsecond % 1000:
        china += timedelta(microseconds=1000 - china.microsecond % 1000)
    return clock.rfc3339(china)
