"""The reference node's FastAPI application: routes, the ATS middleware and error answers.

Every response passes the ATS middleware, which gives it its ``X-Request-Id`` (ATS-API-02),
``X-Content-Type-Options`` and ``Cache-Control`` (ATS-SEC-02), counts it (ATS §10), records the
audit event of an audited request (ATS §9) and turns anything unexpected into a bare 500
INTERNAL_ERROR that reveals nothing (ATS-API-07).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import traceback
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance import STANDARD, ats
from conformance.reference import audit, cascade, catalog, clock, share, stats, subscriptions
from conformance.reference.auth import (
    Caller,
    authenticate,
    purge_nonces,
    read_body,
    require,
)
from conformance.reference.catalog_index import CatalogIndex
from conformance.reference.config import NodeConfig
from conformance.reference.errors import JSON_TYPE, AtsError, error_body, json_bytes
from conformance.reference.faults import FaultSet
from conformance.reference.listing import (
    invalid,
    page_and_size,
    page_answer,
    query_params,
    shaped_filter,
)
from conformance.reference.runtime import NodeRuntime, runtime_of
from conformance.reference.store import APPEND_ONLY_AUDIT, MUTABLE_AUDIT, Store
from conformance.reference.variant_wire import VariantMiddleware
from conformance.reference.variants import VariantSet

_log = logging.getLogger("conformance.reference")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9-]{8,64}")
# Housekeeping: call counts are written, old nonces forgotten, children probed.
_FLUSH_EVERY_S = 5.0
_PROBE_EVERY_S = 30.0
_MESSAGES = {
    404: "路径不存在 / no such path",
    405: "该路径不支持此方法 / the path does not serve this method",
    500: "内部错误 / internal error",
}


def _error_bytes(
    node: NodeRuntime,
    request_id: str,
    status: int,
    code: str,
    message: str,
    cause: BaseException | None,
) -> bytes:
    if node.faults.on("wrong-error-body"):
        body: dict[str, Any] = {"error": code, "detail": message}
    else:
        body = error_body(status, code, message, request_id)
    if node.faults.on("leak-stack-trace") and cause is not None:
        body["exception"] = f"{type(cause).__module__}.{type(cause).__qualname__}"
        body["trace"] = "".join(traceback.format_exception(cause))
    return json_bytes(body)


def _error(request: Request, exc: AtsError) -> Response:
    node = runtime_of(request)
    request_id = str(request.state.request_id)
    content = _error_bytes(node, request_id, exc.status, exc.code, exc.message, exc.__cause__)
    headers = dict(exc.headers)
    if node.faults.on("no-405-allow"):
        headers.pop("Allow", None)
    return Response(content, status_code=exc.status, headers=headers, media_type=JSON_TYPE)


async def _ats_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AtsError)
    return _error(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Routing's own 404 and 405 (ATS-API-04) become ATS error bodies; 405 keeps its Allow.
    assert isinstance(exc, StarletteHTTPException)
    node = runtime_of(request)
    if (
        exc.status_code == 404
        and node.faults.on("unknown-path-200")
        and request.url.path.startswith(f"{ats.API_PREFIX}/")
    ):
        return Response(b"{}", media_type=JSON_TYPE)
    status = exc.status_code
    # ATS §1: the code each status carries when nothing more specific applies.
    code = ats.default_code(status) or "INVALID_REQUEST"
    message = _MESSAGES.get(status, "请求无效 / invalid request")
    headers = dict(exc.headers or {})
    if status == 405 and not node.faults.on("incomplete-405-allow"):
        # ATS-API-04: Allow lists every method the path serves. The router's own Allow names
        # only the first route that matched the path, and each method here is its own route.
        headers["Allow"] = ", ".join(_served_methods(request))
    return _error(request, AtsError(status, code, message, headers=headers))


def _served_methods(request: Request) -> list[str]:
    """The methods the routes matching the request's path serve, in alphabetical order."""
    served: set[str] = set()
    for route in request.app.state.served_routes:
        # A route whose path matches and whose methods do not is a partial match.
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            served.update(route.methods)
    return sorted(served)


