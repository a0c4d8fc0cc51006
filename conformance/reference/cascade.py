"""Catalog aggregation between levels (ATS §8 "Catalog aggregation", ATS-CAS-01..03, 10, 11).

As a parent the node receives its children's pushes on `POST /api/v1/cascade/catalog`, checks
every one of them completely and applies it in one transaction. As a child it pushes its subtree
catalog to its parent: a full push after start (retried until accepted), a full push on
`POST /api/v1/cascade/sync`, and the changes its own children push, passed on at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import Request
from starlette.responses import Response

from conformance import ats, compare, signing
from conformance.codes import division_problem, resource_code_problem, uscc_problem
from conformance.reference import clock
from conformance.reference.auth import Caller, read_body, require
from conformance.reference.config import ChildConfig
from conformance.reference.errors import JSON_TYPE, AtsError, json_bytes
from conformance.reference.routing import CASCADE_TIMEOUT_MAX_S, in_subtree
from conformance.reference.runtime import NodeRuntime, runtime_of
from conformance.schemas import validation_errors

SCHEMA = """
CREATE TABLE IF NOT EXISTS cascade_received (
    child_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cascade_sent (
    parent_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
"""

# The first push after start is retried until accepted, backing off up to this pause.
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0
_LATE_PARENT = "上级节点未及时应答 / the parent did not answer in time"
# Fault slow-sync: changes from children wait this long before they are pushed on (ATS-CAS-11).
SLOW_SYNC_DELAY_S = 8.0

router = APIRouter()
# ATS §3 role table: a push comes from a node app, a sync from a provider-admin; both audited.
_PUSHING_CHILD = require("node", action="CATALOG_PUSH")
_SYNCING_ADMIN = require("provider-admin", action="SYNC")


# ---------------------------------------------------------------------------------------------
# Receiving pushes (ATS-CAS-02, ATS-CAS-03)


@dataclass(frozen=True)
class Push:
    """A checked push body: its source, sequence number, kind, entries and deleted codes."""

    source_node_id: str
    seq: int
    full: bool
    entries: tuple[dict[str, Any], ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True)
class Changes:
    """What a push changed in the subtree catalog: codes stored anew or changed, codes removed."""

    upserted: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.upserted or self.removed)


def entry_problem(entry: object, today: date) -> str | None:
    """Why a catalog entry breaks the ATS §4 table, or None when it satisfies every rule."""
    errors = validation_errors("catalog-entry", entry)
    if errors:
        return errors[0]
    assert isinstance(entry, dict)
    code = entry["resource_code"]
    classification = entry["classification"]
    if reason := resource_code_problem(code, classification["type"]):
        return reason
    expected_path = 3 if len(code.partition("/")[0]) == 6 else 4
    if len(classification["path"]) != expected_path:
        return (
            f"classification.path has {len(classification['path'])} names, expected "
            f"{expected_path} for resource code {code}"
        )
    provider = entry["provider"]["code"]
    check = uscc_problem if len(provider) == 18 else division_problem
    if reason := check(provider):
        return f"provider.code: {reason}"
    names = [item["name"] for item in entry["items"]]
    if len(set(names)) != len(names):
        return "items: item names are not unique"
    published = date.fromisoformat(entry["published_at"])
    if published > today:
        return f"published_at {published} is after the node's date {today}"
    updated = clock.parse_rfc3339(entry["updated_at"])
    if updated is None or updated.astimezone(clock.CHINA).date() < published:
        return "updated_at: its date in +08:00 is before published_at"
    for related in entry["related_codes"]:
        if reason := resource_code_problem(related):
            return f"related_codes: {reason}"
    return None


def _invalid(message: str) -> AtsError:
    return AtsError(400, "INVALID_REQUEST", message)


def _forbidden(message: str) -> AtsError:
    return AtsError(403, "FORBIDDEN", message)


def _conflict(message: str) -> AtsError:
    return AtsError(409, "CONFLICT", message)


def parse_push(body: bytes) -> Push:
    """The push of a request body whose envelope has the ATS §8 members and types, else 400."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("请求体不是合法的 JSON / the body is not valid JSON") from None
    errors = _envelope_errors(raw)
    if errors:
        raise _invalid(f"推送格式错误 / malformed push: {errors}")
    return Push(
        source_node_id=raw["source_node_id"],
        seq=int(raw["seq"]),
        full=raw["full"],
        entries=tuple(raw["entries"]),
        deleted=tuple(raw["deleted"]),
    )


def _envelope_errors(raw: object) -> str | None:
    if not isinstance(raw, dict):
        return "the body is not a JSON object"
    # ATS-API-09: seq 3.0 is the integer 3.
    if compare.integer(raw.get("seq")) is None:
        return "seq is missing or has the wrong type"
    checks: Mapping[str, tuple[type, ...]] = {
        "source_node_id": (str,),
        "full": (bool,),
        "entries": (list,),
        "deleted": (list,),
    }
    for name, types in checks.items():
        value = raw.get(name)
        if not isinstance(value, types):
            return f"{name} is missing or has the wrong type"
    if raw["seq"] < 1:
        return "seq must be an integer ≥ 1"
    if not all(isinstance(entry, dict) for entry in raw["entries"]):
        return "entries must be objects"
    if not all(isinstance(code, str) for code in raw["deleted"]):
        return "deleted must be resource codes"
    return None


def require_child_signer(node: NodeRuntime, caller: Caller) -> None:
    """The signing app is bound to a child of this node, else 403 (ATS-CAS-03)."""
    bound = any(c.node_id == caller.bound_node for c in node.config.children)
    if not bound and not node.faults.on("accept-foreign-push"):
        raise _forbidden(
            "签名应用不属于本节点的下级节点 / the signing app is not bound to a child of this node"
        )


def _sending_child(node: NodeRuntime, caller: Caller, push: Push) -> ChildConfig:
    config = node.config
    if node.faults.on("accept-foreign-push"):
        named = next((c for c in config.children if c.node_id == push.source_node_id), None)
        return named or ChildConfig(push.source_node_id, "", "department", "", "", "")
    child = next(c for c in config.children if c.node_id == caller.bound_node)
    if push.source_node_id != child.node_id:
        raise _forbidden(
            "source_node_id 与签名应用绑定的节点不符 / "
            "source_node_id differs from the node the signing app is bound to"
        )
    return child


def _check_entry(node: NodeRuntime, child: ChildConfig, entry: dict[str, Any], today: date) -> None:
    if not node.faults.on("accept-invalid-entry") and (reason := entry_problem(entry, today)):
        code = entry.get("resource_code")
        raise _invalid(f"目录条目无效 / invalid catalog entry {code!r}: {reason}")
    if not node.faults.on("accept-out-of-subtree-entry") and not in_subtree(
        str(entry.get("node_id")), child
    ):
        raise _forbidden(
            f"条目 {entry.get('resource_code')} 的 node_id 不在下级节点 {child.node_id} 的子树内 / "
            f"node_id {entry.get('node_id')!r} lies outside the subtree of {child.node_id}"
        )


def _check_collisions(db: sqlite3.Connection, child: ChildConfig, codes: Iterable[str]) -> None:
    for code in codes:
        row = db.execute(
            "SELECT origin_child FROM catalog WHERE resource_code = ?", (code,)
        ).fetchone()
        if row is not None and row[0] != child.node_id:
            held = "本节点" if row[0] is None else f"下级节点 {row[0]}"
            raise _conflict(
                f"资源代码 {code} 已由{held}持有 / resource code {code} is already held "
                f"{'locally' if row[0] is None else f'from child {row[0]}'}"
            )


def _entry_row(child: ChildConfig, entry: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        entry["resource_code"],
        str(entry.get("node_id")),
        child.node_id,
        json.dumps(entry, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        str(entry.get("updated_at")),
    )


_UPSERT = (
    "INSERT INTO catalog (resource_code, node_id, origin_child, entry_json, updated_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (resource_code) DO UPDATE SET node_id = excluded.node_id, "
    "origin_child = excluded.origin_child, entry_json = excluded.entry_json, "
    "updated_at = excluded.updated_at"
)


def apply_push(node: NodeRuntime, caller: Caller, push: Push) -> Changes:
    """The push is checked and applied as one transaction; on any error nothing changes.

    403 for a `source_node_id` other than the signer's child; for each entry in turn 400 when
    invalid, 403 when outside the child's subtree; 409 for an incremental push out of order,
    then for a code held locally or from another child (ATS-CAS-02, ATS-CAS-03).
    """
    child = _sending_child(node, caller, push)
    today = clock.now().date()
    codes = [str(entry.get("resource_code")) for entry in push.entries]
    if len(set(codes)) != len(codes):
        raise _invalid("推送中资源代码重复 / a resource code appears twice in the push")
    for code in push.deleted:
        if reason := resource_code_problem(code):
            raise _invalid(f"deleted: {reason}")
    partial = node.faults.on("partial-push-on-error")
    if not partial:
        for entry in push.entries:
            _check_entry(node, child, entry, today)
    with node.store.transaction() as db:
        last = db.execute(
            "SELECT last_seq FROM cascade_received WHERE child_id = ?", (child.node_id,)
        ).fetchone()
        expected = (last[0] if last else 0) + 1
        if (
            not push.full
            and push.seq != expected
            and not node.faults.on("accept-out-of-order-push")
        ):
            raise _conflict(
                f"增量推送序号应为 {expected}，收到 {push.seq} / incremental push seq {push.seq} "
                f"is out of order, expected {expected}; send a full push"
            )
        if not partial:
            _check_collisions(db, child, codes)
        held = {
            row[0]: row[1]
            for row in db.execute(
                "SELECT resource_code, entry_json FROM catalog WHERE origin_child = ?",
                (child.node_id,),
            )
        }
        upserted: set[str] = set()
        for entry in push.entries:
            row = _entry_row(child, entry)
            if partial:
                # Fault partial-push-on-error: each entry is committed as soon as it is checked.
                db.execute("COMMIT")
                db.execute("BEGIN IMMEDIATE")
                _check_entry(node, child, entry, today)
                _check_collisions(db, child, [row[0]])
            if held.get(row[0]) != row[3]:
                upserted.add(row[0])
            db.execute(_UPSERT, row)
        if push.full:
            gone = set() if node.faults.on("full-push-keeps-missing") else held.keys() - set(codes)
        else:
            gone = set() if node.faults.on("ignore-deleted") else held.keys() & set(push.deleted)
        # ATS §8: `deleted` codes not held from this child are ignored.
        db.executemany(
            "DELETE FROM catalog WHERE resource_code = ? AND origin_child = ?",
            [(code, child.node_id) for code in sorted(gone)],
        )
        db.execute(
            "INSERT INTO cascade_received (child_id, last_seq) VALUES (?, ?) "
            "ON CONFLICT (child_id) DO UPDATE SET last_seq = excluded.last_seq",
            (child.node_id, push.seq),
        )
    return Changes(frozenset(upserted), frozenset(gone))


@router.post(ats.CASCADE_PUSH)
async def receive_catalog_push(
    request: Request, caller: Annotated[Caller, Depends(_PUSHING_CHILD)]
) -> Response:
    """A child's push is applied and answered 200 {"accepted": n} (ATS §8)."""
    node = runtime_of(request)
    require_child_signer(node, caller)
    push = parse_push(await read_body(request, node))
    try:
        changes = apply_push(node, caller, push)
    finally:
        # The index's in-memory view follows what the store committed (readers never see half
        # a push; with the fault partial-push-on-error a refused push may have committed some).
        node.catalog.reload()
    if changes:
        uplink_of(request.app).note(changes)
    return Response(json_bytes({"accepted": len(push.entries)}), media_type=JSON_TYPE)


# ---------------------------------------------------------------------------------------------
# Pushing to the parent (ATS-CAS-01, ATS-CAS-10, ATS-CAS-11)


@dataclass(frozen=True)
class PreparedPush:
    """A push ready to be sent (and resent unchanged on a retry: same seq, same body)."""

    seq: int
    full: bool
    body: bytes
    pushed: int


@dataclass
class Uplink:
    """The node's pushes to its parent: seq bookkeeping, pending changes and the push task."""

    node: NodeRuntime
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    pending_upserts: set[str] = field(default_factory=set)
    pending_removals: set[str] = field(default_factory=set)
    need_full: bool = True
    task: asyncio.Task[None] | None = None

    def note(self, changes: Changes) -> None:
        """Changes received from a child are queued to be pushed on to the parent."""
        if self.node.config.parent is None or self.node.faults.on("no-repush"):
            return
        self.pending_upserts |= changes.upserted
        self.pending_upserts -= changes.removed
        self.pending_removals |= changes.removed
        self.pending_removals -= changes.upserted
        self.changed.set()

    def _last_seq(self) -> int:
        parent = self.node.config.parent
        assert parent is not None
        value = self.node.store.scalar(
            "SELECT last_seq FROM cascade_sent WHERE parent_id = ?", (parent.node_id,)
        )
        return int(value or 0)

    def _next_seq(self) -> int:
        parent = self.node.config.parent
        assert parent is not None
        last = self._last_seq()
        # ATS §8: seq starts at 1 and grows by exactly one per push sent.
        seq = max(last, 1) if self.node.faults.on("seq-not-increasing") else last + 1
        self.node.store.execute(
            "INSERT INTO cascade_sent (parent_id, last_seq) VALUES (?, ?) "
            "ON CONFLICT (parent_id) DO UPDATE SET last_seq = excluded.last_seq",
            (parent.node_id, seq),
        )
        return seq

    def prepare(self, *, full: bool, sync: bool = False) -> PreparedPush:
        """The next push, with a new seq; a full one carries the whole subtree catalog."""
        node = self.node
        full = full and not (sync and node.faults.on("incremental-sync"))
        if full:
            local_only = sync and node.faults.on("sync-local-only")
            rows = node.store.query(
                "SELECT entry_json FROM catalog"
                + (" WHERE origin_child IS NULL" if local_only else "")
                + " ORDER BY resource_code"
            )
            entries = [json.loads(row[0]) for row in rows]
            deleted: list[str] = []
        else:
            codes = sorted(self.pending_upserts)
            marks = ",".join("?" * len(codes))
            rows = node.store.query(
                f"SELECT resource_code, entry_json FROM catalog WHERE resource_code IN ({marks}) "
                "ORDER BY resource_code",
                codes,
            )
            entries = [json.loads(row[1]) for row in rows]
            present = {row[0] for row in rows}
            deleted = sorted(self.pending_removals | (set(codes) - present))
            if node.faults.on("drop-deletions"):
                deleted = []
        if sync and node.faults.on("invalid-sync-entries"):
            entries = [{k: v for k, v in e.items() if k != "update_cycle"} for e in entries]
        self.pending_upserts.clear()
        self.pending_removals.clear()
        seq = self._next_seq()
        body = json_bytes(
            {
                "source_node_id": node.config.node_id,
                "seq": seq,
                "full": full,
                "entries": entries,
                "deleted": deleted,
            }
        )
        return PreparedPush(seq, full, body, len(entries))

    async def send(self, push: PreparedPush) -> str:
        """The outcome of one attempt: "accepted" (200 with an `accepted` count), "refused"
        (any other answer), "unreachable" or "timeout" (no whole answer within the timeout)."""
        node = self.node
        parent = node.config.parent
        assert parent is not None
        assert node.http is not None
        target = urlsplit(parent.url).path.rstrip("/") + ats.CASCADE_PUSH
        headers = {"Content-Type": JSON_TYPE, "X-Request-Id": str(uuid.uuid4())}
        headers.update(
            signing.sign_headers(
                method="POST",
                target=target,
                body=push.body,
                app_id=parent.app_id,
                secret=parent.secret,
            )
        )
        budget = min(node.config.cascade_timeout_s, CASCADE_TIMEOUT_MAX_S)
        try:
            async with asyncio.timeout(budget):
                answer = await node.http.post(
                    parent.url.rstrip("/") + ats.CASCADE_PUSH,
                    content=push.body,
                    headers=headers,
                    timeout=budget,
                )
        except (TimeoutError, httpx.TimeoutException):
            return "timeout"
        except httpx.HTTPError:
            return "unreachable"
        try:
            accepted = answer.status_code == 200 and isinstance(answer.json()["accepted"], int)
        except (ValueError, TypeError, KeyError):
            accepted = False
        return "accepted" if accepted else "refused"

    async def sync(self) -> tuple[int, int]:
        """A full push sent now: (seq, entries pushed) once the parent accepted it.

        502 when the parent refused it or cannot be reached, 504 when it did not answer within
        the cascade timeout (ATS §8, ATS-CAS-01).
        """
        async with self.lock:
            push = self.prepare(full=True, sync=True)
            outcome = await self.send(push)
            if outcome != "accepted":
                self.need_full = True
                self.changed.set()
            if outcome == "timeout":
                raise AtsError(
                    504,
                    "UPSTREAM_TIMEOUT",
                    "上级节点未及时应答 / the parent did not answer in time",
                )
            if outcome != "accepted":
                raise AtsError(
                    502,
                    "UPSTREAM_UNAVAILABLE",
                    f"上级节点未接受推送 / the parent {outcome} the push",
                )
            if push.full:
                self.need_full = False
            return push.seq, push.pushed

    async def run(self) -> None:
        """Pushes until cancelled: the first full push, then every change from the children.

        A failed push is resent unchanged after a pause; a 409 or any other refusal is followed
        by a full push (ATS §8).
        """
        backoff = BACKOFF_MIN_S
        prepared: PreparedPush | None = None
        while True:
            if prepared is None and not self.need_full:
                await self.changed.wait()
                if self.node.faults.on("slow-sync"):
                    await asyncio.sleep(SLOW_SYNC_DELAY_S)
            async with self.lock:
                if prepared is not None and prepared.seq < self._last_seq():
                    # A sync push went out meanwhile and carried the whole subtree catalog.
                    prepared = None
                if prepared is None:
                    if not (self.need_full or self.pending_upserts or self.pending_removals):
                        self.changed.clear()
                        continue
                    # Every pending change goes into this push; later ones set `changed` again.
                    self.changed.clear()
                    prepared = self.prepare(full=self.need_full)
                outcome = await self.send(prepared)
            if outcome == "accepted":
                self.need_full = self.need_full and not prepared.full
                prepared = None
                backoff = BACKOFF_MIN_S
                continue
            if outcome == "refused":
                # Refused (409 out of order, or anything else): the parent gets a full push.
                self.need_full = True
                prepared = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)


def uplink_of(app: FastAPI) -> Uplink:
    """The uplink of the app's node (created by `start`)."""
    uplink: Uplink = app.state.uplink
    return uplink


@router.post(ats.CASCADE_SYNC)
async def sync_catalog(
    request: Request, caller: Annotated[Caller, Depends(_SYNCING_ADMIN)]
) -> Response:
    """A full push to the parent, answered 200 {"seq", "pushed"} once accepted (ATS §8)."""
    node = runtime_of(request)
    await read_body(request, node)
    if node.config.parent is None:
        raise AtsError(404, "NOT_FOUND", "本节点没有上级节点 / this node has no parent")
    seq, pushed = await uplink_of(request.app).sync()
    return Response(json_bytes({"seq": seq, "pushed": pushed}), media_type=JSON_TYPE)


async def start(app: FastAPI) -> None:
    """The cascade tables exist and, below national, the push task runs."""
    node: NodeRuntime = app.state.node
    node.store.ensure_schema(SCHEMA)
    uplink = Uplink(node)
    app.state.uplink = uplink
    if node.config.parent is not None:
        uplink.task = asyncio.create_task(uplink.run(), name="cascade-uplink")


async def stop(app: FastAPI) -> None:
    """The push task has ended."""
    uplink: Uplink | None = getattr(app.state, "uplink", None)
    if uplink is not None and uplink.task is not None:
        uplink.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await uplink.task
