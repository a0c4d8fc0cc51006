"""Authentication and roles (ATS chapter 3), after the body size limit (ATS-API-06).

Evaluation order for an endpoint (ATS §1): body size → 413, signature headers, app, signature,
nonce, clock → 401, rate → 429, role → 403. The endpoint then checks the request's shape (400).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from conformance import ats, codes, signing
from conformance.reference import clock
from conformance.reference.audit import AuditMark, mark
from conformance.reference.errors import AtsError
from conformance.reference.runtime import NodeRuntime, runtime_of

MAX_BODY = 1_048_576
# ATS-AUTH-04/05: the freshness rules of ATS §3, in the milliseconds of X-Timestamp.
CLOCK_WINDOW_MS = ats.TIMESTAMP_WINDOW_S * 1000
NONCE_TTL_MS = ats.NONCE_MEMORY_S * 1000
# The clock-window variant: a narrower window and a longer memory, both allowed by ATS-AUTH-04/05.
_VARIANT_WINDOW_MS = 285_000
_VARIANT_NONCE_TTL_MS = 24 * 3_600_000
# The fault nonce-memory-300s: half the memory ATS-AUTH-05 requires.
_SHORT_NONCE_TTL_MS = 300_000
# The slow-auth variant: authentication takes this long more (ATS fixes no speed but PERF's).
_SLOW_AUTH_S = 0.006


def _nonce_ttl_ms(node: NodeRuntime) -> int:
    if node.faults.on("nonce-memory-300s"):
        return _SHORT_NONCE_TTL_MS
    return _VARIANT_NONCE_TTL_MS if node.variants.on("clock-window") else NONCE_TTL_MS


_TIGHT_WINDOW_MS = 60_000

_APP_ID = ats.pattern("app_id")
_TIMESTAMP = ats.pattern("timestamp_ms")
_NONCE = ats.pattern("nonce")
_SIGNATURE = re.compile(r"[0-9A-Fa-f]{1,128}", re.ASCII)

# ATS-AUTH-03: an unknown app and a wrong signature get this same message.
BAD_SIGNATURE = "签名校验失败 / the request signature does not verify"
_MALFORMED = "签名请求头缺失或格式错误 / signature headers are missing or malformed"
_EXPIRED = "时间戳超出允许范围 / the timestamp is outside the accepted window"
_REPLAYED = "随机数已被使用 / the nonce was already used"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: its app id, role and, for a node app, the neighbour it is."""

    app_id: str
    role: str
    bound_node: str | None


def signature_methods(node: NodeRuntime) -> tuple[str, ...]:
    """The signature methods this node lists and accepts (ATS-NODE-02, ATS-AUTH-06/07)."""
    if node.faults.on("no-sm3"):
        return ("HMAC-SHA256",)
    if node.faults.on("no-sha256"):
        return ("HMAC-SM3",)
    return signing.SIGNATURE_METHODS


async def read_body(request: Request, node: NodeRuntime) -> bytes:
    """The raw body, refused with 413 past 1 MiB before it is read in full (ATS-API-06)."""
    cached: bytes | None = getattr(request.state, "body", None)
    if cached is not None:
        return cached
    limit = None if node.faults.on("accept-oversized-body") else MAX_BODY
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise AtsError(
                400, "INVALID_REQUEST", "Content-Length 格式错误 / malformed Content-Length"
            )
        if limit is not None and int(declared) > limit:
            raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit is not None and size > limit:
            raise _too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.body = body
    return body


def _too_large() -> AtsError:
    # ATS-API-06: the rest of the body is not read; the connection is closed after the answer.
    return AtsError(
        413,
        "PAYLOAD_TOO_LARGE",
        "请求体超过 1 MiB / the request body is larger than 1 MiB",
        headers={"Connection": "close"},
    )


def _unauthenticated(
    request: Request, node: NodeRuntime, claimed: str | None, message: str
) -> AtsError:
    # ATS-AUD-02: every 401 is an AUTH_FAILURE event, with the claimed app id when well formed.
    request.state.audit = AuditMark(
        action="AUTH_FAILURE",
        app_id=claimed,
        origin_node=node.config.node_id,
        origin_app=claimed,
    )
    return AtsError(401, "UNAUTHENTICATED", message)


def _header_fields(request: Request, node: NodeRuntime) -> tuple[str, str, str, str, str]:
    headers = request.headers
    app_id = headers.get("x-app-id")
    claimed = app_id if app_id is not None and _APP_ID.fullmatch(app_id) else None
    timestamp = headers.get("x-timestamp")
    nonce = headers.get("x-nonce")
    presented = headers.get("x-signature")
    method = headers.get("x-signature-method", signing.DEFAULT_SIGNATURE_METHOD)
    if (
        claimed is None
        or timestamp is None
        or not _TIMESTAMP.fullmatch(timestamp)
        or nonce is None
        or not _NONCE.fullmatch(nonce)
        or presented is None
        or not _SIGNATURE.fullmatch(presented)
        or method not in signature_methods(node)
    ):
        raise _unauthenticated(request, node, claimed, _MALFORMED)
    if claimed not in node.config.apps:
        message = (
            "应用不存在 / unknown app"
            if node.faults.on("distinguish-unknown-app")
            else BAD_SIGNATURE
        )
        raise _unauthenticated(request, node, claimed, message)
    return claimed, timestamp, nonce, presented, method


