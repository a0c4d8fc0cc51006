"""Subscriptions and their approval (ATS chapter 6, 共享申请与审批).

A subscription counts for the app that made it, at this node, and the resource it names; when
several are APPROVED, the most recently approved applies (ATS §6).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from conformance import ats, codes
from conformance.reference import clock
from conformance.reference.audit import amend
from conformance.reference.auth import Caller, require
from conformance.reference.bodies import json_object
from conformance.reference.errors import JSON_TYPE, AtsError, json_bytes
from conformance.reference.listing import (
    invalid,
    page_and_size,
    page_answer,
    query_params,
    row_offset,
    shaped_filter,
)
from conformance.reference.runtime import NodeRuntime, runtime_of

STATUSES = ("PENDING", "APPROVED", "REJECTED", "REVOKED")
MIN_PURPOSE = 10
_COLUMNS = (
    "subscription_id, app_id, origin_node, resource_code, fields_json, unmasked, purpose, "
    "status, created_at, approved_seq, reason"
)


@dataclass(frozen=True)
class Subscription:
    """A subscription: who asked for which items of which resource, and its state."""

    subscription_id: str
    app_id: str
    resource_code: str
    fields: tuple[str, ...]
    unmasked: bool
    purpose: str
    status: str
    created_at: str
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        """The subscription as ATS §6 answers it."""
        body: dict[str, Any] = {
            "subscription_id": self.subscription_id,
            "status": self.status,
            "resource_code": self.resource_code,
            "app_id": self.app_id,
            "fields": list(self.fields),
            "unmasked": self.unmasked,
            "purpose": self.purpose,
            "created_at": self.created_at,
        }
        if self.reason is not None:
            body["reason"] = self.reason
        return body


def _from_row(row: Any) -> Subscription:
    return Subscription(
        subscription_id=row["subscription_id"],
        app_id=row["app_id"],
        resource_code=row["resource_code"],
        fields=tuple(json.loads(row["fields_json"])),
        unmasked=bool(row["unmasked"]),
        purpose=row["purpose"],
        status=row["status"],
        created_at=row["created_at"],
        reason=row["reason"],
    )


def applicable(
    node: NodeRuntime, origin_node: str, origin_app: str, code: str
) -> Subscription | None:
    """The subscription that applies to queries of this origin pair on this resource, if any.

    Subscriptions are held locally (ATS §8), so only a query originating at this node has one.
    """
    if origin_node != node.config.node_id:
        return None
    statuses = ("APPROVED", "REVOKED") if node.faults.on("ignore-revocation") else ("APPROVED",)
    rows = node.store.query(
        f"SELECT {_COLUMNS} FROM subscriptions WHERE app_id = ? AND resource_code = ? "
        f"AND status IN ({', '.join('?' * len(statuses))}) AND approved_seq IS NOT NULL "
        "ORDER BY approved_seq DESC LIMIT 1",
        (origin_app, code, *statuses),
    )
    return _from_row(rows[0]) if rows else None


def _json(value: object, status: int = 200) -> Response:
    return Response(json_bytes(value), status_code=status, media_type=JSON_TYPE)


def _item_names(entry: Any) -> list[str]:
    return [item["name"] for item in entry.get("items", [])]


def _check_fields(fields: list[str], declared: list[str]) -> None:
    if len(set(fields)) != len(fields):
        raise invalid("fields 含有重复项 / fields holds a duplicate item")
    if any(name not in declared for name in fields):
        raise invalid("fields 含有未声明的信息项 / fields names an undeclared item")


def _parse_create(body: bytes, node: NodeRuntime) -> tuple[str, str, list[str], bool]:
    request = json_object(body, node.faults, ("resource_code", "purpose", "fields", "unmasked"))
    code = request.get("resource_code")
    purpose = request.get("purpose")
    fields = request.get("fields", [])
    unmasked = request.get("unmasked", False)
    if not isinstance(code, str):
        raise invalid("resource_code 必须是字符串 / resource_code must be a string")
    if not isinstance(purpose, str) or len(purpose.strip()) < MIN_PURPOSE:
        raise invalid(
            f"purpose 至少 {MIN_PURPOSE} 个字符 / purpose must be at least {MIN_PURPOSE} characters"
        )
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise invalid("fields 必须是字符串列表 / fields must be a list of strings")
    if not isinstance(unmasked, bool):
        raise invalid("unmasked 必须是布尔值 / unmasked must be a boolean")
    return code, purpose, fields, unmasked


router = APIRouter()


@router.post(ats.SUBSCRIPTIONS)
async def create_subscription(
    request: Request, caller: Annotated[Caller, Depends(require("consumer", action="SUBSCRIBE"))]
) -> Response:
    """A consumer's subscription request, decided at once where ATS-SUB-01 says so."""
    node = runtime_of(request)
    code, purpose, fields, unmasked = _parse_create(request.state.body, node)
    if codes.resource_code_problem(code) is not None:
        raise invalid("resource_code 格式错误 / resource_code is not well formed")
    amend(request, resource_code=code)
    found = node.catalog.local(code)
    if found is None:
        raise AtsError(404, "NOT_FOUND", "资源不存在 / no such resource in this node's catalog")
    entry = found.entry
    share_type = entry["share"]["type"]
    if share_type == "NOT_SHARED" and not node.faults.on("subscribe-not-shared"):
        raise AtsError(403, "FORBIDDEN", "该资源不予共享 / the resource is NOT_SHARED")
    _check_fields(fields, _item_names(entry))
    approve_now = (
        share_type == "UNCONDITIONAL"
        and not unmasked
        and not node.faults.on("unconditional-subscription-pending")
    )
    subscription = Subscription(
        subscription_id=str(uuid.uuid4()),
        app_id=caller.app_id,
        resource_code=code,
        fields=tuple(fields),
        unmasked=unmasked,
        purpose=purpose,
        status="APPROVED" if approve_now else "PENDING",
        created_at=clock.rfc3339(clock.now()),
        reason=None,
    )
    with node.store.transaction() as db:
        seq = db.execute("SELECT COALESCE(MAX(created_seq), 0) + 1 FROM subscriptions").fetchone()[
            0
        ]
        approved = (
            db.execute("SELECT COALESCE(MAX(approved_seq), 0) + 1 FROM subscriptions").fetchone()[0]
            if approve_now
            else None
        )
        db.execute(
            "INSERT INTO subscriptions (subscription_id, app_id, origin_node, resource_code, "
            "fields_json, unmasked, purpose, status, created_at, created_seq, approved_seq, "
            "reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                subscription.subscription_id,
                subscription.app_id,
                node.config.node_id,
                code,
                json.dumps(fields, ensure_ascii=False),
                int(unmasked),
                purpose,
                subscription.status,
                subscription.created_at,
                seq,
                approved,
            ),
        )
    return _json(subscription.as_json(), 201)