class AtsMiddleware:
    """The ATS middleware: request id, security headers, call counting, audit, 500 answers."""

    def __init__(self, app: ASGIApp, node: NodeRuntime) -> None:
        self.app = app
        self.node = node
        faults = node.faults
        extra: list[tuple[bytes, bytes]] = []
        if not faults.on("no-nosniff"):
            extra.append((b"x-content-type-options", b"nosniff"))
        if not faults.on("no-cache-control"):
            # ATS-SEC-02 names the catalog, share, subscription, audit and stats paths; every
            # answer of a node is per caller, so none of them may be cached.
            extra.append((b"cache-control", b"no-store"))
        if node.config.tls is not None and not faults.on("no-hsts"):
            # ATS-SEC-02: an HTTPS node's answers carry HSTS with max-age of at least a year.
            extra.append((b"strict-transport-security", b"max-age=31536000"))
        if faults.on("server-version-header"):
            extra.append((b"server", f"uvicorn/{uvicorn.__version__}".encode()))
        if faults.on("wildcard-cors"):
            extra.append((b"access-control-allow-origin", b"*"))
        self._extra = extra

    def _request_id(self, scope: Scope) -> str:
        if not self.node.faults.on("wrong-request-id"):
            for name, value in scope["headers"]:
                if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
                    return value.decode("ascii")
        return str(uuid.uuid4())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        node = self.node
        request_id = self._request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path: str = scope["path"]
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
                if not node.faults.on("no-request-id"):
                    headers.append((b"x-request-id", request_id.encode("ascii")))
                headers.extend(self._extra)
                if node.faults.on("echo-origin-with-credentials"):
                    origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
                    if origin is not None:
                        headers.append((b"access-control-allow-origin", origin))
                        headers.append((b"access-control-allow-credentials", b"true"))
                if path.startswith(ats.SHARE_PREFIX) and not any(
                    k == b"x-route" for k, _ in headers
                ):
                    # ATS §8: every answer to a share query carries X-Route, errors included.
                    route = cascade_route(scope, node.config.node_id)
                    headers.append((b"x-route", route.encode("latin-1")))
                if node.faults.on("non-json-content-type"):
                    headers = [
                        (k, b"text/plain; charset=utf-8" if k == b"content-type" else v)
                        for k, v in headers
                    ]
                message = {**message, "headers": headers}
                if path != ats.HEALTH and not node.faults.on("no-call-counting"):
                    node.calls.count(status)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            _log.error("request %s failed: %s", request_id, type(exc).__name__)
            if status == 0:
                content = _error_bytes(node, request_id, 500, "INTERNAL_ERROR", _MESSAGES[500], exc)
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", JSON_TYPE.encode()),
                            (b"content-length", str(len(content)).encode()),
                        ],
                    }
                )
                await send_with_headers({"type": "http.response.body", "body": content})
        finally:
            mark = state.get("audit")
            if mark is not None and status:
                audit.record_event(node, request_id, mark, status)


def cascade_route(scope: Scope, node_id: str) -> str:
    """The X-Route of an answer this node gives itself: the incoming route, then its own id."""
    incoming = ""
    for name, value in scope["headers"]:
        if name == b"x-route":
            incoming = value.decode("latin-1")
    parts = [p.strip() for p in incoming.split(",") if p.strip()]
    return ",".join([*parts, node_id])


