"""The wire-level variants of the reference node: conformant answers written another way.

``VariantMiddleware`` wraps the ATS middleware and rewrites each answer as the switched-on
variants (``conformance/reference/variants.py``) say: JSON bodies re-serialized (timestamps in
+08:00 with milliseconds, integers as ``25.0``, extra members, ASCII-escaped indented JSON with
another member order), headers written otherwise (``charset=utf-8``, ``Connection: close``,
``Server`` without a version, ``X-Route`` with ``, ``), bodies chunked, HEAD answered 405, and
every answer 40 ms later. None of it changes what ATS compares: each is a choice the text leaves.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.reference.runtime import NodeRuntime

_CHINA = timezone(timedelta(hours=8))
# The members ATS defines as timestamps (§2 health, §4 entries, §6 subscriptions, §9 events).
_TIMESTAMPS = frozenset({"time", "updated_at", "created_at"})
# The integer members written as 25.0: list counters (ATS-API-08), descriptor and stats counters.
_INTEGERS = frozenset(
    {
        "page",
        "size",
        "total",
        "rate_limit_per_app",
        "systems_integrated",
        "resources_total",
        "resources_shared",
        "collaborative_apps",
        "calls_total",
        "calls_failed",
    }
)
_EXTRA = {"x_vendor_note": "extra members are allowed (ATS §4)"}
_SLOW_S = 0.040
_CATALOG = "/api/v1/catalog/"
_SHARE = "/api/v1/share/"


def _offset(text: str) -> str:
    """The instant of ``text`` written in +08:00 with milliseconds (ATS-API-09)."""
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return moment.astimezone(_CHINA).isoformat(timespec="milliseconds")


def _timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _offset(v) if k in _TIMESTAMPS and isinstance(v, str) else _timestamps(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_timestamps(v) for v in value]
    return value


def _floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: float(v)
            if k in _INTEGERS and isinstance(v, int) and not isinstance(v, bool)
            else _floats(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def _with_extra(value: Any) -> Any:
    return {**value, **_EXTRA} if isinstance(value, dict) else value


def _entry_with_extra(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    items = entry.get("items")
    if isinstance(items, list):
        entry = {**entry, "items": [_with_extra(i) for i in items]}
    return _with_extra(entry)


def _extra_members(path: str, status: int, body: Any) -> Any:
    """``body`` with an extra member wherever ATS allows one: error bodies, the descriptor,
    catalog entries and their item definitions, query answers (not records: ATS-SHR-01 holds
    them to the selected items), subscriptions, stats and audit events."""
    if not isinstance(body, dict) or path == "/api/v1/health":
        return body
    if status >= 400 or path in ("/api/v1/node", "/api/v1/stats") or path.startswith(_SHARE):
        return _with_extra(body)
    listed = body.get("items")
    if path.startswith(_CATALOG):
        if isinstance(listed, list) and "resource_code" not in body:
            return {**body, "items": [_entry_with_extra(e) for e in listed]}
        return _entry_with_extra(body)
    if path.startswith(("/api/v1/subscriptions", "/api/v1/audit/")):
        if isinstance(listed, list):
            return {**body, "items": [_with_extra(e) for e in listed]}
        return _with_extra(body)
    return body


def _reversed_members(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_members(value[k]) for k in reversed(value)}
    if isinstance(value, list):
        return [_reversed_members(v) for v in value]
    return value


def _listed(value: bytes, drop: bytes = b"") -> bytes:
    """A comma-separated header value written with ``, `` separators, ``drop`` left out."""
    return b", ".join(p.strip() for p in value.split(b",") if p.strip() and p.strip() != drop)


class VariantMiddleware:
    """Rewrites every answer as the node's wire-level variants say."""

    def __init__(self, app: ASGIApp, node: NodeRuntime) -> None:
        self.app = app
        self.node = node
        self._own = node.config.node_id.encode("ascii")

    def _body(self, path: str, status: int, raw: bytes, relayed: bool) -> bytes:
        variants = self.node.variants
        try:
            body = json.loads(raw)
        except ValueError:
            return raw
        shown = body
        if variants.on("offset-timestamps") and not path.startswith(_SHARE):
            # Share records are data: a value of data_type T is the node's to keep as stored.
            shown = _timestamps(shown)
        if variants.on("float-integers"):
            shown = _floats(shown)
        if variants.on("extra-members") and not relayed:
            # ATS §8: a relayed answer keeps a JSON-equal body; only the node's own answers
            # carry its extra members.
            shown = _extra_members(path, status, shown)
        if variants.on("wire-format"):
            return json.dumps(_reversed_members(shown), ensure_ascii=True, indent=2).encode()
        if shown is body:
            return raw
        return json.dumps(shown, ensure_ascii=False, separators=(",", ":")).encode()

    def _headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        variants = self.node.variants
        kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        if variants.on("head-405"):
            kept = [(k, _listed(v, drop=b"HEAD") if k.lower() == b"allow" else v) for k, v in kept]
        if variants.on("spaced-route"):
            kept = [(k, _listed(v) if k.lower() == b"x-route" else v) for k, v in kept]
        if variants.on("wire-format"):
            kept = [
                (k, b"application/json; charset=utf-8")
                if k.lower() == b"content-type" and v.startswith(b"application/json")
                else (k, v)
                for k, v in kept
            ]
            kept.append((b"connection", b"close"))
        if variants.on("server-name"):
            kept.append((b"server", b"ats-node"))
        return kept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        variants = self.node.variants
        if variants.on("slow-node"):
            await asyncio.sleep(_SLOW_S)
        if variants.on("head-405") and scope["method"] == "HEAD":
            # ATS-API-04: HEAD "answers 405" is allowed; TRACE draws the path's 405 with its
            # Allow, from which HEAD is taken out (uvicorn sends no body to a HEAD request).
            scope = {**scope, "method": "TRACE"}
        path: str = scope["path"]
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._answer(send, path, start, b"".join(chunks))

        await self.app(scope, receive, collect)

    async def _answer(self, send: Send, path: str, start: Message, raw: bytes) -> None:
        headers = list(start.get("headers", ()))
        is_json = any(
            k.lower() == b"content-type" and v.startswith(b"application/json") for k, v in headers
        )
        route = next((v for k, v in headers if k.lower() == b"x-route"), b"")
        relayed = bool(route) and route.split(b",")[-1].strip() != self._own
        body = self._body(path, int(start["status"]), raw, relayed) if is_json and raw else raw
        headers = self._headers(headers)
        chunked = self.node.variants.on("wire-format")
        if not chunked:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        if chunked and len(body) > 1:
            # No Content-Length: HTTP/1.1 sends the body chunked, here in two chunks.
            half = len(body) // 2
            await send({"type": "http.response.body", "body": body[:half], "more_body": True})
            await send({"type": "http.response.body", "body": body[half:], "more_body": False})
        else:
            await send({"type": "http.response.body", "body": body, "more_body": False})