def use_nonce(node: NodeRuntime, app_id: str, nonce: str, now_ms: int) -> bool:
    """The nonce was not used by this app within ATS-AUTH-05's memory, and now counts as used.

    The insert and the check are one statement, so two requests racing with the same nonce
    cannot both pass.
    """
    changed = node.store.execute(
        "INSERT INTO nonces (app_id, nonce, used_at_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (app_id, nonce) DO UPDATE SET used_at_ms = excluded.used_at_ms "
        "WHERE nonces.used_at_ms <= excluded.used_at_ms - ?",
        (app_id, nonce, now_ms, _nonce_ttl_ms(node)),
    )
    return changed == 1 or node.faults.on("accept-replayed-nonce")


# The list the fault unsigned-catalog serves without authentication (ATS-NODE-01).
_CATALOG_LIST = ats.CATALOG


def purge_nonces(node: NodeRuntime, now_ms: int) -> None:
    """Nonces older than the replay window are forgotten."""
    node.store.execute("DELETE FROM nonces WHERE used_at_ms <= ?", (now_ms - _nonce_ttl_ms(node),))


async def authenticate(request: Request, node: NodeRuntime, body: bytes) -> Caller:
    """The caller of a signed request; 401 UNAUTHENTICATED otherwise (ATS-AUTH-01..05)."""
    unsigned = "x-signature" not in request.headers
    public_catalog = node.faults.on("unsigned-catalog") and request.scope["path"] == _CATALOG_LIST
    if unsigned and (node.faults.on("accept-missing-signature") or public_catalog):
        first = next(a for a in node.config.apps.values() if a.role == "consumer")
        return Caller(first.app_id, first.role, first.bound_node)
    if node.variants.on("slow-auth"):
        await asyncio.sleep(_SLOW_AUTH_S)
    app_id, timestamp, nonce, presented, method = _header_fields(request, node)
    app = node.config.apps[app_id]
    scope = request.scope
    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    canonical = signing.canonical_string(
        method=scope["method"],
        path=path,
        query=scope.get("query_string", b""),
        app_id=app_id,
        timestamp=timestamp,
        nonce=nonce,
        body=body,
        signature_method=method,
    )
    if node.faults.on("unsorted-canonical-query"):
        canonical = _unsorted(canonical, scope.get("query_string", b""))
    verified = node.faults.on("skip-signature-check") or signing.verify(
        app.secret, canonical, presented, method
    )
    if not verified and node.faults.on("signature-ignores-query"):
        # The defect: the signature is also checked over a canonical string without the query.
        bare = signing.canonical_string(
            method=scope["method"],
            path=path,
            query=b"",
            app_id=app_id,
            timestamp=timestamp,
            nonce=nonce,
            body=body,
            signature_method=method,
        )
        verified = signing.verify(app.secret, bare, presented, method)
    if not verified:
        raise _unauthenticated(request, node, app_id, BAD_SIGNATURE)
    now_ms = clock.epoch_ms()
    # ATS §3: a nonce counts as used once its signature verified, whatever the answer.
    if not use_nonce(node, app_id, nonce, now_ms):
        raise _unauthenticated(request, node, app_id, _REPLAYED)
    window = _TIGHT_WINDOW_MS if node.faults.on("tight-clock-window") else CLOCK_WINDOW_MS
    if node.variants.on("clock-window"):
        window = _VARIANT_WINDOW_MS
    if not node.faults.on("no-clock-check") and abs(now_ms - int(timestamp)) > window:
        raise _unauthenticated(request, node, app_id, _EXPIRED)
    return Caller(app_id, app.role, app.bound_node)


def _unsorted(canonical: str, query: bytes) -> str:
    """The defect of unsorted-canonical-query: the query line of ``canonical`` with each pair
    encoded as ATS §3 says but kept in the order sent, not sorted."""
    lines = canonical.split("\n")
    lines[2] = "&".join(signing.canonical_query(piece) for piece in query.split(b"&") if piece)
    return "\n".join(lines)


def _check_rate(node: NodeRuntime, caller: Caller) -> None:
    # ATS-SEC-03 limits consumer apps; node apps carry many consumers' routed queries.
    if caller.role != "consumer" or node.faults.on("no-rate-limit"):
        return
    app = node.config.apps.get(caller.app_id)
    limit = (app.rate_limit if app else None) or node.config.rate_limit_per_app
    wait = node.limiter.admit(caller.app_id, limit, time.monotonic())
    if wait is not None:
        headers = {} if node.faults.on("no-retry-after") else {"Retry-After": str(wait)}
        raise AtsError(
            429, "RATE_LIMITED", "请求过于频繁 / too many requests for this app", headers=headers
        )


def require(*roles: str, action: str | None = None) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the caller of a signed request whose role is one of ``roles``.

    With ``action``, the request is an audited one (ATS-AUD-01) from the moment it is
    authenticated, whatever its answer.
    """
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Caller:
        node = runtime_of(request)
        if node.faults.on("auth-before-size-check"):
            _header_fields(request, node)
        body = await read_body(request, node)
        caller = await authenticate(request, node, body)
        if action is not None:
            code = request.path_params.get("resource_code")
            known = code if code is not None and codes.resource_code_problem(code) is None else None
            mark(request, node, action, caller.app_id, known)
        _check_rate(node, caller)
        if caller.role not in allowed and not node.faults.on("missing-role-check"):
            raise AtsError(
                403,
                "FORBIDDEN",
                "该应用角色无权访问此接口 / the app's role may not call this endpoint",
            )
        request.state.caller = caller
        return caller

    return dependency