def node_descriptor(config: NodeConfig, faults: FaultSet) -> dict[str, Any]:
    """The node descriptor of ATS-NODE-02."""
    node_id = config.node_id
    if faults.on("bad-node-id"):
        node_id = node_id[:-1] + ("1" if node_id[-1] != "1" else "2")
    level = config.level
    if faults.on("wrong-node-level"):
        level = {"municipal": "provincial"}.get(level, "municipal")
    parent_id = config.parent_id
    if faults.on("wrong-parent-id"):
        parent_id = "110000" if parent_id != "110000" else "120000"
    descriptor: dict[str, Any] = {
        "node_id": node_id,
        "name": config.name,
        "level": level,
        "parent_id": parent_id,
        "standard_version": STANDARD,
        "children": [
            {"node_id": c.node_id, "name": c.name, "level": c.level} for c in config.children
        ],
        "signature_methods": list(
            ("HMAC-SHA256",) if faults.on("no-sm3") else ("HMAC-SM3", "HMAC-SHA256")
        ),
        "rate_limit_per_app": config.rate_limit_per_app,
        "capabilities": [],
    }
    if faults.on("no-sha256"):
        descriptor["signature_methods"] = ["HMAC-SM3"]
    if faults.on("bad-node-descriptor"):
        del descriptor["standard_version"], descriptor["capabilities"]
    return descriptor


def _json(value: object) -> Response:
    return Response(json_bytes(value), media_type=JSON_TYPE)


async def health(request: Request) -> Response:
    """``{"status": "UP", "time"}``, without authentication (ATS-NODE-01)."""
    node = runtime_of(request)
    body = await read_body(request, node)
    if node.faults.on("health-requires-auth"):
        await authenticate(request, node, body)
    moment = clock.now()
    if node.faults.on("clock-skew"):
        moment += timedelta(seconds=60)
    text = clock.rfc3339(moment)
    if node.faults.on("timestamp-without-offset"):
        text = moment.replace(tzinfo=None).isoformat(timespec="seconds")
    return _json({"status": "UP", "time": text})


async def describe_node(
    request: Request,
    caller: Annotated[Caller, Depends(require("consumer", "provider-admin", "node"))],
) -> Response:
    """The node descriptor (ATS-NODE-02)."""
    node = runtime_of(request)
    query_params(request, (), node.faults)
    return _json(node.descriptor)


async def audit_events(
    request: Request, caller: Annotated[Caller, Depends(require("provider-admin"))]
) -> Response:
    """A page of audit events by ascending ``event_id`` (ATS §9)."""
    node = runtime_of(request)
    params = query_params(request, ("page", "size", "request_id", "app_id", "since"), node.faults)
    page, size = page_and_size(params, node.faults)
    since = None
    if "since" in params:
        moment = clock.parse_rfc3339(params["since"])
        if moment is None:
            raise invalid("since 必须是 RFC 3339 时间 / since must be an RFC 3339 timestamp")
        since = audit.since_key(moment)
    events, total = audit.event_page(
        node,
        page=page,
        size=size,
        request_id=shaped_filter(params, "request_id"),
        app_id=shaped_filter(params, "app_id"),
        since=since,
    )
    return _json(page_answer(events, page, size, total, node.faults))


async def clear_audit(
    request: Request, caller: Annotated[Caller, Depends(require("provider-admin"))]
) -> Response:
    """The audit trail is emptied (only with the mutable-audit fault)."""
    node = runtime_of(request)
    removed = node.store.execute("DELETE FROM audit")
    return _json({"deleted": removed})


async def node_stats(
    request: Request, caller: Annotated[Caller, Depends(require("provider-admin"))]
) -> Response:
    """The month's assessment statistics (ATS §10)."""
    node = runtime_of(request)
    query_params(request, (), node.faults)
    local = node.catalog.entries("local")
    if node.faults.on("stale-connectivity") or node.http is None:
        rate = 1.0
    else:
        rate = await node.connectivity.rate(node.http)
    if node.faults.on("childless-connectivity-zero") and not node.config.children:
        rate = 0.0
    answer = stats.stats_answer(
        period=node.calls.period,
        systems_integrated=node.config.systems_integrated,
        resources_total=len(local),
        resources_shared=sum(1 for e in local if e.entry["share"]["type"] != "NOT_SHARED"),
        collaborative=stats.collaborative_apps(node.store, node.calls.period),
        connectivity=rate,
        calls_total=node.calls.total,
        calls_failed=node.calls.failed,
    )
    if node.faults.on("wrong-stats-types"):
        answer["connectivity_rate"] = f"{rate * 100:.0f}%"
    return _json(answer)