@router.get(ats.SUBSCRIPTIONS)
async def list_subscriptions(
    request: Request, caller: Annotated[Caller, Depends(require("consumer", "provider-admin"))]
) -> Response:
    """A page of subscriptions: a consumer's own, or all for a provider-admin (ATS-SUB-02)."""
    node = runtime_of(request)
    params = query_params(request, ("page", "size", "status", "resource_code"), node.faults)
    page, size = page_and_size(params, node.faults)
    where: list[str] = []
    values: list[Any] = []
    status = params.get("status")
    if status is not None:
        if status not in STATUSES:
            raise invalid(f"status 必须是 {' | '.join(STATUSES)} / status must be one of them")
        where.append("status = ?")
        values.append(status)
    resource_code = shaped_filter(params, "resource_code")
    if resource_code is not None:
        where.append("resource_code = ?")
        values.append(resource_code)
    if caller.role != "provider-admin" and not node.faults.on("show-foreign-subscriptions"):
        where.append("app_id = ?")
        values.append(caller.app_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = int(node.store.scalar(f"SELECT COUNT(*) FROM subscriptions{clause}", values))
    rows = node.store.query(
        f"SELECT {_COLUMNS} FROM subscriptions{clause} "
        "ORDER BY created_at, subscription_id LIMIT ? OFFSET ?",
        [*values, size, row_offset(page, size, total, node.faults)],
    )
    items = [_from_row(row).as_json() for row in rows]
    return _json(page_answer(items, page, size, total, node.faults))


def _visible(node: NodeRuntime, caller: Caller, subscription_id: str) -> Subscription:
    rows = node.store.query(
        f"SELECT {_COLUMNS} FROM subscriptions WHERE subscription_id = ?", (subscription_id,)
    )
    found = _from_row(rows[0]) if rows else None
    own = found is not None and (
        caller.role == "provider-admin"
        or found.app_id == caller.app_id
        or node.faults.on("show-foreign-subscriptions")
    )
    if found is None or not own:
        # ATS-SUB-02: another consumer's subscription is as unknown as a missing one.
        raise AtsError(404, "NOT_FOUND", "订阅不存在 / no such subscription")
    return found


@router.get(f"{ats.SUBSCRIPTIONS}/{{subscription_id}}")
async def get_subscription(
    request: Request,
    subscription_id: str,
    caller: Annotated[Caller, Depends(require("consumer", "provider-admin"))],
) -> Response:
    """One subscription, if the caller may see it (ATS-SUB-02)."""
    node = runtime_of(request)
    query_params(request, (), node.faults)
    return _json(_visible(node, caller, subscription_id).as_json())


def _parse_decision(body: bytes, node: NodeRuntime) -> tuple[str, str | None]:
    request = json_object(body, node.faults, ("decision", "reason"))
    decision = request.get("decision")
    reason = request.get("reason")
    if decision not in ("APPROVE", "REJECT"):
        raise invalid("decision 必须是 APPROVE 或 REJECT / decision must be APPROVE or REJECT")
    if reason is not None and not isinstance(reason, str):
        raise invalid("reason 必须是字符串 / reason must be a string")
    return decision, reason


@router.post(f"{ats.SUBSCRIPTIONS}/{{subscription_id}}/decision")
async def decide_subscription(
    request: Request,
    subscription_id: str,
    caller: Annotated[Caller, Depends(require("provider-admin", action="DECIDE"))],
) -> Response:
    """A provider-admin approves or rejects a PENDING subscription (ATS-SUB-03)."""
    node = runtime_of(request)
    decision, reason = _parse_decision(request.state.body, node)
    found = _visible(node, caller, subscription_id)
    amend(request, resource_code=found.resource_code)
    status = "APPROVED" if decision == "APPROVE" else "REJECTED"
    with node.store.transaction() as db:
        seq = db.execute("SELECT COALESCE(MAX(approved_seq), 0) + 1 FROM subscriptions").fetchone()[
            0
        ]
        allowed = "" if node.faults.on("redecide-subscription") else " AND status = 'PENDING'"
        changed = db.execute(
            "UPDATE subscriptions SET status = ?, approved_seq = ?, reason = ? "
            f"WHERE subscription_id = ?{allowed}",
            (status, seq if status == "APPROVED" else None, reason, subscription_id),
        ).rowcount
    if not changed:
        raise AtsError(
            409,
            "CONFLICT",
            f"订阅状态为 {found.status}，不能再决定 / the subscription is {found.status}",
        )
    return _json(_visible(node, caller, subscription_id).as_json())


@router.delete(f"{ats.SUBSCRIPTIONS}/{{subscription_id}}")
async def revoke_subscription(
    request: Request,
    subscription_id: str,
    caller: Annotated[Caller, Depends(require("provider-admin", action="REVOKE"))],
) -> Response:
    """A provider-admin revokes a PENDING or APPROVED subscription (ATS-SUB-03, ATS-SUB-05)."""
    node = runtime_of(request)
    query_params(request, (), node.faults)
    found = _visible(node, caller, subscription_id)
    amend(request, resource_code=found.resource_code)
    changed = node.store.execute(
        "UPDATE subscriptions SET status = 'REVOKED' "
        "WHERE subscription_id = ? AND status IN ('PENDING', 'APPROVED')",
        (subscription_id,),
    )
    if not changed:
        raise AtsError(
            409,
            "CONFLICT",
            f"订阅状态为 {found.status}，不能撤销 / the subscription is {found.status}",
        )
    return _json(_visible(node, caller, subscription_id).as_json())