async def _housekeeping(node: NodeRuntime) -> None:
    since_probe = 0.0
    while True:
        await asyncio.sleep(_FLUSH_EVERY_S)
        node.calls.flush()
        purge_nonces(node, clock.epoch_ms())
        since_probe += _FLUSH_EVERY_S
        if since_probe >= _PROBE_EVERY_S and node.http is not None and node.config.children:
            since_probe = 0.0
            await node.connectivity.probe(node.http)


def build_runtime(config: NodeConfig, faults: FaultSet) -> NodeRuntime:
    """The runtime of a node: its store opened and seeded, its catalog indexed."""
    store = Store(config.database)
    store.ensure_schema(MUTABLE_AUDIT if faults.on("mutable-audit") else APPEND_ONLY_AUDIT)
    store.executemany(
        "INSERT INTO apps (app_id, role, bound_node, rate_limit) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (app_id) DO UPDATE SET role = excluded.role, "
        "bound_node = excluded.bound_node, rate_limit = excluded.rate_limit",
        [(a.app_id, a.role, a.bound_node, a.rate_limit) for a in config.apps.values()],
    )
    index = CatalogIndex(store, config.node_id)
    if config.seed_catalog is not None:
        index.seed(config.seed_catalog, VariantSet.of(config.variants))
    return NodeRuntime(
        config=config,
        store=store,
        faults=faults,
        catalog=index,
        descriptor=node_descriptor(config, faults),
        calls=stats.CallCounter(store),
        connectivity=stats.Connectivity(config.children),
    )


def create_app(config: NodeConfig, faults: FaultSet | None = None) -> FastAPI:
    """The ASGI application of one reference node."""
    chosen = faults if faults is not None else FaultSet.of(config.faults)
    node = build_runtime(config, chosen)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node.http = httpx.AsyncClient(
            timeout=httpx.Timeout(config.cascade_timeout_s),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        await cascade.start(app)
        chores = asyncio.create_task(_housekeeping(node))
        try:
            yield
        finally:
            chores.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chores
            await cascade.stop(app)
            node.calls.flush()
            await node.http.aclose()
            node.http = None

    app = FastAPI(
        docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan, title=config.name
    )
    app.state.node = node
    app.add_exception_handler(AtsError, _ats_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_api_route(ats.HEALTH, health, methods=["GET"])
    app.add_api_route(ats.NODE, describe_node, methods=["GET"])
    app.include_router(catalog.router)
    app.include_router(share.router)
    app.include_router(subscriptions.router)
    app.include_router(cascade.router)
    app.add_api_route(ats.AUDIT_EVENTS, audit_events, methods=["GET"])
    if chosen.on("mutable-audit"):
        app.add_api_route(ats.AUDIT_EVENTS, clear_audit, methods=["DELETE"])
    app.add_api_route(ats.STATS, node_stats, methods=["GET"])
    # Every route the node serves, for the Allow of its 405 answers (ATS-API-04); an included
    # router stands in the app's routes as one opaque entry, so its own routes are listed.
    routers = (catalog.router, share.router, subscriptions.router, cascade.router)
    app.state.served_routes = tuple(
        route
        for route in (*app.router.routes, *(r for router in routers for r in router.routes))
        if isinstance(route, APIRoute)
    )
    app.add_middleware(AtsMiddleware, node=node)
    if node.variants.names:
        app.add_middleware(VariantMiddleware, node=node)
    if node.variants.on("gzip"):
        # Outermost: the body each variant wrote is what gets compressed when accepted.
        app.add_middleware(GZipMiddleware, minimum_size=1)
    return app
